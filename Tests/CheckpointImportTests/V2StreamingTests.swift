import Foundation
import Testing
@testable import CheckpointImport
@testable import DemucsEngine

/// The streaming separation gives the very samples of the in-memory one on demucs 2.0.3's real
/// models (imported from the v2 fixtures): its waveform Demucs and Conv-TasNet, whose
/// `apply_model` shifts inside each segment; lengths shorter than one segment and many.
@Suite struct V2StreamingTests {
    static func track(_ length: Int) -> Tensor {
        var x = Tensor(zeros: [2, length])
        var state: UInt64 = 0x5eed
        for i in 0..<(2 * length) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            x.data[i] = 0.3 * sin(Float(i % length) * 0.027) + Float(Int64(bitPattern: state >> 11) % 1000) / 4000
        }
        return x
    }

    @Test(arguments: ["v2demucs_small", "tasnet_small"], [0, 2])
    func givesTheSamplesOfTheInMemoryPath(_ prefix: String, _ shifts: Int) throws {
        let (_, model) = try V2CheckpointTests.model(try V2CheckpointTests.file(prefix: prefix))
        let bag = try ModelBag(name: prefix, models: [model], weights: nil, segment: nil)
        for length in [3_000, 5 * bag.samplerate + 321] {
            let input = Self.track(length)
            // Segments of 2 s, so that 5 s make several.
            let separator = Separator(bag: bag, options: SeparationOptions(shifts: shifts, segment: Fraction(2, 1), seed: 2))
            let whole = try separator.separateStems(input).rows
            var rows = [[Float]](repeating: [], count: whole.count)
            try separator.separateStreaming(TensorMixSource(input), emit: { block in
                for r in rows.indices { rows[r] += block.rows[r] }
            })
            for (r, (a, b)) in zip(rows, whole).enumerated() {
                let differing = zip(a, b).filter { $0.0.bitPattern != $0.1.bitPattern }.count
                #expect(a.count == b.count && differing == 0, "\(prefix), \(length) samples, shifts \(shifts): row \(r): \(differing) differ")
            }
        }
    }
}
