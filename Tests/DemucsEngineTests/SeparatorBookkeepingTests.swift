import Foundation
import Testing
@testable import DemucsEngine

/// The Separator's segment and shift bookkeeping (padding to the model's length, centre trims,
/// shift offsets, cross-fade normalisation), for demucs v4's order (shifts around the track) and
/// v2's (shifts inside each segment).
///
/// The model here is a scaling model, written for this test: source `k` is the (normalised)
/// input times `k + 1`, and it asks for an odd 7 extra samples like a U-Net's `valid_length`. It is the one
/// model whose exact output is known at every sample, so any misplaced sample in the bookkeeping
/// shows as a difference from the input; the real models' parity tests cover the same code on
/// real networks, but only to ~80 dB.
@Suite struct SeparatorBookkeepingTests {
    struct ScalingModel: SeparationModel {
        var sources = ["a", "b"]
        var samplerate = 8000
        var audioChannels = 2
        var segment = Fraction(1, 1)
        var maxSegment: Fraction? { nil }
        var applyGeneration: ApplyGeneration
        let passes = Counter()

        func validLength(_ length: Int) throws -> Int { length + 7 }

        func forward(_ mix: Tensor) throws -> Tensor {
            passes.increment()
            let n = mix.shape[1]
            var out = Tensor(zeros: [sources.count, audioChannels, n])
            for k in 0..<sources.count {
                for i in 0..<(audioChannels * n) { out.data[k * audioChannels * n + i] = mix.data[i] * Float(k + 1) }
            }
            return out
        }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func increment() { lock.lock(); n += 1; lock.unlock() }
        var value: Int { lock.lock(); defer { lock.unlock() }; return n }
    }

    static func track(_ length: Int) -> Tensor {
        var x = Tensor(zeros: [2, length])
        for i in 0..<length {
            x.data[i] = sin(Float(i) * 0.013) * 0.4 + 0.05
            x.data[length + i] = cos(Float(i) * 0.007) * 0.3 - Float(i % 5) * 0.01
        }
        return x
    }

    @Test(arguments: [ApplyGeneration.v4, .v2], [0, 3])
    func everySampleComesBackInPlace(_ generation: ApplyGeneration, _ shifts: Int) throws {
        let model = ScalingModel(applyGeneration: generation)
        let bag = try ModelBag(name: "scale", models: [model], weights: nil, segment: nil)
        let length = 18_433  // 2.3 s: three 1 s segments at stride 0.75 s, the last one partial
        let input = Self.track(length)
        let separator = Separator(bag: bag, options: SeparationOptions(shifts: shifts, overlap: 0.25, jobs: 2, seed: 7))
        let out = try separator.separate(input)
        #expect(out.shape == [2, 2, length])
        // The separator normalises by the mono mix and undoes it, so source k is (x - m)(k + 1) + m.
        var m = 0.0
        for v in input.data { m += Double(v) }
        m /= Double(input.count)
        var worst: Float = 0
        for k in 0..<2 {
            for i in 0..<(2 * length) {
                let expected = Float((Double(input.data[i]) - m) * Double(k + 1) + m)
                worst = max(worst, abs(out.data[k * 2 * length + i] - expected))
            }
        }
        #expect(worst < 1e-5, "\(generation), shifts \(shifts): max error \(worst)")
        // v2 runs each of the 4 segments `shifts` times; v4 splits each shifted copy of the track.
        if generation == .v2 {
            #expect(model.passes.value == 4 * max(shifts, 1))
            #expect(separator.totalPasses(length: length) == model.passes.value)
        }
    }
}
