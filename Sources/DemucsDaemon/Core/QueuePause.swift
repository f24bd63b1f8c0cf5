import Foundation

/// The queue's pause after a machine fault (a full disk, a filesystem gone read-only, a
/// database that cannot be written): no worker claims a job until the pause ends, so one cause
/// does not burn every job's retries. Each further fault doubles the pause (5 s up to 5 min); a
/// job that completes ends it. The cause is shown in `demucsctl status` and the journal.
final class QueuePause: @unchecked Sendable {
    private let lock = NSLock()
    private var until: Date?
    private var cause: String?
    private var length: TimeInterval = 0
    let shortest: TimeInterval
    let longest: TimeInterval

    init(shortest: TimeInterval = 5, longest: TimeInterval = 300) {
        self.shortest = shortest
        self.longest = longest
    }

    /// Starts or lengthens the pause; returns its length in seconds.
    @discardableResult
    func pause(cause: String, now: Date = Date()) -> TimeInterval {
        lock.withLock {
            length = length == 0 ? shortest : min(length * 2, longest)
            until = now.addingTimeInterval(length)
            self.cause = cause
            return length
        }
    }

    /// A job completed: the machine works again.
    func clear() {
        lock.withLock {
            until = nil
            cause = nil
            length = 0
        }
    }

    /// Seconds left and the cause while paused; nil otherwise.
    func current(now: Date = Date()) -> (remaining: TimeInterval, cause: String)? {
        lock.withLock {
            guard let until, let cause, until > now else { return nil }
            return (until.timeIntervalSince(now), cause)
        }
    }
}
