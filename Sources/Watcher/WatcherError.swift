import Glibc

/// The single error type of the Watcher module: a failed system call.
///
/// Watching fails for operational reasons an administrator has to fix (the input folder is
/// missing, not a folder, unreadable, or the per-user inotify watch/instance limit is reached),
/// so the error keeps the raw `errno` to branch on, the call that failed and the path it was
/// about, and renders them as one journal-ready line.
public struct WatcherError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The `errno` value the call left behind (e.g. `ENOENT`, `ENOTDIR`, `EMFILE`, `ENOSPC`).
    public var errnoCode: Int32
    /// The system call or operation that failed, e.g. `"inotify_add_watch"` or `"opendir"`.
    public var operation: String
    /// The file or folder the call was about, when there is one.
    public var path: String?

    public init(errnoCode: Int32, operation: String, path: String?) {
        self.errnoCode = errnoCode
        self.operation = operation
        self.path = path
    }

    /// Captures the current `errno`; call straight after the failing call.
    static func fromErrno(_ operation: String, path: String?) -> WatcherError {
        WatcherError(errnoCode: errno, operation: operation, path: path)
    }

    public var description: String {
        var reason = String(cString: strerror(errnoCode))
        // ENOSPC from inotify_add_watch does not mean "disk full": name the real limit.
        if operation == "inotify_add_watch", errnoCode == ENOSPC {
            reason += " (fs.inotify.max_user_watches reached)"
        } else if operation == "inotify_init1", errnoCode == EMFILE {
            reason += " (fs.inotify.max_user_instances or the file descriptor limit reached)"
        }
        if let path {
            return "\(operation) '\(path)': \(reason) (errno \(errnoCode))"
        }
        return "\(operation): \(reason) (errno \(errnoCode))"
    }
}
