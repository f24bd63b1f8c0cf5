import Glibc

/// Watches one folder (the daemon's `data/input`) and reports files that are completely there.
///
/// Users drop songs with `cp`, `mv`, browsers, `rsync`, `scp` or file managers; the daemon must
/// start on a song only once it is whole, and exactly once. The rule:
///
/// - A name becomes a candidate on `IN_CLOSE_WRITE` (a writer closed it: `cp`, downloads) or
///   `IN_MOVED_TO` (it was renamed into the folder: `mv`, and `rsync`/`scp`/browsers that write
///   under a temporary name and rename at the end).
/// - It is reported `ready` only after a settle period with no further event for that name, and
///   only if `lstat` then shows a regular file unchanged since the last event (size, times,
///   inode) that no process holds open for writing (`OpenWriters`).
/// - Files already in the folder (start-up, an inotify overflow) go through the same rule:
///   `armExisting()` settles them like new arrivals. A writer that
///   opens and closes repeatedly, or reopens and keeps writing, yields one `ready` after it
///   stops. (A writer that pauses for longer than the settle period between sessions can still
///   produce a second `ready`; the daemon should treat `ready` for a known, unchanged file as
///   a no-op.)
/// - Names that are not candidates (`isCandidate`) are ignored: hidden names and temporary
///   download suffixes. A temporary file renamed to its final name becomes ready through
///   `IN_MOVED_TO` of the final name.
///
/// The watch is **not recursive**: subfolders of the input folder are ignored (a folder appearing
/// is reported once as `.ignored(name, .directory)`, nothing inside it ever), as are files
/// inside them (users are expected to drop files, not folders; reporting a dropped folder to
/// the user is the daemon's business, via `scanEntries`). Symbolic links are not followed.
///
/// **Polling** (``Mode/poll(every:)``) replaces inotify where it cannot see the changes: on NFS
/// or SMB, inotify reports only what this host's kernel did, never another host's writes. The
/// watcher then creates no inotify instance at all and scans the folder every interval; a name
/// that is new or whose `lstat` snapshot changed since the last scan goes through the same
/// settle rule, a name that disappeared is reported removed. With inotify, ``rescan()`` is the
/// same diff scan, as a safety net for a lost event.
///
/// Threading: the watcher is meant to be owned by one thread that loops on `next(timeout:)`.
/// It is not `Sendable`; use `interrupter` to wake that thread from elsewhere.
public final class FolderWatcher {
    /// The folder being watched, as given.
    public let path: String
    /// How long a name must stay quiet after its last event before it is `ready`.
    public let settle: Duration
    /// Wakes a blocked `next(timeout:)` from another thread (e.g. on shutdown).
    public let interrupter: WatchInterrupter

    /// How changes are noticed.
    public enum Mode: Sendable, Equatable {
        /// inotify events (a local folder).
        case inotify
        /// A scan of the folder every interval, no inotify (a network filesystem).
        case poll(every: Duration)
    }

    public let mode: Mode
    /// -1 when polling, or once closed.
    private var inotifyFD: Int32
    private let watchDescriptor: Int32
    private var closed = false
    /// What each name looked like when it was last reported ready or seen by a scan, so a scan
    /// arms only what is new or changed.
    private var known: [FileName: FileSnapshot] = [:]
    private var nextScan: ContinuousClock.Instant?
    /// `path` as bytes, to `lstat` entries by raw name. (Deliberately not an open descriptor of
    /// the folder: holding one keeps a removed folder's inode alive and delays `IN_DELETE_SELF`
    /// until it is closed, so `folderGone` would never come.)
    private let folderBytes: [UInt8]
    private var settling = SettleQueue()
    private var gone = false
    private let readBuffer: UnsafeMutableRawBufferPointer
    private let clock = ContinuousClock()

    /// The events the watch asks for. `IN_ONLYDIR` makes a non-folder path fail with `ENOTDIR`
    /// at the add instead of silently watching a file.
    static let watchMask = UInt32(bitPattern:
        IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW)
    static let addMask = watchMask | UInt32(bitPattern: IN_ONLYDIR)

