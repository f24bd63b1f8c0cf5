/// The single error type of AudioIO.
///
/// Every failure names the file involved (when there is one) and a human reason, because the
/// daemon and CLI report these straight to users who need to know *which* of many stems or
/// inputs failed and *why* (permission, disk full, unknown format) without a stack trace.
public struct AudioIOError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, coarse enough for callers to branch on (e.g. map to exit codes).
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// The path does not exist (or a folder on the way to it does not).
        case fileNotFound
        /// The path exists but is a folder or some other non-regular file.
        case notARegularFile
        /// The file exists but holds zero bytes.
        case emptyFile
        /// The OS refused access (EACCES, EPERM, read-only file system).
        case permissionDenied
        /// The device ran out of space or quota while writing.
        case noSpace
        /// libsndfile did not recognise the content as audio it can read.
        case unsupportedFormat
        /// The file looked like audio but could not be decoded completely.
        case corruptFile
        /// A caller-supplied value is out of range (bit depth, bitrate, sample rate, ...).
        case invalidArgument
        /// The requested channel layout cannot be derived from the source (demucs rule).
        case unsupportedChannelConversion
        /// The encoder library rejected the settings or failed while encoding.
        case encoderFailed
        /// Any other operating-system level I/O failure.
        case ioFailed
    }

    /// The kind of operation that failed, so the message reads naturally.
    public enum Operation: String, Sendable, Equatable {
        case decode = "cannot decode"
        case encode = "cannot write"
        case convert = "cannot convert"
    }

    public var kind: Kind
    public var operation: Operation
    /// The file the operation was about; `nil` for in-memory operations (channel conversion, resampling).
    public var path: String?
    /// A short human-readable reason, usually from libsndfile, LAME or `strerror`.
    public var reason: String

    public init(_ kind: Kind, _ operation: Operation, path: String?, reason: String) {
        self.kind = kind
        self.operation = operation
        self.path = path
        self.reason = reason
    }

    public var description: String {
        if let path {
            return "\(operation.rawValue) '\(path)': \(reason)"
        }
        return "\(operation.rawValue) audio: \(reason)"
    }
}
