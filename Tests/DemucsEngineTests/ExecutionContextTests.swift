import Foundation
import Testing
@testable import DemucsEngine

/// Why (8) of the job-semantics issue: thread width, precision and block sizes were process
/// globals set and restored around each separation, so two separations side by side (the
/// daemon's `workers = 2`, or two test suites) ran with each other's settings. They now travel
/// with the work.
@Suite struct ExecutionContextTests {
    @Test func aContextHoldsForItsClosureAndItsHelperThreadsOnly() {
        #expect(ExecutionContext.current == .default)
        let outer = ExecutionContext(width: 2, precision: .float32, tuning: KernelTuning(queryBlock: 8))
        let seen = Locked<[Int]>([])
        ExecutionContext.with(outer) {
            #expect(Attention.queryBlock == 8)
            Parallel.forEach(2) { _ in seen.mutate { $0.append(ExecutionContext.current.tuning.queryBlock) } }
            ExecutionContext.with(ExecutionContext(width: 1)) {
                #expect(Parallel.width == 1 && Attention.queryBlock == 64)
            }
            #expect(ExecutionContext.current == outer)
            // Another thread that never entered a context sees the defaults.
            let other = Locked<ExecutionContext?>(nil)
            let thread = Thread { other.mutate { $0 = ExecutionContext.current } }
            let done = DispatchSemaphore(value: 0)
            let waiter = Thread { while other.value == nil { usleep(1000) }; done.signal() }
            thread.start(); waiter.start()
            done.wait()
            #expect(other.value == .default)
        }
        #expect(seen.value == [8, 8])
        #expect(ExecutionContext.current == .default)
    }

    static func track(_ length: Int) -> Tensor {
        var x = Tensor(zeros: [2, length])
        for i in 0..<length {
            let t = Float(i) / 44_100
            x.data[i] = 0.3 * sin(2 * .pi * 220 * t) + 0.2 * sin(2 * .pi * 1375 * t) * sin(7 * t)
            x.data[length + i] = 0.25 * sin(2 * .pi * 330 * t + 0.5)
        }
        return x
    }

    /// Two separations at the same time, one in float32 and one in bf16, each give exactly the
    /// result they give alone.
    @Test(.enabled(if: EnginePrecision.bf16Available, "bf16 needs AVX512_BF16"))
    func twoSeparationsSideBySideKeepTheirOwnPrecision() throws {
        let bag = try ModelRepository(root: FixturePaths.root + "/models").load("tiny4")
        let input = Self.track(88_200)
        @Sendable func separator(_ precision: EnginePrecision) -> Separator {
            Separator(bag: bag, options: SeparationOptions(shifts: 0, segment: Fraction(1, 2), threads: 1, precision: precision))
        }
        let alone32 = try separator(.float32).separate(input).data
        let alone16 = try separator(.bf16).separate(input).data
        #expect(alone32 != alone16, "bf16 should round differently from float32")

        for _ in 0..<3 {
            let results = Locked<[EnginePrecision: [Float]]>([:])
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                let precision: EnginePrecision = i == 0 ? .float32 : .bf16
                let out = try? separator(precision).separate(input).data
                results.mutate { $0[precision] = out }
            }
            #expect(results.value[.float32] == alone32, "the float32 separation ran with the other's settings")
            #expect(results.value[.bf16] == alone16, "the bf16 separation ran with the other's settings")
        }
    }

    /// Two separations with different block sizes and thread counts at the same time. Where the
    /// CPU's BLAS rounds differently with the shape of a block (AVX2; not AVX-512), the two
    /// settings give different bits, so a separation that ran with the other's settings shows.
    static let tunings: [(threads: Int, tuning: KernelTuning)] = [
        (1, KernelTuning()),
        (2, KernelTuning(splitMinimumWork: 1, gluBlockFloats: 1024, queryBlock: 8)),
    ]

    static func separateWithTuning(_ k: Int) throws -> [Float] {
        let bag = try ModelRepository(root: FixturePaths.root + "/models").load("tiny4")
        var options = SeparationOptions(shifts: 0, segment: Fraction(1, 2), threads: tunings[k].threads)
        options.tuning = tunings[k].tuning
        return try Separator(bag: bag, options: options).separate(track(88_200)).data
    }

    static let aloneWithTuning: [[Float]] = (0..<2).map { (try? separateWithTuning($0)) ?? [] }

    @Test(.enabled(if: aloneWithTuning[0] != aloneWithTuning[1],
                   "both block layouts give the same bits on this CPU (the bf16 case covers it where AVX512_BF16 exists)"))
    func twoSeparationsSideBySideKeepTheirOwnBlocksAndThreads() throws {
        for _ in 0..<3 {
            let results = Locked<[Int: [Float]]>([:])
            DispatchQueue.concurrentPerform(iterations: 2) { k in
                let out = try? Self.separateWithTuning(k)
                results.mutate { $0[k] = out }
            }
            #expect(results.value[0] == Self.aloneWithTuning[0], "the first separation ran with the other's settings")
            #expect(results.value[1] == Self.aloneWithTuning[1], "the second separation ran with the other's settings")
        }
    }
}

/// A value shared between test threads.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    func mutate(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
    var value: Value { lock.withLock { stored } }
}
