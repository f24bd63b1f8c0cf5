import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Receives one download's response and body from `URLSession` and streams the body into the
/// temporary file, reporting progress as it goes.
///
/// A data task with a delegate (rather than `URLSession.download`) is used so that the bytes go
/// straight into `.<file>.part` in the cache folder — on the same file system as the final name, so
/// the closing rename is atomic — and so the status code can be checked before any body is written.
/// The session calls back on a serial queue; the lock covers the few fields that the starting and
/// cancelling threads touch too.
final class DownloadTaskDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    /// How the transfer ended.
    enum Outcome: Sendable {
        /// The whole body is in the temporary file (and flushed to disk).
        case finished(bytes: Int64)
        case failed(DownloadError)
        case fileSystem(ModelStoreError)
        case cancelled
    }

    private let lock = NSLock()
    private let url: URL
    private let file: String
    private let partPath: String
    private let progress: (@Sendable (DownloadProgress) -> Void)?
    private let progressInterval: TimeInterval

    private var continuation: CheckedContinuation<Outcome, Never>?
    private var task: URLSessionTask?
    private var cancelRequested = false
    private var handle: FileHandle?
    private var expected: Int64?
    private var statusCode: Int?
    private var written: Int64 = 0
    private var earlyOutcome: Outcome?
    private var lastReport: TimeInterval = 0
    private var lastReportedBytes: Int64 = -1

    init(url: URL, file: String, partPath: String, progress: (@Sendable (DownloadProgress) -> Void)?, progressInterval: TimeInterval) {
        self.url = url
        self.file = file
        self.partPath = partPath
        self.progress = progress
        self.progressInterval = progressInterval
    }

    /// Starts `task`, delivering its outcome to `continuation`, unless the download was already
    /// cancelled: then the task is never started and the outcome is `.cancelled` at once. Checking
    /// under the lock closes the window between the caller's cancellation and the task's start.
    func start(_ task: URLSessionTask, deliveringTo continuation: CheckedContinuation<Outcome, Never>) {
        let alreadyCancelled = lock.withLock { () -> Bool in
            if cancelRequested { return true }
            self.continuation = continuation
            self.task = task
            return false
        }
        if alreadyCancelled {
            continuation.resume(returning: .cancelled)
        } else {
            task.resume()
        }
    }

    /// Cancels the transfer (from any thread); the outcome becomes `.cancelled`.
    func cancel() {
        let task = lock.withLock { () -> URLSessionTask? in
            cancelRequested = true
            return self.task
        }
        task?.cancel()
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        guard let http = response as? HTTPURLResponse else {
            earlyOutcome = .failed(DownloadError(url: url, reason: "the server's answer is not an HTTP response"))
            completionHandler(.cancel)
            return
        }
        statusCode = http.statusCode
        guard http.statusCode == 200 else {
            // Lowercased: Linux's Foundation capitalises these ("Not Found"), Apple's does not.
            let words = HTTPURLResponse.localizedString(forStatusCode: http.statusCode).lowercased()
            earlyOutcome = .failed(DownloadError(url: url, statusCode: http.statusCode,
                                                 reason: "HTTP \(http.statusCode) (\(words)) for \(response.url?.absoluteString ?? url.absoluteString)"))
            completionHandler(.cancel)
            return
        }
        // With a content coding the body on the wire (what Content-Length counts) is not the bytes
        // we receive, so the length can only be checked for plain bodies.
        let encoding = Self.header("Content-Encoding", in: http)?.lowercased()
        if http.expectedContentLength >= 0, encoding == nil || encoding == "identity" {
            expected = http.expectedContentLength
        }
        guard let handle = FileHandle(forWritingAtPath: partPath) else {
            earlyOutcome = .fileSystem(ModelStoreError(.fileSystem, "cannot open \(partPath) for writing"))
            completionHandler(.cancel)
            return
        }
        self.handle = handle
        report(force: true)
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard earlyOutcome == nil, let handle else { return }
        do {
            try handle.write(contentsOf: data)
        } catch {
            earlyOutcome = .fileSystem(ModelStoreError(.fileSystem, "cannot write \(partPath): \(error)"))
            dataTask.cancel()
            return
        }
        written += Int64(data.count)
        report(force: false)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let outcome = finish(error: error)
        let continuation = lock.withLock { () -> CheckedContinuation<Outcome, Never>? in
            let pending = self.continuation
            self.continuation = nil
            self.task = nil
            return pending
        }
        continuation?.resume(returning: outcome)
    }

    /// Closes the temporary file and decides how the transfer ended.
    private func finish(error: (any Error)?) -> Outcome {
        var outcome: Outcome
        if let earlyOutcome {
            outcome = earlyOutcome
        } else if let error {
            outcome = Self.outcome(for: error, url: url, bodyStarted: handle != nil, written: written, expected: expected)
        } else if statusCode != 200 || handle == nil {
            outcome = .failed(DownloadError(url: url, statusCode: statusCode, reason: "the server sent no usable response"))
        } else if let expected, written != expected {
            outcome = .failed(DownloadError(url: url, statusCode: statusCode,
                                            reason: "the connection was closed after \(written) of \(expected) bytes"))
        } else {
            outcome = .finished(bytes: written)
        }
        if let handle {
            do {
                if case .finished = outcome { try handle.synchronize() }
                try handle.close()
            } catch {
                if case .finished = outcome {
                    outcome = .fileSystem(ModelStoreError(.fileSystem, "cannot finish writing \(partPath): \(error)"))
                }
            }
            self.handle = nil
        }
        if case .finished = outcome { report(force: true) }
        return outcome
    }

    /// Calls the progress callback, at most once per `progressInterval` unless `force`d, and never
    /// twice with the same byte count.
    private func report(force: Bool) {
        guard let progress, written != lastReportedBytes else { return }
        let now = ProcessInfo.processInfo.systemUptime
        guard force || now - lastReport >= progressInterval || written == expected else { return }
        lastReport = now
        lastReportedBytes = written
        progress(DownloadProgress(file: file, bytesDone: written, bytesTotal: expected, isComplete: false))
    }

    /// Turns a transfer error into an outcome with a reason a person can act on.
    ///
    /// `bodyStarted` says a 200 response had arrived: an unknown error after that is the body being
    /// cut short (Linux's Foundation reports curl's "transfer closed with N bytes remaining to read"
    /// as `URLError.unknown`, where Apple's says `networkConnectionLost`).
    static func outcome(for error: any Error, url: URL, bodyStarted: Bool, written: Int64, expected: Int64?) -> Outcome {
        let host = url.host.map { host in url.port.map { "\(host):\($0)" } ?? host } ?? url.absoluteString
        guard let urlError = error as? URLError else {
            return .failed(DownloadError(url: url, reason: "\(error)"))
        }
        let cutShort = urlError.code == .networkConnectionLost || (bodyStarted && urlError.code == .unknown)
        let reason: String
        switch urlError.code {
        case .cancelled:
            return .cancelled
        case .cannotConnectToHost:
            reason = "cannot connect to \(host)"
        case .cannotFindHost, .dnsLookupFailed:
            reason = "cannot resolve the host name \(url.host ?? host)"
        case .notConnectedToInternet:
            reason = "no network connection"
        case .timedOut:
            reason = "\(host) did not answer in time"
        case _ where cutShort:
            if let expected {
                reason = "the connection was closed after \(written) of \(expected) bytes"
            } else {
                reason = "the connection was closed after \(written) bytes"
            }
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
             .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot, .clientCertificateRejected:
            reason = "the secure connection to \(host) failed"
        case .httpTooManyRedirects, .redirectToNonExistentLocation:
            reason = "\(host) redirected too often or to nowhere"
        default:
            reason = "network error \(urlError.code.rawValue) talking to \(host): \(urlError.localizedDescription)"
        }
        return .failed(DownloadError(url: url, reason: reason))
    }

    /// A response header, looked up without regard to case (header names are case-insensitive).
    static func header(_ name: String, in response: HTTPURLResponse) -> String? {
        for (key, value) in response.allHeaderFields {
            if let key = key as? String, key.caseInsensitiveCompare(name) == .orderedSame {
                return value as? String
            }
        }
        return nil
    }
}