    /// Starts watching `path`.
    ///
    /// Throws a `WatcherError` when the folder does not exist (`ENOENT`), is not a folder
    /// (`ENOTDIR`), is not readable (`EACCES`) or an inotify limit is reached. Files already in
    /// the folder are not reported: list them with `scan(path:)` *after* creating the watcher,
    /// so nothing dropped in between is missed.
    public init(path: String, settle: Duration = .seconds(1), mode: Mode = .inotify) throws {
        precondition(settle >= .zero, "settle must not be negative")
        self.path = path
        self.settle = settle
        self.mode = mode
        self.interrupter = try WatchInterrupter()
        folderBytes = Array(path.utf8)
        readBuffer = .allocate(byteCount: max(64 * 1024, Inotify.minimumReadSize),
                               alignment: MemoryLayout<inotify_event>.alignment)
        if case .poll(let interval) = mode {
            precondition(interval > .zero, "the poll interval must be positive")
            // The folder must be there and readable, as for inotify.
            guard let dir = opendir(path) else {
                readBuffer.deallocate()
                throw WatcherError.fromErrno("opendir", path: path)
            }
            closedir(dir)
            inotifyFD = -1
            watchDescriptor = -1
            nextScan = clock.now.advanced(by: interval)
            return
        }
        let fd: Int32
        do {
            fd = try Inotify.init1(flags: Int32(IN_NONBLOCK | IN_CLOEXEC))
        } catch {
            readBuffer.deallocate()
            throw error
        }
        do {
            watchDescriptor = try Inotify.addWatch(fd: fd, path: path, mask: Self.addMask)
        } catch {
            Glibc.close(fd)
            readBuffer.deallocate()
            throw error
        }
        inotifyFD = fd
    }

    deinit {
        close()
        readBuffer.deallocate()
    }

    /// Stops watching and releases the descriptors. Safe to call more than once; `next` throws
    /// `EBADF` afterwards.
    public func close() {
        if inotifyFD >= 0 {
            Glibc.close(inotifyFD)
            inotifyFD = -1
        }
        closed = true
        settling.removeAll()
    }

    /// Waits for events and returns at least one, or an empty array when `timeout` passes
    /// (`nil`: wait forever) or `interrupter` fires.
    ///
    /// The thread sleeps in `poll(2)` on the inotify descriptor; while names are settling the
    /// poll timeout is the earliest settle deadline, so neither idling nor debouncing costs CPU.
    public func next(timeout: Duration?) throws -> [WatchEvent] {
        guard !closed else {
            throw WatcherError(errnoCode: EBADF, operation: "next", path: path)
        }
        if gone { return [.folderGone] }
        let limit = timeout.map { clock.now.advanced(by: max($0, .zero)) }
        if case .poll(let interval) = mode { return try nextPolling(limit: limit, interval: interval) }
        while true {
            var events = settleDue(now: clock.now)
            if !events.isEmpty { return events }

            let now = clock.now
            var wake = settling.earliestDeadline
            if let limit { wake = min(wake ?? limit, limit) }
            let milliseconds = wake.map { Poll.milliseconds(now.duration(to: $0)) } ?? -1
            let readiness = try Poll.waitReadable([inotifyFD, interrupter.readFD],
                                                  timeoutMilliseconds: milliseconds, path: path)
            if readiness.readable[0] {
                events += try drainQueue()
                if gone { return events }
            }
            events += settleDue(now: clock.now)
            if readiness.readable[1] {
                interrupter.drain()
                return events
            }
            if !events.isEmpty { return events }
            if let limit, clock.now >= limit { return [] }
        }
    }

    /// Whether `name` may be a song dropped by a user, as opposed to something to leave alone.
    ///
    /// Rejected: empty, `.`/`..`, hidden names (a leading `.`, which covers `rsync`'s
    /// `.name.XXXXXX`, editors' and many tools' temporary files) and names ending, in any letter
    /// case, with a temporary suffix of common downloaders and editors: `.part` (Firefox, wget2,
    /// KDE), `.crdownload` (Chrome), `.download` (Safari), `.tmp`, `.temp`, `.partial`, `~`
    /// (backup files), `.swp` (vim), `.!qB` (qBittorrent), `.opdownload` (Opera). Such files are
    /// renamed to their final name when complete, which the watcher sees as `IN_MOVED_TO`.
    public static func isCandidate(_ name: String) -> Bool {
        if name.isEmpty || name == "." || name == ".." || name.hasPrefix(".") { return false }
        let lower = name.lowercased()
        return !temporarySuffixes.contains { lower.hasSuffix($0) }
    }

