import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fetches single files from a Hugging Face–style hub over HTTP(S).
///
/// The hub serves a repository's file at `<base>/<namespace>/<repo>/resolve/main/<file>` and usually
/// answers with a redirect to a CDN; `URLSession` follows redirects, and only a final status of 200
/// counts as success.
///
/// A file is never visible under its final name until it is complete: the body is written to
/// `.<file>.part` in the destination folder, flushed to disk, and renamed over the final name only
/// after the whole body (as many bytes as `Content-Length` announced) has arrived with status 200.
/// On any failure the temporary file is deleted.
public struct HubClient: Sendable {
    /// The public hub.
    public static let defaultBaseURL = URL(string: "https://huggingface.co")!

    /// The environment variable that overrides the hub address (a mirror, or a test server).
    public static let baseURLVariable = "DEMUCSD_HUB_URL"

    /// The hub address; file URLs are built below it, so it may include a path prefix.
    public var baseURL: URL
    /// How long to wait for the server to say anything (connecting, or between two chunks of body)
    /// before giving up. Not a limit on the whole transfer, which for 300 MB may take minutes.
    public var timeout: TimeInterval
    /// The least time between two progress reports for one file, so a fast link does not call the
    /// callback (and redraw a progress bar) for every network packet.
    public var progressInterval: TimeInterval

    /// A client for `baseURL` if given, else `$DEMUCSD_HUB_URL` from `environment` if set, else
    /// `https://huggingface.co`.
    public init(baseURL: URL? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                timeout: TimeInterval = 60,
                progressInterval: TimeInterval = 0.1) {
        self.baseURL = baseURL ?? Self.baseURL(environment: environment)
        self.timeout = timeout
        self.progressInterval = progressInterval
    }

    /// `$DEMUCSD_HUB_URL` if it is set to a usable URL, else `https://huggingface.co`.
    public static func baseURL(environment: [String: String]) -> URL {
        if let text = environment[baseURLVariable], !text.isEmpty,
           let url = URL(string: text), url.scheme != nil, url.host != nil {
            return url
        }
        return defaultBaseURL
    }

    /// The model's repository page, `<base>/<namespace>/<repo>`, the place a person downloads the
    /// files from by hand.
    public func repositoryURL(for model: HubModelName) -> URL {
        URL(string: Self.trimmingSlashes(baseURL.absoluteString) + "/" + model.namespace + "/" + model.repository)!
    }

    /// The download URL of one file of the model's repository, `<repo URL>/resolve/main/<file>`.
    public func fileURL(_ file: String, of model: HubModelName) -> URL {
        repositoryURL(for: model).appendingPathComponent("resolve").appendingPathComponent("main").appendingPathComponent(file)
    }

    /// Downloads `url` into the file `destination`, through `.<name>.part` beside it.
    ///
    /// Returns the number of bytes written. Throws `DownloadError` when the transfer fails (status
    /// other than 200, network error, body cut short), `ModelStoreError` with kind `.fileSystem`
    /// when the file cannot be written or renamed, or with kind `.cancelled` when the calling task
    /// is cancelled. In every failing case neither the temporary file nor a new file under the
    /// final name is left behind; an older file already at `destination` stays untouched.
    @discardableResult
    public func download(_ url: URL, to destination: String,
                         progress: (@Sendable (DownloadProgress) -> Void)? = nil) async throws -> Int64 {
        let destinationURL = URL(fileURLWithPath: destination)
        let file = destinationURL.lastPathComponent
        let partPath = destinationURL.deletingLastPathComponent().appendingPathComponent("." + file + ".part").path
        unlink(partPath)
        guard FileManager.default.createFile(atPath: partPath, contents: nil) else {
            throw ModelStoreError(.fileSystem, "cannot create \(partPath): \(String(cString: strerror(errno)))")
        }
        var keepPart = false
        defer { if !keepPart { unlink(partPath) } }

        let delegate = DownloadTaskDelegate(url: url, file: file, partPath: partPath,
                                            progress: progress, progressInterval: progressInterval)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpAdditionalHeaders = ["User-Agent": "demucsd-modelstore/1"]
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: queue)
        defer { session.finishTasksAndInvalidate() }
        let task = session.dataTask(with: URLRequest(url: url))

        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                delegate.start(task, deliveringTo: continuation)
            }
        } onCancel: {
            delegate.cancel()
        }

        switch outcome {
        case .failed(let error):
            throw error
        case .fileSystem(let error):
            throw error
        case .cancelled:
            throw ModelStoreError(.cancelled, "download of \(url.absoluteString) was cancelled")
        case .finished(let bytes):
            guard rename(partPath, destination) == 0 else {
                throw ModelStoreError(.fileSystem, "cannot move \(partPath) to \(destination): \(String(cString: strerror(errno)))")
            }
            keepPart = true
            progress?(DownloadProgress(file: file, bytesDone: bytes, bytesTotal: bytes, isComplete: true))
            return bytes
        }
    }

    static func trimmingSlashes(_ text: String) -> String {
        var text = Substring(text)
        while text.hasSuffix("/") { text = text.dropLast() }
        return String(text)
    }
}
