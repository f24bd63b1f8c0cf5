import Foundation

/// Which of the daemon's threads are making progress, for the watchdog.
///
/// A thread is *idle* (waiting for work: always fine) or *busy* with a stage ("separating
/// song.wav") and the time of its last sign of progress — a segment done, an event handled, a
/// hash finished. A busy thread without a sign for ``stallLimit`` seconds is stalled: a decode,
/// a BLAS call or a filesystem that hangs. The heartbeat then stops the watchdog pings, and
/// systemd (`WatchdogSec=`) restarts the unit.
final class Liveness: @unchecked Sendable {
    /// Longer than any single step of a separation takes here (one htdemucs segment is seconds,
    /// decoding an hour of MP3 well under a minute).
    static let stallLimit: TimeInterval = 120

    struct Slot: Sendable { fileprivate let index: Int }

    private struct Entry {
        var name: String
        var stage: String?
        var lastSign: Date
        /// Waiting for work (a condition wait, however long: a queue pause lasts up to 5 min).
        var isIdle = false
    }

    private let lock = NSLock()
    private var entries: [Entry] = []

    func register(_ name: String) -> Slot {
        lock.withLock {
            entries.append(Entry(name: name, stage: nil, lastSign: Date()))
            return Slot(index: entries.count - 1)
        }
    }

    /// A sign of progress; `stage` nil means the thread's loop is turning without a task.
    func beat(_ slot: Slot, stage: String?, now: Date = Date()) {
        lock.withLock {
            entries[slot.index].lastSign = now
            entries[slot.index].isIdle = false
            if let stage { entries[slot.index].stage = stage }
        }
    }

    /// The thread waits for work: never stalled until its next `beat`.
    func idle(_ slot: Slot, now: Date = Date()) {
        lock.withLock {
            entries[slot.index].stage = nil
            entries[slot.index].lastSign = now
            entries[slot.index].isIdle = true
        }
    }

    /// Descriptions of the threads that are not idle and gave no sign of progress for `limit`
    /// seconds.
    func stalled(limit: TimeInterval, now: Date = Date()) -> [String] {
        lock.withLock {
            entries.compactMap { entry in
                let quiet = now.timeIntervalSince(entry.lastSign)
                guard !entry.isIdle, quiet > limit else { return nil }
                return "\(entry.name) \(entry.stage ?? "in its loop") for \(Int(quiet)) s"
            }
        }
    }
}
