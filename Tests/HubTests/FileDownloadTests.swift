import Foundation
import Testing

@testable import Hub

@Suite("file:// downloads")
struct FileDownloadTests {
    let body = testBytes(50_000, seed: 7)

    @Test("a file:// URL is copied and checked")
    func copy() throws {
        let source = TemporaryDirectory()
        let dir = TemporaryDirectory()
        defer {
            source.remove()
            dir.remove()
        }
        let name = "local-\(sha256(body).prefix(10)).pth"
        try write(body, to: source.file(name))

        let result = try Downloader().fetch(
            FetchTarget(url: URL(fileURLWithPath: source.file(name))), into: dir.path + "/nested/weights")
        #expect(result.status == .downloaded)
        #expect(result.path == dir.path + "/nested/weights/" + name)
        #expect(result.target.hashPrefix == String(sha256(body).prefix(10)))
        #expect(contents(result.path) == body)
    }

    @Test("a file:// copy resumes from a partial file")
    func resume() throws {
        let source = TemporaryDirectory()
        let dir = TemporaryDirectory()
        defer {
            source.remove()
            dir.remove()
        }
        let name = "local-\(sha256(body).prefix(8)).pth"
        try write(body, to: source.file(name))
        try write(Array(body.prefix(20_000)), to: dir.file(name + ".partial"))
        let log = ProgressLog()

        let result = try Downloader().fetch(FetchTarget(url: URL(fileURLWithPath: source.file(name))), into: dir.path) {
            p in
            log.record(bytes: p.bytes, total: p.total, resumedFrom: p.resumedFrom)
        }
        #expect(result.status == .resumed)
        #expect(contents(dir.file(name)) == body)
        #expect(log.all.first?.resumedFrom == 20_000)
        #expect(log.all.last?.bytes == Int64(body.count))
    }

    @Test("a missing source file is an IO error naming it")
    func missingSource() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let missing = dir.file("absent-01234567.pth")
        let error = #expect(throws: HubError.self) {
            try Downloader().fetch(FetchTarget(url: URL(fileURLWithPath: missing)), into: dir.path + "/out")
        }
        guard case .io(let path, _) = error else {
            Issue.record("expected an IO error, got \(String(describing: error))")
            return
        }
        #expect(path == missing)
    }

    @Test("URLs that are not http, https or file are refused")
    func unsupportedScheme() {
        #expect(throws: HubError.unsupportedURL("ftp://example.com/x-12345678.pth")) {
            try FetchTarget(url: URL(string: "ftp://example.com/x-12345678.pth")!)
        }
    }
}
