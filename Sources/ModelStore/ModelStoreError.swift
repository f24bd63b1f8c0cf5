/// Why the model store could not provide a model.
///
/// Every message is written for the person at the terminal: it says what is wrong and what to do
/// about it (which file to delete, which files to put where), because a failed model download is
/// usually fixed by hand, not by the program.
public struct ModelStoreError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, broadly; callers switch on it to choose an exit code or a retry policy.
    public enum Kind: Sendable, Equatable {
        /// The model is not (fully) in the cache and downloading it failed (offline, HTTP error,
        /// connection lost). The message lists the files to install by hand.
        case notInstalled
        /// A cached file no longer matches the sha256 recorded when it was installed.
        case checksumMismatch
        /// The model name (or a signature in its yaml) cannot name a file safely.
        case invalidName
        /// A cached file exists but cannot be understood (for example a yaml that is not a bag).
        case invalidModelFile
        /// Creating, writing, renaming or reading a file in the cache failed.
        case fileSystem
        /// The download was cancelled by the caller.
        case cancelled
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
