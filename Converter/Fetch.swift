import ArgumentParser
import Checkpoint
import Foundation
import Hub

#if canImport(Glibc)
    import Glibc
#endif

struct Fetch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download torchvision's ResNet weights, resuming and checking torch.hub's hash.",
        discussion: """
            NAME is a file name (resnet18-5c106cde.pth), its stem (resnet18-5c106cde) or a model \
            (resnet18). A model picks torchvision's current IMAGENET1K_V1 file, except resnet18, which \
            picks resnet18-5c106cde.pth, the PyTorch 0.1 tar file this project is built around (its zip \
            re-save is resnet18-f37072fd). --list shows every known file.

            Resume: bytes go to DIR/FILE.partial. When that file exists, the download continues with an \
            HTTP Range request; a server that ignores Range sends the whole file again. file:// URLs are \
            copied the same way.

            Hash check, as in torch.hub: the hex digits that torch's HASH_REGEX -([a-f0-9]*)\\. finds in \
            the file name (5c106cde in resnet18-5c106cde.pth) must begin the file's SHA-256. On a \
            mismatch the partial file is deleted and fetch fails; otherwise it is renamed to DIR/FILE. A \
            file already in DIR is hashed first: if it matches, nothing is downloaded ('present'); \
            --force downloads it again.

            --url fetches from another place (a mirror, a local server, file:///path). The file name and \
            hash prefix still come from NAME's registry entry, or from the URL's last path component \
            when NAME is omitted or unknown.
            """
    )

    @Argument(help: "Models, file stems or file names from the registry.")
    var names: [String] = []

    @Option(help: "The download directory, created if missing.")
    var dir = "Weights"

    @Option(help: "Download from this http://, https:// or file:// URL instead (one NAME at most).")
    var url: String?

    @Flag(help: "Download again even if the file is present with a matching hash.")
    var force = false

    @Flag(help: "List the known files and exit.")
    var list = false

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        if list { return }
        if names.isEmpty && url == nil { throw ValidationError("Give a NAME (see --list) or a --url.") }
        if url != nil && names.count > 1 { throw ValidationError("--url fetches one file: give at most one NAME.") }
    }

    func run() throws {
        if list {
            printRegistry()
            return
        }
        var done: [(name: String, result: FetchResult)] = []
        do {
            for (name, target) in try targets() {
                let result = try fetch(target)
                done.append((name, result))
                if !json { print(Self.describe(result)) }
            }
        } catch {
            guard json else { throw fail(error, json: false) }
            print(report(done, error: error).render())
            throw ExitCode(1)
        }
        if json { print(report(done, error: nil).render()) }
    }

    /// One download, with its progress on stderr.
    func fetch(_ target: FetchTarget) throws -> FetchResult {
        let meter = Meter(label: target.fileName, url: target.url, announce: !json)
        defer { meter.finish() }
        return try Downloader().fetch(target, into: dir, force: force) { meter.update($0) }
    }

    /// Each NAME with what to fetch for it; with only --url, the URL's own file.
    func targets() throws -> [(String, FetchTarget)] {
        let override = try url.map { text -> URL in
            guard let parsed = URL(string: text), parsed.scheme != nil else { throw HubError.unsupportedURL(text) }
            return parsed
        }
        guard !names.isEmpty else {
            let target = try FetchTarget(url: override!)
            return [(target.fileName, target)]
        }
        return try names.map { name in
            do {
                return (name, FetchTarget(try Registry.resolve(name), url: override))
            } catch HubError.unknownModel(_, _) where override != nil {
                return (name, try FetchTarget(url: override!))
            }
        }
    }

    func report(_ done: [(name: String, result: FetchResult)], error: (any Error)?) -> JSON {
        let files: [JSON] = done.map { name, r in
            .object([
                ("name", .string(name)),
                ("file", .string(r.target.fileName)),
                ("url", .string(r.target.url.absoluteString)),
                ("path", .string(r.path)),
                ("status", .string(r.status.rawValue)),
                ("bytes", .int(Int(r.bytes))),
                ("sha256", .string(r.sha256)),
                ("hash_prefix", r.target.hashPrefix.map(JSON.string) ?? .null),
            ])
        }
        var fields: [(String, JSON)] = [("directory", .string(dir)), ("files", .array(files))]
        if let error { fields.append(("error", .string("\(error)"))) }
        return .object(fields)
    }

    static func describe(_ r: FetchResult) -> String {
        let status = r.status == .present ? "already present" : r.status.rawValue
        return "\(r.path): \(status), \(Self.size(r.bytes)), sha256 \(r.sha256)"
    }

    func printRegistry() {
        if json {
            let files: [JSON] = Registry.files.map { f in
                .object([
                    ("model", .string(f.model)),
                    ("file", .string(f.fileName)),
                    ("url", .string(f.url.absoluteString)),
                    ("sha256_prefix", f.hashPrefix.map(JSON.string) ?? .null),
                    ("default", .bool(f.isDefault)),
                    ("note", .string(f.note)),
                ])
            }
            print(
                JSON.object([("base_url", .string(Registry.baseURL.absoluteString)), ("files", .array(files))]).render()
            )
            return
        }
        let rows =
            [["model", "file", "", "note"]]
            + Registry.files.map { f in
                [f.model, f.fileName, f.isDefault ? "*" : "", f.note]
            }
        let widths = (0..<3).map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            let padded = (0..<3).map { row[$0] + String(repeating: " ", count: widths[$0] - row[$0].count) }
            print((padded + [row[3]]).joined(separator: "  "))
        }
        print("")
        print("* the file a bare model name fetches. Files are under \(Registry.baseURL.absoluteString)")
    }

    /// "46.83 MB (46,827,520 bytes)", or "512 bytes".
    static func size(_ n: Int64) -> String {
        var digits = ""
        for (i, c) in String(n).enumerated() {
            if i > 0, (String(n).count - i) % 3 == 0 { digits += "," }
            digits.append(c)
        }
        return n >= 1_000_000 ? String(format: "%.2f MB", Double(n) / 1e6) + " (\(digits) bytes)" : "\(digits) bytes"
    }

    /// Download progress on stderr: a redrawn bar when stderr is a terminal, otherwise a plain line every
    /// 10 seconds. URLSession calls `update` on its delegate thread; `lock` guards the state, hence
    /// `@unchecked Sendable`.
    final class Meter: @unchecked Sendable {
        private let label: String
        private let url: URL
        private let announce: Bool
        private let terminal = isatty(2) == 1
        private let clock = ContinuousClock()
        private let lock = NSLock()
        private var started: ContinuousClock.Instant?
        private var lastDrawn: ContinuousClock.Instant?
        private var drawn = false

        init(label: String, url: URL, announce: Bool) {
            self.label = label
            self.url = url
            self.announce = announce
        }

        func update(_ p: FetchProgress) {
            lock.lock()
            defer { lock.unlock() }
            let now = clock.now
            if started == nil {
                started = now
                if announce {
                    let from = p.resumedFrom > 0 ? "resuming at \(Fetch.size(p.resumedFrom)) from" : "downloading"
                    Meter.write("\(label): \(from) \(url.absoluteString)\n")
                }
            }
            let complete = p.total.map { p.bytes >= $0 } ?? false
            let interval: Duration = terminal ? .milliseconds(100) : .seconds(10)
            if let last = lastDrawn, now - last < interval, !complete { return }
            if lastDrawn == nil, !terminal {
                lastDrawn = now  // no plain line for the first ten seconds
                return
            }
            lastDrawn = now
            let line = describe(p, elapsed: now - started!)
            if terminal {
                Meter.write("\r\(line)\u{1B}[K")
                drawn = true
            } else if !complete {
                Meter.write(line + "\n")
            }
        }

        /// Ends the bar's line.
        func finish() {
            lock.lock()
            defer { lock.unlock() }
            if drawn { Meter.write("\n") }
        }

        private func describe(_ p: FetchProgress, elapsed: Duration) -> String {
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let rate = seconds > 0 ? String(format: "  %.1f MB/s", Double(p.bytes - p.resumedFrom) / seconds / 1e6) : ""
            let done = String(format: "%.1f", Double(p.bytes) / 1e6)
            guard let total = p.total, total > 0 else { return "\(label)  \(done) MB\(rate)" }
            let fraction = min(1, Double(p.bytes) / Double(total))
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar =
                terminal
                ? "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]  "
                : ""
            return
                "\(label)  \(bar)\(Int(fraction * 100))%  \(done)/\(String(format: "%.1f", Double(total) / 1e6)) MB\(rate)"
        }

        private static func write(_ text: String) {
            var err = StandardError()
            print(text, terminator: "", to: &err)
        }
    }
}