    /// Lower-case temporary suffixes, see `isCandidate`.
    public static let temporarySuffixes: [String] = [
        ".part", ".crdownload", ".download", ".tmp", ".temp", ".partial", "~", ".swp", ".!qb", ".opdownload",
    ]

    // MARK: - Event handling

    /// Reads everything queued (bounded, so a flood of events cannot starve the settle timers).
    private func drainQueue() throws -> [WatchEvent] {
        var events: [WatchEvent] = []
        for _ in 0..<16 {
            let n = try Inotify.read(fd: inotifyFD, into: readBuffer, path: path)
            if n == 0 { break }
            let records = InotifyRecord.parse(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
            events += ingest(records, now: clock.now)
            if gone { break }
        }
        return events
    }

    /// Applies kernel records to the settle queue and returns the events that are immediate
    /// (removals, overflow, folder gone). Internal so tests can feed crafted records.
    func ingest(_ records: [InotifyRecord], now: ContinuousClock.Instant) -> [WatchEvent] {
        var events: [WatchEvent] = []
        for record in records {
            if gone { break }
            if record.has(IN_Q_OVERFLOW) {
                if !events.contains(.rescanNeeded) { events.append(.rescanNeeded) }
                continue
            }
            guard record.wd == watchDescriptor else { continue }
            if record.has(IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED) {
                // The folder itself is gone or no longer the one we watch: names still settling
                // cannot be reached by the daemon's path any more.
                gone = true
                settling.removeAll()
                events.append(.folderGone)
                break
            }
            if record.name.isEmpty { continue }
            let name = FileName(bytes: record.name)
            guard name.isCandidate else { continue }
            // Subfolders are not watched (nothing inside them is ever reported), but a folder
            // appearing is reported once as ignored, so the daemon can say why nothing happens.
            if record.has(IN_ISDIR) {
                if record.has(IN_CREATE | IN_MOVED_TO) {
                    events.append(.ignored(name.string ?? name.displayString, name.string == nil ? .undecodableName : .directory))
                }
                continue
            }
            if record.has(IN_CREATE) {
                // A regular file being created is reported when its writer closes it; only a
                // symbolic link (`ln -s`, which never closes anything) is settled from here.
                if let snapshot = FileSnapshot.lstat(folder: folderBytes, name: name), snapshot.kind == .symlink {
                    settling.arm(name, deadline: now.advanced(by: settle), snapshot: snapshot)
                }
                continue
            }
            if record.has(IN_CLOSE_WRITE | IN_MOVED_TO) {
                settling.arm(name, deadline: now.advanced(by: settle),
                             snapshot: FileSnapshot.lstat(folder: folderBytes, name: name))
            } else if record.has(IN_DELETE | IN_MOVED_FROM) {
                settling.cancel(name)
                known[name] = nil
                if let string = name.string { events.append(.removed(string)) }
            }
        }
        return events
    }

    /// Puts every candidate entry already in the folder through the settle rule, for start-up
    /// and after `.rescanNeeded`: regular files are reported `ready` only after a settle period
    /// in which they did not change and no process had them open for writing, like a file
    /// that just arrived. Other entries (folders, links, special files, names that are not
    /// UTF-8) are returned at once as `.ignored`, so the daemon can say why nothing happens.
    ///
    /// Call it after creating the watcher, so nothing dropped in between is missed. A name
    /// that is already settling keeps its timer.
    public func armExisting() throws -> [WatchEvent] {
        var events: [WatchEvent] = []
        let deadline = clock.now.advanced(by: settle)
        for (name, kind) in try Self.scanEntries(path: path) {
            switch kind {
            case .regular:
                let fileName = FileName(name)
                guard settling.entries[fileName] == nil else { continue }
                settling.arm(fileName, deadline: deadline, snapshot: FileSnapshot.lstat(folder: folderBytes, name: fileName))
            case .directory, .symlink, .other, .undecodableName:
                events.append(.ignored(name, kind))
            }
        }
        return events
    }

    // MARK: - Scans

    /// The polling form of ``next(timeout:)``: sleeps on the interrupter alone until the next
    /// scan, settle deadline or `limit`.
    private func nextPolling(limit: ContinuousClock.Instant?, interval: Duration) throws -> [WatchEvent] {
        while true {
            var events = settleDue(now: clock.now)
            if let due = nextScan, clock.now >= due {
                events += try scanForChanges()
                nextScan = clock.now.advanced(by: interval)
                if gone { return events }
                events += settleDue(now: clock.now)
            }
            if !events.isEmpty { return events }
            let now = clock.now
            var wake = nextScan ?? now.advanced(by: interval)
            if let deadline = settling.earliestDeadline { wake = min(wake, deadline) }
            if let limit { wake = min(wake, limit) }
            let readiness = try Poll.waitReadable([interrupter.readFD],
                                                  timeoutMilliseconds: Poll.milliseconds(now.duration(to: wake)), path: path)
            if readiness.readable[0] {
                interrupter.drain()
                return settleDue(now: clock.now)
            }
            if let limit, clock.now >= limit { return settleDue(now: clock.now) }
        }
    }

    /// Scans the folder now and puts what is new or changed since it was last known through
    /// the settle rule; reports what disappeared. The safety net of an inotify watch (a lost
    /// event) and the whole watch of a polling one.
    public func rescan() throws -> [WatchEvent] {
        try scanForChanges()
    }

    private func scanForChanges() throws -> [WatchEvent] {
        let entries: [(name: FileName, snapshot: FileSnapshot)]
        do {
            entries = try Self.scanSnapshots(path: path)
        } catch let error as WatcherError where error.errnoCode == ENOENT || error.errnoCode == ENOTDIR {
            gone = true
            settling.removeAll()
            return [.folderGone]
        }
        var events: [WatchEvent] = []
        let deadline = clock.now.advanced(by: settle)
        var present = Set<FileName>()
        for (name, snapshot) in entries {
            present.insert(name)
            guard known[name] != snapshot else { continue }
            if snapshot.kind == .regular {
                if settling.entries[name] == nil { settling.arm(name, deadline: deadline, snapshot: snapshot) }
            } else {
                // Reported once, as the inotify watch does for a folder or link appearing.
                if known[name]?.kind != snapshot.kind {
                    events.append(.ignored(name.string ?? name.displayString, name.string == nil ? .undecodableName : snapshot.kind))
                }
                known[name] = snapshot
            }
        }
        for name in known.keys where !present.contains(name) {
            known[name] = nil
            settling.cancel(name)
            if let string = name.string { events.append(.removed(string)) }
        }
        for name in settling.entries.keys where !present.contains(name) {
            settling.cancel(name)
            if let string = name.string { events.append(.removed(string)) }
        }
        return events
    }

    /// Reports names whose settle period ended, or re-arms those still being written.
    private func settleDue(now: ContinuousClock.Instant) -> [WatchEvent] {
        guard !settling.isEmpty else { return [] }
        var events: [WatchEvent] = []
        var settled: [(name: FileName, string: String, snapshot: FileSnapshot)] = []
        for (name, entry) in settling.takeExpired(now: now) {
            // Gone since the event: its removal was (or will be) reported by IN_DELETE.
            guard let current = FileSnapshot.lstat(folder: folderBytes, name: name) else { continue }
            if current != entry.snapshot {
                // Written again without a close yet (or unreadable at the event): wait another
                // settle period from now; its eventual close re-arms it anyway.
                settling.arm(name, deadline: now.advanced(by: settle), snapshot: current)
                continue
            }
            // Replaced by a folder meanwhile: subfolders are not reported.
            if current.kind == .directory { continue }
            guard let string = name.string else {
                events.append(.ignored(name.displayString, .undecodableName))
                continue
            }
            switch current.kind {
            case .regular: settled.append((name, string, current))
            case .directory: continue
            case .symlink, .other, .undecodableName: events.append(.ignored(string, current.kind))
            }
        }
        // Unchanged for a settle period, but a writer that paused may still hold it open.
        let held = OpenWriters.openForWriting(Set(settled.map(\.snapshot.identity)))
        for item in settled {
            if held.contains(item.snapshot.identity) {
                settling.arm(item.name, deadline: now.advanced(by: settle), snapshot: item.snapshot)
            } else {
                known[item.name] = item.snapshot
                events.append(.ready(item.string))
            }
        }
        return events
    }
}
