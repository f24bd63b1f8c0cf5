import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where the engine's CPU time goes, by kind of layer, for the benchmark (`demucsctl bench`).
///
/// Off by default: then `measure` is one relaxed check of a flag. When on, each kernel adds the
/// CPU time of its calling thread (`CLOCK_THREAD_CPUTIME_ID`, so segments running in parallel
/// are counted fully and a thread waiting on a lock is not) to its kind's total, and the
/// threads `Parallel` hands its work to add theirs to the kind of the kernel that called it.
/// A kernel measured inside another (on the same thread) counts towards the outer one.
public enum Profile {
    public enum Kind: String, CaseIterable, Sendable {
        case convolution, transposedConvolution, attention, linear, lstm, normalization, activation, stft, other
    }

    /// Read by every kernel on every thread, written by `setEnabled`: atomic (ThreadSanitizer
    /// reported the plain flag's unsynchronised read).
    private static let enabled = Atomic<Bool>(false)
    private static let lock = NSLock()
    nonisolated(unsafe) private static var totals: [Kind: Double] = [:]
    nonisolated(unsafe) private static var counts: [Kind: Int] = [:]

    /// Turns collection on (and clears the totals) or off.
    public static func setEnabled(_ on: Bool) {
        lock.lock()
        enabled.store(on, ordering: .relaxed)
        totals = [:]
        counts = [:]
        lock.unlock()
    }

    /// CPU seconds and calls per kind since collection was turned on.
    public static func snapshot() -> [(kind: Kind, seconds: Double, calls: Int)] {
        lock.lock(); defer { lock.unlock() }
        return Kind.allCases.map { ($0, totals[$0] ?? 0, counts[$0] ?? 0) }
    }

    /// The calling thread's CPU time in seconds.
    public static func threadCPUTime() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Whether collection is on (for `Parallel`, which then passes the kind to its threads).
    static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// The kind being measured on the calling thread, if any.
    static var currentKind: Kind? {
        let raw = Int(bitPattern: pthread_getspecific(currentKey))
        return raw == 0 ? nil : Kind.allCases[raw - 1]
    }

    private static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    private static func setCurrent(_ kind: Kind?) {
        let raw = kind.map { Kind.allCases.firstIndex(of: $0)! + 1 } ?? 0
        pthread_setspecific(currentKey, UnsafeRawPointer(bitPattern: raw))
    }

    @inline(__always)
    static func measure<T>(_ kind: Kind, countsCall: Bool = true, _ body: () throws -> T) rethrows -> T {
        guard isEnabled, currentKind == nil else { return try body() }
        setCurrent(kind)
        let start = threadCPUTime()
        defer {
            let spent = threadCPUTime() - start
            setCurrent(nil)
            lock.lock()
            totals[kind, default: 0] += spent
            if countsCall { counts[kind, default: 0] += 1 }
            lock.unlock()
        }
        return try body()
    }
}
