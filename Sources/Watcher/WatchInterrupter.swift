import Glibc

/// Wakes a thread blocked in `FolderWatcher.next(timeout:)` from any other thread.
///
/// The daemon blocks a dedicated thread in `poll(2)` with no timeout so that an idle service
/// costs nothing; on shutdown (SIGTERM, service-lifecycle cancellation) it needs to end that
/// wait promptly without a periodic check. A self-pipe is the portable way to do that. This is
/// the one `Sendable` piece of the watcher; it owns the pipe, so the descriptors stay valid for
/// as long as anyone holds it, even after the watcher is closed.
public final class WatchInterrupter: Sendable {
    let readFD: Int32
    let writeFD: Int32

    init() throws(WatcherError) {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) != 0 {
            throw WatcherError.fromErrno("pipe", path: nil)
        }
        for fd in fds {
            // The daemon runs helper processes: do not leak the pipe into them.
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    /// Makes the current (or, if none is in progress, the next) `next(timeout:)` call return
    /// promptly, possibly with an empty array. Several interrupts before that call count as one.
    public func interrupt() {
        var byte: UInt8 = 1
        while write(writeFD, &byte, 1) < 0 && errno == EINTR {}
        // EAGAIN means the pipe is full, so a wake-up is already pending: nothing to do.
    }

    /// Consumes pending wake-ups so the next wait blocks again.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let n = read(readFD, &buffer, buffer.count)
            if n > 0 { continue }
            if n < 0 && errno == EINTR { continue }
            return
        }
    }

    deinit {
        close(readFD)
        close(writeFD)
    }
}
