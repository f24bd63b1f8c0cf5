import Foundation
import Glibc
import Watcher

/// An event with the moment `next(timeout:)` returned it, for timing assertions.
struct TimedEvent {
    var event: WatchEvent
    var at: ContinuousClock.Instant
}

/// Helpers shared by the watcher tests: private temporary folders, writers that use the raw
/// system calls (so the exact inotify events are known), and event collection with deadlines.
enum WatcherTestSupport {
    static let clock = ContinuousClock()

    /// A fresh empty folder under the system temporary directory; call `remove` when done.
    static func makeFolder(_ label: String = #function) throws -> String {
        let safe = label.filter { $0.isLetter || $0.isNumber }
        let path = NSTemporaryDirectory() + "watcher-\(safe)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Creates or truncates `path`, writes `count` bytes and closes it: one `IN_CLOSE_WRITE`.
    static func writeFile(_ path: String, count: Int = 4096) throws {
        try withNamedFile(Array(path.utf8), flags: O_WRONLY | O_CREAT | O_TRUNC) { fd in
            try writeAll(fd, count: count)
        }
    }

    /// Like `writeFile` with a name given as raw bytes (possibly not UTF-8) inside `folder`.
    static func writeFile(in folder: String, nameBytes: [UInt8], count: Int = 4096) throws {
        try withNamedFile(Array(folder.utf8) + [UInt8(ascii: "/")] + nameBytes, flags: O_WRONLY | O_CREAT | O_TRUNC) { fd in
            try writeAll(fd, count: count)
        }
    }

    /// Opens `path` for appending, writes `count` bytes and closes it.
    static func appendFile(_ path: String, count: Int) throws {
        try withNamedFile(Array(path.utf8), flags: O_WRONLY | O_CREAT | O_APPEND) { fd in
            try writeAll(fd, count: count)
        }
    }

    static func withNamedFile(_ pathBytes: [UInt8], flags: Int32, _ body: (Int32) throws -> Void) throws {
        let fd = (pathBytes + [0]).withUnsafeBufferPointer {
            $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, flags | O_CLOEXEC, 0o644) }
        }
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        try body(fd)
    }

    static func writeAll(_ fd: Int32, count: Int) throws {
        let chunk = [UInt8](repeating: 0x5A, count: min(max(count, 1), 65536))
        var left = count
        while left > 0 {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min(left, $0.count)) }
            guard n > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            left -= n
        }
    }

    static func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    static func fileSize(_ path: String) -> Int {
        var st = stat()
        return lstat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    /// Sets the modification time of `path` itself (not a link's target), in whole seconds.
    static func setModificationTime(_ path: String, seconds: Int) throws {
        var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
        guard utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
    }

    /// Runs a real command-line tool (`cp`, `mv`) and requires it to succeed.
    static func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw POSIXError(.EIO)
        }
    }

    /// CPU time (user + system) consumed so far by the calling thread.
    ///
    /// Per thread rather than per process because Swift Testing runs other tests in parallel in
    /// the same process; `next(timeout:)` blocks the calling thread, so its cost shows up here.
    static func threadCPUTime() -> Duration {
        var usage = rusage()
        _ = getrusage(1 /* RUSAGE_THREAD, not exported by the Glibc module */, &usage)
        func duration(_ t: timeval) -> Duration { .seconds(t.tv_sec) + .microseconds(t.tv_usec) }
        return duration(usage.ru_utime) + duration(usage.ru_stime)
    }

    /// All events until `duration` has passed.
    static func collect(_ watcher: FolderWatcher, for duration: Duration) throws -> [TimedEvent] {
        let end = clock.now.advanced(by: duration)
        var result: [TimedEvent] = []
        while clock.now < end {
            for event in try watcher.next(timeout: clock.now.duration(to: end)) {
                result.append(TimedEvent(event: event, at: clock.now))
            }
        }
        return result
    }

    /// Events until `done` holds for what was collected (then `grace` longer, to catch extras),
    /// or until `limit` passes.
    static func collect(_ watcher: FolderWatcher, limit: Duration = .seconds(10), grace: Duration = .zero,
                        until done: ([WatchEvent]) -> Bool) throws -> [TimedEvent] {
        let end = clock.now.advanced(by: limit)
        var result: [TimedEvent] = []
        while clock.now < end, !done(result.map(\.event)) {
            for event in try watcher.next(timeout: clock.now.duration(to: end)) {
                result.append(TimedEvent(event: event, at: clock.now))
            }
        }
        if grace > .zero { result += try collect(watcher, for: grace) }
        return result
    }

    static func readyNames(_ events: [TimedEvent]) -> [String] {
        events.compactMap { if case .ready(let name) = $0.event { name } else { nil } }
    }
}

/// A thread-safe slot for a value produced on another thread (the tests' writer threads).
final class Box<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    init(_ value: Value) { stored = value }

    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

extension Thread {
    /// Starts `body` on a new thread and returns a semaphore signalled when it finishes.
    static func start(_ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            body()
            done.signal()
        }
        thread.start()
        return done
    }
}
