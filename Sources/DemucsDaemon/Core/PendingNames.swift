import Foundation

/// Names that arrived complete and wait for intake, in arrival order, each once.
///
/// A name is *waiting* (in arrival order, with the time it may be taken: now, or later when its
/// enqueue must be tried again) or *taken* by intake until `done` or `postpone`. A name that
/// arrives again while taken (the file was replaced while intake read it) is taken once more
/// after `done`: never twice at once, never dropped.
final class PendingNames: @unchecked Sendable {
    private let lock = NSLock()
    private var order: [String] = []
    private var notBefore: [String: Date] = [:]
    private var taken: Set<String> = []
    private var arrivedAgain: Set<String> = []

    func add(_ name: String) {
        lock.withLock {
            if taken.contains(name) {
                arrivedAgain.insert(name)
            } else {
                if notBefore[name] == nil { order.append(name) }
                notBefore[name] = .distantPast
            }
        }
    }

    /// The file is gone: forget the name unless intake holds it (intake will find it gone).
    func remove(_ name: String) {
        lock.withLock {
            order.removeAll { $0 == name }
            notBefore[name] = nil
            arrivedAgain.remove(name)
        }
    }

    /// Takes the first waiting name whose time has come.
    func next(now: Date = Date()) -> String? {
        lock.withLock {
            guard let index = order.firstIndex(where: { notBefore[$0]! <= now }) else { return nil }
            let name = order.remove(at: index)
            notBefore[name] = nil
            taken.insert(name)
            return name
        }
    }

    /// Intake finished with a name; it waits again if it arrived again meanwhile.
    func done(_ name: String) {
        lock.withLock {
            guard taken.remove(name) != nil else { return }
            if arrivedAgain.remove(name) != nil {
                order.append(name)
                notBefore[name] = .distantPast
            }
        }
    }

    /// Intake could not queue a name (the database did not answer): it waits `seconds`.
    func postpone(_ name: String, seconds: TimeInterval, now: Date = Date()) {
        lock.withLock {
            taken.remove(name)
            arrivedAgain.remove(name)
            if notBefore[name] == nil { order.append(name) }
            notBefore[name] = now.addingTimeInterval(seconds)
        }
    }

    /// No name waits (taken ones aside).
    var isEmpty: Bool { lock.withLock { order.isEmpty } }
}
