import Foundation

/// Why one file could not be fetched from the hub: an HTTP status other than 200, a network
/// failure, or a body cut short.
///
/// Kept apart from `ModelStoreError` because it describes only the transfer; `ModelDownloader`
/// turns it into the user-facing "not installed, put these files there" message, using `reason`
/// as the part in parentheses.
public struct DownloadError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The URL that was requested.
    public var url: URL
    /// The final HTTP status, when a response arrived.
    public var statusCode: Int?
    /// What went wrong, in a few words (`HTTP 404 (not found) for https://…`, `cannot connect to …`).
    public var reason: String

    public init(url: URL, statusCode: Int? = nil, reason: String) {
        self.url = url
        self.statusCode = statusCode
        self.reason = reason
    }

    public var description: String { "cannot download \(url.absoluteString): \(reason)" }
}
