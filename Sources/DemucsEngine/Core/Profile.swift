import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the engine's CPU time goes, by kind of layer, for the benchmark (`demucsctl bench`).
///
/// Off by default: then `measure` is one relaxed check of a flag. When on, each kernel adds the
/// CPU time of its calling thread (`CLOCK_THREAD_CPUTIME_ID`, so segments running in parallel
/// are counted fully and a thread waiting on a lock is not) to its kind's total.
public enum Profile {
    public enum Kind: String, CaseIterable, Sendable {
        case convolution, transposedConvolution, attention, linear, lstm, normalization, activation, stft, other
    }

    nonisolated(unsafe) private static var enabled = false
    private static let lock = NSLock()
    nonisolated(unsafe) private static var totals: [Kind: Double] = [:]
    nonisolated(unsafe) private static var counts: [Kind: Int] = [:]

    /// Turns collection on (and clears the totals) or off.
    public static func setEnabled(_ on: Bool) {
        lock.lock()
        enabled = on
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

    @inline(__always)
    static func measure<T>(_ kind: Kind, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let start = threadCPUTime()
        defer {
            let spent = threadCPUTime() - start
            lock.lock()
            totals[kind, default: 0] += spent
            counts[kind, default: 0] += 1
            lock.unlock()
        }
        return try body()
    }
}
