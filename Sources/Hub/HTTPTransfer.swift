import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Streams one HTTP(S) response into a partial file, resuming from the partial file's size.
///
/// URLSession calls the delegate methods one at a time on its own operation queue while `perform`
/// blocks the caller on a semaphore. All mutable state is guarded by `lock`, which is why the class can
/// be `@unchecked Sendable`.
final class HTTPTransfer: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    /// Downloads `url` into `partial`, resuming when it exists. A response that does not fit the
    /// partial file (a 206 starting elsewhere, a 416 for another size) discards it and starts over
    /// from zero, which cannot happen twice: without Range only 200 is accepted. Returns whether the
    /// finished file was resumed rather than downloaded from zero.
    static func download(
        _ url: URL, to partial: String, timeout: TimeInterval, userAgent: String,
        progress: (@Sendable (FetchProgress) -> Void)?
    ) throws -> Bool {
        var offset = fileSize(partial) ?? 0
        while true {
            let transfer = HTTPTransfer(url: url, partial: partial, offset: offset, progress: progress)
            if let resumed = try transfer.perform(timeout: timeout, userAgent: userAgent) { return resumed }
            try removeFile(partial)
            offset = 0
        }
    }

    /// What the status line and headers say to do with the body.
    private enum Plan {
        /// Write the body: after emptying the file (200), or appended to it (206).
        case write(truncate: Bool)
        /// 416 for exactly the partial file's size: it is already complete.
        case complete
        /// The answer does not fit the partial file: discard it and ask again from zero.
        case restart
    }

    private let url: URL
    private let partial: String
    private let offset: Int64
    private let progress: (@Sendable (FetchProgress) -> Void)?
    private let finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var plan: Plan?
    private var failure: HubError?
    private var fd: Int32 = -1
    private var onDisk: Int64 = 0
    private var total: Int64?

    private init(url: URL, partial: String, offset: Int64, progress: (@Sendable (FetchProgress) -> Void)?) {
        self.url = url
        self.partial = partial
        self.offset = offset
        self.progress = progress
    }

    /// Runs the request to the end. Returns whether it resumed, or nil when the partial file must be
    /// discarded and the download started over.
    private func perform(timeout: TimeInterval, userAgent: String) throws -> Bool? {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalAndRemoteCacheData
        configuration.urlCache = nil
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: queue)
        defer { session.finishTasksAndInvalidate() }

        var request = URLRequest(url: url)
        request.setValue(userAgent, forHTTPHeaderField: "User-Agent")
        // No content coding: byte offsets must be offsets into the file itself.
        request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        if offset > 0 { request.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range") }
        session.dataTask(with: request).resume()
        finished.wait()

        lock.lock()
        defer { lock.unlock() }
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        if let failure { throw failure }
        switch plan {
        case .restart: return nil
        case .complete: return true
        case .write(let truncate):
            if let total, onDisk != total {
                throw HubError.network(
                    url: url.absoluteString, message: "the connection closed after \(onDisk) of \(total) bytes",
                    partial: partial, partialBytes: onDisk)
            }
            return !truncate && offset > 0
        case nil:
            throw HubError.network(url: url.absoluteString, message: "no response", partial: nil, partialBytes: 0)
        }
    }

    // MARK: URLSessionDataDelegate

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        lock.lock()
        let accepted = accept(response)
        let report = accepted ? FetchProgress(bytes: onDisk, total: total, resumedFrom: offset) : nil
        lock.unlock()
        if let report { progress?(report) }
        completionHandler(accepted ? .allow : .cancel)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        lock.lock()
        guard fd >= 0, failure == nil else {
            lock.unlock()
            return
        }
        do {
            try data.withUnsafeBytes { try writeAll(fd, $0, path: partial) }
            onDisk += Int64(data.count)
        } catch {
            failure = error as? HubError
        }
        let report = failure == nil ? FetchProgress(bytes: onDisk, total: total, resumedFrom: offset) : nil
        lock.unlock()
        if let report {
            progress?(report)
        } else {
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        lock.lock()
        if let error, failure == nil {
            switch plan {
            case .complete, .restart:
                break  // we cancelled the body on purpose
            case .write, nil:
                let kept = onDisk > 0 ? partial : nil
                failure = .network(
                    url: url.absoluteString, message: describe(error), partial: kept, partialBytes: onDisk)
            }
        }
        lock.unlock()
        finished.signal()
    }

    /// Decides what to do with the response, opening the partial file when the body is wanted.
    /// Called with `lock` held; returns whether to receive the body.
    private func accept(_ response: URLResponse) -> Bool {
        guard let http = response as? HTTPURLResponse else {
            failure = .network(url: url.absoluteString, message: "not an HTTP response", partial: nil, partialBytes: 0)
            return false
        }
        let length = http.expectedContentLength >= 0 ? http.expectedContentLength : nil
        let range = header(http, "Content-Range").flatMap(ContentRange.init)
        switch http.statusCode {
        case 200:
            // A fresh download, or a server that ignored Range: start over from zero.
            return open(truncate: true, onDisk: 0, total: length)
        case 206 where offset > 0:
            guard let range, range.start == offset else {
                plan = .restart
                return false
            }
            return open(truncate: false, onDisk: offset, total: range.total ?? length.map { offset + $0 })
        case 416 where offset > 0:
            // Nothing to send from `offset` on: complete if the file is exactly that long.
            plan = range?.total == offset ? .complete : .restart
            return false
        default:
            failure = .httpStatus(url: url.absoluteString, status: http.statusCode)
            return false
        }
    }

    private func open(truncate: Bool, onDisk: Int64, total: Int64?) -> Bool {
        do {
            fd = try openForWriting(partial, truncate: truncate)
        } catch {
            failure = error as? HubError
            return false
        }
        plan = .write(truncate: truncate)
        self.onDisk = onDisk
        self.total = total
        return true
    }
}

/// A `Content-Range: bytes START-END/TOTAL` or `bytes */TOTAL` header (TOTAL may be `*`).
struct ContentRange: Equatable {
    /// The first byte sent, nil for `*/TOTAL`.
    let start: Int64?
    /// The complete length, nil when `*`.
    let total: Int64?

    init?(_ value: String) {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("bytes") else { return nil }
        let spec = trimmed.dropFirst(5).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        if parts[0] == "*" {
            start = nil
        } else {
            guard let dash = parts[0].firstIndex(of: "-"), let first = Int64(parts[0][..<dash]) else { return nil }
            start = first
        }
        if parts[1] == "*" {
            total = nil
        } else {
            guard let length = Int64(parts[1]) else { return nil }
            total = length
        }
    }
}

/// A response header, looked up without regard to case.
private func header(_ response: HTTPURLResponse, _ name: String) -> String? {
    for (key, value) in response.allHeaderFields {
        if let key = key as? String, key.caseInsensitiveCompare(name) == .orderedSame { return value as? String }
    }
    return nil
}

/// A short reason for a failed transfer.
private func describe(_ error: any Error) -> String {
    guard let code = (error as? URLError)?.code else { return "\(error)" }
    switch code {
    case .cannotFindHost, .dnsLookupFailed: return "cannot resolve the host name"
    case .cannotConnectToHost: return "cannot connect to the host"
    case .notConnectedToInternet: return "not connected to the internet"
    case .timedOut: return "timed out"
    case .networkConnectionLost: return "the connection was lost"
    case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
        .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot:
        return "TLS failed"
    default: return (error as NSError).localizedDescription
    }
}
