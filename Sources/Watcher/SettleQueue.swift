/// Names that have finished a write or arrived by rename and are waiting out the settle period.
///
/// A value type with explicit `now` arguments so the debounce rules are independent of real
/// time. The watcher turns `earliestDeadline` into its `poll(2)` timeout, which is how the settle
/// timer works without a busy loop.
struct SettleQueue: Sendable {
    struct Entry: Sendable, Equatable {
        var deadline: ContinuousClock.Instant
        /// The entry as it was at the last event; `nil` if it could not be read then.
        var snapshot: FileSnapshot?
    }

    private(set) var entries: [FileName: Entry] = [:]

    var isEmpty: Bool { entries.isEmpty }

    /// Starts or restarts the settle timer for `name`: every new event pushes the deadline back.
    mutating func arm(_ name: FileName, deadline: ContinuousClock.Instant, snapshot: FileSnapshot?) {
        entries[name] = Entry(deadline: deadline, snapshot: snapshot)
    }

    /// Forgets `name` (it was deleted or renamed away before settling).
    mutating func cancel(_ name: FileName) {
        entries[name] = nil
    }

    mutating func removeAll() {
        entries.removeAll()
    }

    /// The next moment something may become ready; `nil` when nothing is settling.
    var earliestDeadline: ContinuousClock.Instant? {
        entries.values.lazy.map(\.deadline).min()
    }

    /// Removes and returns the entries whose deadline is at or before `now`, earliest first.
    mutating func takeExpired(now: ContinuousClock.Instant) -> [(name: FileName, entry: Entry)] {
        let due = entries.filter { $0.value.deadline <= now }
            .map { (name: $0.key, entry: $0.value) }
            .sorted {
                $0.entry.deadline != $1.entry.deadline
                    ? $0.entry.deadline < $1.entry.deadline
                    : FileName.precedes($0.name, $1.name)
            }
        for item in due { entries[item.name] = nil }
        return due
    }
}
