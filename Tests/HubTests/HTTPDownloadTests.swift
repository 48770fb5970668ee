import Foundation
import Testing

@testable import Hub

/// Downloads from the loopback server: no internet needed.
@Suite("HTTP downloads over loopback", .serialized)
struct HTTPDownloadTests {
    let body = testBytes(300_000)
    var digest: String { sha256(body) }
    /// `blob-<first 8 hex of the sha256>.pth`, so torch.hub's rule yields the right prefix.
    var fileName: String { "blob-\(digest.prefix(8)).pth" }

    @Test("full download passes the hash check and lands under its name")
    func fullDownload() throws {
        let server = try LoopbackServer(fileName: fileName, body: body)
        defer { server.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let log = ProgressLog()

        let result = try Downloader().fetch(FetchTarget(url: server.url), into: dir.path) { p in
            log.record(bytes: p.bytes, total: p.total, resumedFrom: p.resumedFrom)
        }

        #expect(result.status == .downloaded)
        #expect(result.path == dir.file(fileName))
        #expect(result.bytes == Int64(body.count))
        #expect(result.sha256 == digest)
        #expect(result.target.hashPrefix == String(digest.prefix(8)))
        #expect(contents(result.path) == body)
        #expect(!exists(dir.file(fileName + ".partial")))
        #expect(server.requests.map(\.range) == [nil])
        let last = try #require(log.all.last)
        #expect(last.bytes == Int64(body.count))
        #expect(last.total == Int64(body.count))
        #expect(log.all.allSatisfy { $0.resumedFrom == 0 })
    }

    @Test("a dropped connection keeps the partial file and the next fetch resumes with Range")
    func droppedConnectionResumes() throws {
        let server = try LoopbackServer(fileName: fileName, body: body)
        defer { server.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let target = try FetchTarget(url: server.url)
        let partial = dir.file(fileName + ".partial")

        server.dropNextResponse(after: 100_000)
        let error = #expect(throws: HubError.self) { try Downloader().fetch(target, into: dir.path) }
        guard case .network(_, _, let kept, let keptBytes) = error else {
            Issue.record("expected a network error, got \(String(describing: error))")
            return
        }
        #expect(kept == partial)
        #expect(keptBytes == 100_000)
        #expect(contents(partial) == Array(body.prefix(100_000)))
        #expect(!exists(dir.file(fileName)))

        let log = ProgressLog()
        let result = try Downloader().fetch(target, into: dir.path) { p in
            log.record(bytes: p.bytes, total: p.total, resumedFrom: p.resumedFrom)
        }
        #expect(result.status == .resumed)
        #expect(result.sha256 == digest)
        #expect(contents(dir.file(fileName)) == body)
        #expect(!exists(partial))
        #expect(server.requests.map(\.range) == [nil, "bytes=100000-"])
        #expect(log.all.first?.bytes == 100_000)
        #expect(log.all.first?.resumedFrom == 100_000)
        #expect(log.all.last?.bytes == Int64(body.count))
    }

    @Test("a hash mismatch deletes the partial file, says so, and leaves no final file")
    func hashMismatch() throws {
        // A prefix that is not the digest's: flip the first hex digit.
        let wrong = (digest.first == "0" ? "1" : "0") + digest.dropFirst().prefix(7)
        let name = "blob-\(wrong).pth"
        let server = try LoopbackServer(fileName: name, body: body)
        defer { server.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let partial = dir.file(name + ".partial")

        let error = #expect(throws: HubError.self) {
            try Downloader().fetch(FetchTarget(url: server.url), into: dir.path)
        }
        #expect(error == .hashMismatch(file: name, expected: wrong, actual: digest, deletedPartial: partial))
        let message = error.map(String.init(describing:)) ?? ""
        #expect(message.contains(wrong))
        #expect(message.contains(digest))
        #expect(message.contains("deleted the partial file \(partial)"))
        #expect(!exists(partial))
        #expect(!exists(dir.file(name)))
    }

    @Test("a file already present with a matching hash makes no request")
    func alreadyPresent() throws {
        let server = try LoopbackServer(fileName: fileName, body: body)
        defer { server.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try write(body, to: dir.file(fileName))

        let result = try Downloader().fetch(FetchTarget(url: server.url), into: dir.path)
        #expect(result.status == .present)
        #expect(result.bytes == Int64(body.count))
        #expect(result.sha256 == digest)
        #expect(server.requests.isEmpty)
    }

    @Test("a present file whose hash does not match is downloaded again and replaced")
    func presentButCorrupt() throws {
        let server = try LoopbackServer(fileName: fileName, body: body)
        defer { server.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try write(Array(body.prefix(1000)), to: dir.file(fileName))

        let result = try Downloader().fetch(FetchTarget(url: server.url), into: dir.path)
        #expect(result.status == .downloaded)
        #expect(contents(dir.file(fileName)) == body)
        #expect(server.requests.count == 1)
    }

    @Test("force downloads a present file again and discards a partial one")
    func force() throws {
        let server = try LoopbackServer(fileName: fileName, body: body)
        defer { server.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try write(body, to: dir.file(fileName))
        try write(Array(body.prefix(5000)), to: dir.file(fileName + ".partial"))

        let result = try Downloader().fetch(FetchTarget(url: server.url), into: dir.path, force: true)
        #expect(result.status == .downloaded)
        #expect(server.requests.map(\.range) == [nil])
        #expect(contents(dir.file(fileName)) == body)
    }

    @Test("a server that ignores Range answers 200 and the download restarts from zero")
    func serverIgnoresRange() throws {
        let server = try LoopbackServer(fileName: fileName, body: body)
        defer { server.stop() }
        server.ignoreRange()
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let target = try FetchTarget(url: server.url)

        server.dropNextResponse(after: 120_000)
        #expect(throws: HubError.self) { try Downloader().fetch(target, into: dir.path) }
        #expect(fileSize(dir.file(fileName + ".partial")) == 120_000)

        let result = try Downloader().fetch(target, into: dir.path)
        #expect(result.status == .downloaded)
        #expect(server.requests.map(\.range) == [nil, "bytes=120000-"])
        #expect(contents(dir.file(fileName)) == body)
    }

    @Test("a partial file that is already complete gets 416 and is verified without a body")
    func completePartial() throws {
        let server = try LoopbackServer(fileName: fileName, body: body)
        defer { server.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try write(body, to: dir.file(fileName + ".partial"))

        let result = try Downloader().fetch(FetchTarget(url: server.url), into: dir.path)
        #expect(result.status == .resumed)
        #expect(server.requests.map(\.range) == ["bytes=\(body.count)-"])
        #expect(contents(dir.file(fileName)) == body)
    }

    @Test("a partial file longer than the file gets 416 and the download starts over")
    func oversizedPartial() throws {
        let server = try LoopbackServer(fileName: fileName, body: body)
        defer { server.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try write(body + [1, 2, 3], to: dir.file(fileName + ".partial"))

        let result = try Downloader().fetch(FetchTarget(url: server.url), into: dir.path)
        #expect(result.status == .downloaded)
        #expect(server.requests.map(\.range) == ["bytes=\(body.count + 3)-", nil])
        #expect(contents(dir.file(fileName)) == body)
    }

    @Test("HTTP 404 is a typed error naming the URL and status, and leaves nothing behind")
    func notFound() throws {
        let server = try LoopbackServer(fileName: fileName, body: body)
        defer { server.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let url = server.url(path: "missing-0123abcd.pth")

        let error = #expect(throws: HubError.self) { try Downloader().fetch(FetchTarget(url: url), into: dir.path) }
        #expect(error == .httpStatus(url: url.absoluteString, status: 404))
        #expect(error.map(String.init(describing:))?.contains("HTTP 404") == true)
        #expect(!exists(dir.file("missing-0123abcd.pth.partial")))
        #expect(!exists(dir.file("missing-0123abcd.pth")))
    }

    @Test("a refused connection is a network error")
    func connectionRefused() throws {
        let server = try LoopbackServer(fileName: fileName, body: body)
        let url = server.url
        server.stop()
        let dir = TemporaryDirectory()
        defer { dir.remove() }

        let error = #expect(throws: HubError.self) { try Downloader().fetch(FetchTarget(url: url), into: dir.path) }
        guard case .network(let failedURL, _, let kept, _) = error else {
            Issue.record("expected a network error, got \(String(describing: error))")
            return
        }
        #expect(failedURL == url.absoluteString)
        #expect(kept == nil)
    }

    @Test("a registry entry fetched from an overriding URL keeps the registry's name and prefix")
    func registryEntryWithOverride() throws {
        let server = try LoopbackServer(fileName: "elsewhere.bin", body: body)
        defer { server.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let entry = try Registry.resolve("resnet18")
        let target = FetchTarget(entry, url: server.url)
        #expect(target.fileName == "resnet18-5c106cde.pth")
        #expect(target.hashPrefix == "5c106cde")

        // These bytes are not resnet18, so the check fails under the registry's name.
        let error = #expect(throws: HubError.self) { try Downloader().fetch(target, into: dir.path) }
        #expect(
            error
                == .hashMismatch(
                    file: "resnet18-5c106cde.pth", expected: "5c106cde", actual: digest,
                    deletedPartial: dir.file("resnet18-5c106cde.pth.partial")))
        #expect(server.requests.map(\.path) == ["/elsewhere.bin"])
    }
}
