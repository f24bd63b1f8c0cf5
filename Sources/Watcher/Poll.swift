import Glibc

/// `poll(2)`, the one place the watcher's thread sleeps.
///
/// Blocking in the kernel (rather than sleeping and checking in a loop) is what keeps an idle
/// daemon at zero CPU: the thread wakes only for an inotify event, an interrupt, or the next
/// settle deadline.
enum Poll {
    /// Which of the watched descriptors are readable after a wait.
    struct Readiness: Sendable, Equatable {
        var readable: [Bool]
    }

    /// Waits until one of `fds` is readable or `timeoutMilliseconds` pass (-1: forever).
    ///
    /// `EINTR` returns "nothing readable" instead of restarting with the same timeout: the caller
    /// recomputes its timeout from its deadlines anyway, so a signal storm cannot stretch the wait.
    static func waitReadable(_ fds: [Int32], timeoutMilliseconds: Int32, path: String) throws(WatcherError) -> Readiness {
        var entries = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let n = entries.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds) }
        if n < 0 {
            if errno == EINTR { return Readiness(readable: fds.map { _ in false }) }
            throw WatcherError.fromErrno("poll", path: path)
        }
        // POLLERR/POLLHUP count as readable: the following read reports the actual problem.
        let mask = Int16(POLLIN | POLLERR | POLLHUP | POLLNVAL)
        return Readiness(readable: entries.map { $0.revents & mask != 0 })
    }

    /// `duration` as a poll timeout, rounded *up* so the thread never wakes just before a
    /// deadline and has to poll again with a zero timeout (a short busy spin).
    static func milliseconds(_ duration: Duration) -> Int32 {
        if duration <= .zero { return 0 }
        let (seconds, attoseconds) = duration.components
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let ms = seconds.multipliedReportingOverflow(by: 1000)
        if ms.overflow { return Int32.max }
        let total = ms.partialValue + (attoseconds + perMillisecond - 1) / perMillisecond
        return Int32(clamping: total)
    }
}
