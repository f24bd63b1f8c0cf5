import Foundation
import Testing
@testable import DemucsEngine

/// The streaming separation gives the very samples of the in-memory one (`separateStems`):
/// the same statistics, shift draws, padded inputs and order of sums. Checked for equality, not
/// a threshold, on the real fixture models (htdemucs, a weighted bag, a bag of HDemucs and
/// HTDemucs with different segments, waveform Demucs) and on the bookkeeping test's scaling
/// model in demucs v2's order (shifts inside each segment); on lengths shorter than one
/// segment, exactly one, and many with a partial last one.
@Suite struct StreamingSeparationTests {
    typealias ScalingModel = SeparatorBookkeepingTests.ScalingModel

    /// Runs the streaming path, collecting what it emits; checks the blocks tile the track.
    static func streamed(_ separator: Separator, _ input: Tensor) throws -> (rows: [[Float]], blocks: Int) {
        let channels = input.shape[0], length = input.shape[1]
        var rows = [[Float]](repeating: [], count: separator.bag.sources.count * channels)
        var next = 0, blocks = 0
        try separator.separateStreaming(TensorMixSource(input), emit: { block in
            #expect(block.start == next)
            #expect(block.rows.allSatisfy { $0.count == block.count })
            for r in rows.indices { rows[r] += block.rows[r] }
            next += block.count
            blocks += 1
        })
        #expect(next == length)
        return (rows, blocks)
    }

    static func expectSame(_ separator: Separator, _ input: Tensor, _ label: String) throws {
        let whole = try separator.separateStems(input).rows
        let (rows, _) = try streamed(separator, input)
        #expect(rows.count == whole.count)
        for (r, (a, b)) in zip(rows, whole).enumerated() {
            let differing = zip(a, b).filter { $0.0.bitPattern != $0.1.bitPattern }.count
            #expect(a.count == b.count && differing == 0, "\(label): row \(r): \(differing) samples differ")
        }
    }

    static func track(_ length: Int, seed: Int = 0) -> Tensor {
        var x = Tensor(zeros: [2, length])
        var state = UInt64(0x1234 + seed)
        for i in 0..<(2 * length) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let noise = Float(Int64(bitPattern: state >> 11) % 1000) / 4000
            x.data[i] = 0.3 * sin(Float(i % length) * 0.031) + noise
        }
        return x
    }

    @Test(arguments: [1_000, 44_100, 3 * 44_100 + 777], [0, 1, 2])
    func htdemucsGivesTheSameSamples(_ length: Int, _ shifts: Int) throws {
        let bag = try ModelRepository(root: FixturePaths.models).load("tiny4")
        let separator = Separator(bag: bag, options: SeparationOptions(shifts: shifts, seed: 11))
        try Self.expectSame(separator, Self.track(length), "tiny4, \(length) samples, shifts \(shifts)")
    }

    @Test func weightedBagGivesTheSameSamples() throws {
        let bag = try ModelRepository(root: FixturePaths.models).load("bag2")
        let separator = Separator(bag: bag, options: SeparationOptions(shifts: 2, seed: 3))
        try Self.expectSame(separator, Self.track(2 * 44_100 + 4_321, seed: 1), "bag2")
    }

    @Test func hybridBagWithTwoSegmentLengthsGivesTheSameSamples() throws {
        let bag = try ModelRepository(root: FixturePaths.root + "/hdemucs/models").load("mixbag")
        let separator = Separator(bag: bag, options: SeparationOptions(shifts: 1, seed: 5))
        try Self.expectSame(separator, Self.track(3 * 44_100 + 99, seed: 2), "mixbag")
    }

    @Test func waveformDemucsGivesTheSameSamples() throws {
        let bag = try ModelRepository(root: FixturePaths.root + "/demucs/models").load("wav_lstm")
        let separator = Separator(bag: bag, options: SeparationOptions(shifts: 1, seed: 9))
        try Self.expectSame(separator, Self.track(2 * bag.samplerate + 55, seed: 3), "wav_lstm")
    }

    /// demucs v2 shifts inside each segment; jobs 2 runs segments side by side.
    @Test(arguments: [ApplyGeneration.v2, .v4], [0, 2])
    func bookkeepingModelGivesTheSameSamples(_ generation: ApplyGeneration, _ shifts: Int) throws {
        let bag = try ModelBag(name: "scale", models: [ScalingModel(applyGeneration: generation), ScalingModel(applyGeneration: generation)],
                               weights: [[1, 0.5], [0.25, 1]], segment: nil)
        for length in [900, 8_000, 5 * 8_000 + 13] {
            let separator = Separator(bag: bag, options: SeparationOptions(shifts: shifts, overlap: 0.25, jobs: 2, seed: 7))
            try Self.expectSame(separator, Self.track(length), "\(generation), shifts \(shifts), \(length) samples")
        }
    }

    /// Output is emitted as the track goes, not at the end: one block per stride or so.
    @Test func blocksComeOutAlongTheTrack() throws {
        let bag = try ModelRepository(root: FixturePaths.models).load("tiny4")
        let separator = Separator(bag: bag, options: SeparationOptions(shifts: 0, seed: 1))
        let (_, blocks) = try Self.streamed(separator, Self.track(10 * 44_100))
        // Stride 0.75 s on 10 s: 14 segments, a block after each.
        #expect(blocks >= 13)
    }
}
