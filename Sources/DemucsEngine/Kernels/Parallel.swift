import Foundation

/// Spreads an elementwise kernel over the cores that the current separation leaves to each
/// segment (its `ExecutionContext.width`), the helper threads running under the caller's context.
///
/// `Separator` runs segments side by side first; when fewer segments than cores are in flight
/// (a short track, the 40 s segments of HDemucs / Demucs, `-j 1`), the matrix multiplies use the
/// spare cores through the BLAS, and this gives the same cores to the work between them
/// (activations, norms, softmax, unfolding), which would otherwise run on one core while the
/// others wait.
enum Parallel {
    /// How many threads a kernel may use: the current separation's (`ExecutionContext`).
    static var width: Int { ExecutionContext.current.width }

    /// Calls `body` on consecutive ranges covering `0..<count`, on up to `width` threads, each
    /// range at least `grain` long. The ranges are disjoint; `body` must only write what its
    /// range owns.
    static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let context = ExecutionContext.current
        let tasks = min(context.width, count / max(grain, 1))
        guard tasks > 1 else {
            if count > 0 { body(0..<count) }
            return
        }
        // With the benchmark's profile on, the helper threads' CPU time goes to the caller's kind.
        let kind = Profile.isEnabled ? Profile.currentKind : nil
        withoutActuallyEscaping(body) { body in
            let shared = Unchecked(body)
            DispatchQueue.concurrentPerform(iterations: tasks) { t in
                let range = (count * t / tasks)..<(count * (t + 1) / tasks)
                // The helper threads work under the caller's context.
                ExecutionContext.with(context) {
                    if let kind {
                        Profile.measure(kind, countsCall: false) { shared.value(range) }
                    } else {
                        shared.value(range)
                    }
                }
            }
        }
    }

    /// A value handed to the worker threads; the callers guarantee disjoint writes.
    private struct Unchecked<T>: @unchecked Sendable {
        let value: T
        init(_ value: T) { self.value = value }
    }
}
