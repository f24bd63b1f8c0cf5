import Foundation
import Testing
@testable import DemucsEngine

/// The engine shares each segment's work among threads (matrix multiplies split by columns or
/// rows, attention by query blocks, convolutions with GLU by column blocks, norms by items). A
/// misplaced block or a race would show as a wrong result on one core count only. Runs the tiny
/// fixture models of each family on a 2.5 s track, with the block sizes made small (below) on
/// one thread, on two, and with two segments side by side, and wants the result of whole blocks
/// on one thread. Not the same bits: OpenBLAS picks its
/// kernel by the product's size (a small-matrix kernel below a threshold), so a product split in
/// two can round differently in the last place (measured: ≤ 1e-7 here); 120 dB between the runs
/// is far above that noise and far below any bookkeeping error.
///
/// The tiny models' tensors fit in one block of each kind, so the block sizes are made small
/// here (every product split, GLU blocks of 1,024 floats, attention blocks of 8 queries) to run
/// the seams. They are the separation's own (`SeparationOptions.tuning`, carried by its
/// `ExecutionContext`): nothing global is changed, so the cases and other suites may run side
/// by side.
@Suite struct ThreadCountTests {
    static func track(_ length: Int) -> Tensor {
        var x = Tensor(zeros: [2, length])
        for i in 0..<length {
            let t = Float(i) / 44_100
            x.data[i] = 0.3 * sin(2 * .pi * 220 * t) + 0.2 * sin(2 * .pi * 1375 * t) * sin(7 * t)
            x.data[length + i] = 0.25 * sin(2 * .pi * 330 * t + 0.5) + 0.05 * Float((i * 7919) % 101) / 101
        }
        return x
    }

    @Test(arguments: [("models", "tiny4"), ("hdemucs/models", "hdemucs4"), ("demucs/models", "wav_lstm")])
    func resultsDoNotDependOnThreads(_ folder: String, _ name: String) throws {
        let bag = try ModelRepository(root: FixturePaths.root + "/" + folder).load(name)
        let input = Self.track(110_250)
        func run(jobs: Int, threads: Int, tuning: KernelTuning = KernelTuning()) throws -> [Float] {
            var options = SeparationOptions(shifts: 0, segment: Fraction(1, 1), jobs: jobs, threads: threads)
            options.tuning = tuning
            return try Separator(bag: bag, options: options).separate(input).data
        }
        let reference = try run(jobs: 1, threads: 1)
        #expect(reference.contains { $0 != 0 })
        let small = KernelTuning(splitMinimumWork: 1, gluBlockFloats: 1024, queryBlock: 8)
        let runs = [("small blocks, 1 thread", try run(jobs: 1, threads: 1, tuning: small)),
                    ("small blocks, 2 threads", try run(jobs: 1, threads: 2, tuning: small)),
                    ("small blocks, 2 segments side by side", try run(jobs: 2, threads: 2, tuning: small))]
        for (label, other) in runs {
            let agreement = snr(reference: reference, estimate: other)
            // Measured: above 120 dB on AVX-512 CPUs, 118–119 dB on AVX2 ones (OpenBLAS's kernels
            // there round differently with the shape of a block). A seam that drops or repeats
            // samples gives well under 60 dB.
            #expect(agreement > 115, "\(name): whole blocks on 1 thread vs \(label): \(agreement) dB")
        }
    }
}
