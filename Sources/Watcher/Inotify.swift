import Glibc

/// Thin wrappers over the inotify system calls.
///
/// Kept in one namespace, as swift-nio does for its syscalls, so that every call site gets the
/// same treatment: `EINTR` is retried (a signal delivered to the daemon, e.g. SIGCHLD from a
/// finished helper, must not look like a failure) and any other failure becomes a
/// `WatcherError` that carries `errno`, the call and the path.
enum Inotify {
    /// `inotify_init1(2)`; `flags` is a combination of `IN_NONBLOCK` and `IN_CLOEXEC`.
    static func init1(flags: Int32) throws(WatcherError) -> Int32 {
        while true {
            let fd = inotify_init1(flags)
            if fd >= 0 { return fd }
            if errno == EINTR { continue }
            throw WatcherError.fromErrno("inotify_init1", path: nil)
        }
    }

    /// `inotify_add_watch(2)`: returns the watch descriptor for `path`.
    static func addWatch(fd: Int32, path: String, mask: UInt32) throws(WatcherError) -> Int32 {
        while true {
            let wd = inotify_add_watch(fd, path, mask)
            if wd >= 0 { return wd }
            if errno == EINTR { continue }
            throw WatcherError.fromErrno("inotify_add_watch", path: path)
        }
    }

    /// `read(2)` on a non-blocking inotify descriptor.
    ///
    /// Returns the number of bytes read, or 0 when no event is queued (`EAGAIN`), so callers can
    /// drain the queue without a separate readiness check. `buffer` must hold at least one
    /// maximal record (`inotify_event` + `NAME_MAX` + 1), or the kernel answers `EINVAL`.
    static func read(fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws(WatcherError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return 0
            default: throw WatcherError.fromErrno("read inotify", path: path)
            }
        }
    }

    /// The smallest read buffer that is guaranteed to hold one record with the longest name.
    static let minimumReadSize = MemoryLayout<inotify_event>.size + Int(NAME_MAX) + 1
}
