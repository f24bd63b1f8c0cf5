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
            if let stage { entries[slot.index].stage = stage }
        }
    }

    /// The thread waits for work.
    func idle(_ slot: Slot) {
        lock.withLock {
            entries[slot.index].stage = nil
            entries[slot.index].lastSign = Date()
        }
    }

    /// Descriptions of the busy threads without a sign of progress for `limit` seconds.
    func stalled(limit: TimeInterval, now: Date = Date()) -> [String] {
        lock.withLock {
            entries.compactMap { entry in
                let quiet = now.timeIntervalSince(entry.lastSign)
                guard quiet > limit else { return nil }
                return "\(entry.name) \(entry.stage ?? "in its loop") for \(Int(quiet)) s"
            }
        }
    }
}

/// Names that arrived complete and wait for intake, in arrival order, each once; a name whose
/// enqueue must be tried again later waits until its time.
final class PendingNames: @unchecked Sendable {
    private let lock = NSLock()
    private var order: [String] = []
    private var notBefore: [String: Date] = [:]
    private var taken: Set<String> = []

    func add(_ name: String) {
        lock.withLock {
            if notBefore[name] == nil && !taken.contains(name) { order.append(name) }
            notBefore[name] = Date.distantPast
        }
    }

    func remove(_ name: String) {
        lock.withLock {
            order.removeAll { $0 == name }
            notBefore[name] = nil
        }
    }

    /// The first name whose time has come (it stays recorded until `done` or `postpone`).
    func next(now: Date = Date()) -> String? {
        lock.withLock {
            guard let index = order.firstIndex(where: { (notBefore[$0] ?? .distantPast) <= now }) else { return nil }
            let name = order.remove(at: index)
            notBefore[name] = nil
            taken.insert(name)
            return name
        }
    }

    func done(_ name: String) {
        lock.withLock { _ = taken.remove(name) }
    }

    func postpone(_ name: String, seconds: TimeInterval) {
        lock.withLock {
            taken.remove(name)
            if notBefore[name] == nil { order.append(name) }
            notBefore[name] = Date().addingTimeInterval(seconds)
        }
    }

    var isEmpty: Bool { lock.withLock { order.isEmpty } }
}

/// Which settings a SIGHUP cannot change (the threads and the watch are made at start-up).
enum ReloadCheck {
    static func unchangeable(from old: WorkSettings, to new: WorkSettings) -> [String] {
        var names: [String] = []
        if old.workers != new.workers { names.append("jobs.workers (\(old.workers) stays)") }
        if old.settleSeconds != new.settleSeconds { names.append("jobs.settle_seconds (\(old.settleSeconds) stays)") }
        if old.config.data != new.config.data { names.append("data (\(old.config.data) stays)") }
        return names
    }
}
