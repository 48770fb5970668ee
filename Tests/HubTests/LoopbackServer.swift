import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A minimal HTTP/1.1 server on 127.0.0.1 for the download tests: it serves one file from memory,
/// answers `Range: bytes=N-` with 206 and `Content-Range` (416 past the end), 404 for any other path,
/// and closes the connection after every response. Switches make it ignore Range (always 200) or cut
/// the next response off after some body bytes, like a dropped download.
///
/// One background thread accepts and answers connections one at a time; the switches and the request
/// log are guarded by `lock`, hence `@unchecked Sendable`.
final class LoopbackServer: @unchecked Sendable {
    struct Request: Sendable, Equatable {
        let method: String
        let path: String
        /// The `Range` header, if the client sent one.
        let range: String?
    }

    let port: UInt16
    private let listener: Int32
    private let servedPath: String
    private let body: [UInt8]
    private let lock = NSLock()
    private var log: [Request] = []
    private var dropAfter: Int?
    private var rangeIgnored = false
    private let stopped = DispatchSemaphore(value: 0)

    /// Starts serving `body` at `/<fileName>` on an ephemeral port.
    init(fileName: String, body: [UInt8]) throws {
        servedPath = "/" + fileName
        self.body = body
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServerError.socket("socket", errno) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 8) == 0 else {
            close(fd)
            throw ServerError.socket("bind/listen", errno)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    /// `http://127.0.0.1:<port>/<fileName>`.
    var url: URL { URL(string: "http://127.0.0.1:\(port)\(servedPath)")! }

    /// `http://127.0.0.1:<port>/<name>`, for paths the server does not have.
    func url(path name: String) -> URL { URL(string: "http://127.0.0.1:\(port)/\(name)")! }

    /// Every request so far, in order.
    var requests: [Request] {
        lock.lock()
        defer { lock.unlock() }
        return log
    }

    /// Cuts the next response off after `bytes` body bytes (the headers still announce the full length).
    func dropNextResponse(after bytes: Int) {
        lock.lock()
        dropAfter = bytes
        lock.unlock()
    }

    /// Makes every answer a full 200, whatever Range says.
    func ignoreRange() {
        lock.lock()
        rangeIgnored = true
        lock.unlock()
    }

    /// Stops accepting and waits for the serving thread to end.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        stopped.wait()
        close(listener)
    }

    private func serve() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                break
            }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            handle(client)
            shutdown(client, Int32(SHUT_WR))
            close(client)
        }
        stopped.signal()
    }

    private func handle(_ client: Int32) {
        guard let head = readHead(client) else { return }
        let lines = head.components(separatedBy: "\r\n")
        let requestLine = lines[0].split(separator: " ").map(String.init)
        guard requestLine.count >= 2 else { return }
        var range: String?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].lowercased() == "range" {
                range = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        let request = Request(method: requestLine[0], path: requestLine[1], range: range)

        lock.lock()
        log.append(request)
        let drop = dropAfter
        dropAfter = nil
        let ignoring = rangeIgnored
        lock.unlock()

        guard request.path == servedPath else {
            respond(client, status: "404 Not Found", headers: [], body: Array("not found\n".utf8)[...], drop: nil)
            return
        }
        if let range, !ignoring, range.hasPrefix("bytes="), range.hasSuffix("-"),
            let start = Int(range.dropFirst(6).dropLast())
        {
            if start >= body.count {
                respond(
                    client, status: "416 Range Not Satisfiable", headers: ["Content-Range: bytes */\(body.count)"],
                    body: [][...], drop: nil)
            } else {
                respond(
                    client, status: "206 Partial Content",
                    headers: ["Content-Range: bytes \(start)-\(body.count - 1)/\(body.count)"],
                    body: body[start...], drop: drop)
            }
            return
        }
        respond(client, status: "200 OK", headers: [], body: body[...], drop: drop)
    }

    /// Reads up to the blank line that ends the request head.
    private func readHead(_ client: Int32) -> String? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 65536 {
            let n = recv(client, &buffer, buffer.count, 0)
            if n <= 0 { return nil }
            bytes += buffer[..<n]
            if let text = String(bytes: bytes, encoding: .utf8), let end = text.range(of: "\r\n\r\n") {
                return String(text[..<end.lowerBound])
            }
        }
        return nil
    }

    private func respond(_ client: Int32, status: String, headers: [String], body: ArraySlice<UInt8>, drop: Int?) {
        let head =
            ([
                "HTTP/1.1 \(status)", "Content-Type: application/octet-stream", "Content-Length: \(body.count)",
                "Accept-Ranges: bytes", "Connection: close",
            ] + headers).joined(separator: "\r\n") + "\r\n\r\n"
        guard send(client, Array(head.utf8)) else { return }
        _ = send(client, Array(body.prefix(drop ?? body.count)))
    }

    private func send(_ client: Int32, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(client, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    enum ServerError: Error {
        case socket(String, Int32)
    }
}
