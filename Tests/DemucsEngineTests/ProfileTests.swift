import Foundation
import Testing
@testable import DemucsEngine

/// The benchmark's CPU accounting: work a kernel hands to `Parallel`'s threads is counted towards
/// that kernel's kind, whichever thread runs it (before, the helper threads' time fell into
/// "elsewhere" and the benchmark showed half the CPU time as unexplained).
@Suite(.serialized) struct ProfileTests {
    /// Spins until the calling thread has used `seconds` of CPU time.
    static func burn(_ seconds: Double) {
        let start = Profile.threadCPUTime()
        var x = 0.0
        while Profile.threadCPUTime() - start < seconds { x += 1 }
        #expect(x > 0)
    }

    @Test func parallelWorkCountsTowardsTheCallersKind() {
        Profile.setEnabled(true)
        defer { Profile.setEnabled(false) }
        ExecutionContext.with(ExecutionContext(width: 2)) {
            Profile.measure(.transposedConvolution) {
                Parallel.forEach(2) { range in
                    for _ in range { Self.burn(0.05) }
                }
            }
        }
        let totals = Dictionary(uniqueKeysWithValues: Profile.snapshot().map { ($0.kind, $0) })
        // Both halves of the work, whichever thread ran them; one call.
        #expect(totals[.transposedConvolution]!.seconds >= 0.095)
        #expect(totals[.transposedConvolution]!.calls >= 1)
    }
}
