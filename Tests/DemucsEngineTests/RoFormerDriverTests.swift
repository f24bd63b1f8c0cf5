@testable import DemucsEngine
import Foundation
import Testing

/// The parts of the RoFormer path that are decided by arithmetic alone: the mel bands (as
/// librosa gives them, tools/make_fixtures_roformer.py's mel_bands.json) and the chunk schedule
/// of audio-separator's driver.
struct RoFormerDriverTests {
    struct MelCase: Decodable, Sendable, CustomTestStringConvertible {
        var sample_rate: Int
        var n_fft: Int
        var bands: Int
        var bins: [[Int]]
        var testDescription: String { "\(sample_rate) Hz, n_fft \(n_fft), \(bands) bands" }
    }

    static let melCases: [MelCase] = {
        guard let data = FileManager.default.contents(atPath: FixturePaths.root + "/roformer/mel_bands.json") else { return [] }
        return (try? JSONDecoder().decode([MelCase].self, from: data)) ?? []
    }()

    @Test func melBandFixturesArePresent() {
        #expect(Self.melCases.count == 4)
    }

    @Test(arguments: melCases)
    func melBandsAreLibrosas(_ c: MelCase) {
        let bins = MelBands.bins(sampleRate: c.sample_rate, nFFT: c.n_fft, bands: c.bands)
        #expect(bins.count == c.bins.count)
        for (b, (mine, theirs)) in zip(bins, c.bins).enumerated() where mine != theirs {
            Issue.record("band \(b): \(mine.first ?? -1)...\(mine.last ?? -1) (\(mine.count)), librosa \(theirs.first ?? -1)...\(theirs.last ?? -1) (\(theirs.count))")
        }
    }

    static func separator(dimT: Int? = nil, numOverlap: Int? = nil, yamlOverlap: String = "  num_overlap: 4\n") throws -> RoFormerSeparator {
        let yaml = "audio:\n  chunk_size: 352800\nmodel:\n  dim: 8\n  depth: 1\n  stereo: true\n  stft_hop_length: 441\n"
            + "  dim_head: 4\n  heads: 2\ntraining:\n  instruments: [vocals, other]\n  target_instrument: vocals\n"
            + "inference:\n  dim_t: 801\n" + yamlOverlap
        let config = try RoFormerConfig(yaml: yaml, source: "test.yaml")
        // A model of random weights: the schedule does not look at them.
        let model = try RoFormer(config: config, weights: RandomRoFormer.weights(config))
        return RoFormerSeparator(model: model, options: RoFormerOptions(dimT: dimT, numOverlap: numOverlap))
    }

    @Test func chunksStepByChunkOverOverlapAndTheLastEndsWithTheTrack() throws {
        let s = try Self.separator()
        let length = 44_100 * 30 + 123
        let (chunk, step, starts) = s.schedule(length: length)
        #expect(chunk == 441 * 800 && step == chunk / 4)
        #expect(Array(starts.prefix(3)) == [0, step, 2 * step])
        #expect(starts.last == length - chunk)
        #expect(zip(starts, starts.dropFirst()).allSatisfy { $1 > $0 && $1 - $0 <= step })
        #expect(starts.dropLast().last! + chunk < length)
    }

    @Test func aTrackUnderTenSecondsTakesChunksOf256Frames() throws {
        let s = try Self.separator()
        #expect(s.schedule(length: 44_100 * 9).chunk == 441 * 255)
        #expect(s.schedule(length: 44_100 * 10).chunk == 441 * 800)
        #expect(try Self.separator(dimT: 101).schedule(length: 44_100 * 9).chunk == 441 * 100, "an explicit dim_t wins")
    }

    @Test func overlapComesFromOptionsThenConfigThenEight() throws {
        #expect(try Self.separator().schedule(length: 44_100 * 60).step == 441 * 800 / 4)
        #expect(try Self.separator(numOverlap: 2).schedule(length: 44_100 * 60).step == 441 * 800 / 2)
        #expect(try Self.separator(yamlOverlap: "").schedule(length: 44_100 * 60).step == 441 * 800 / 8)
    }

    @Test func aTrackShorterThanAChunkIsOneChunk() throws {
        #expect(try Self.separator().schedule(length: 5_000).starts == [0])
    }

    @Test func theResidualStemIsNamedAsAudioSeparatorNamesIt() throws {
        #expect(try Self.separator().sources == ["vocals", "other"])
    }

    @Test func hammingIsScipys() {
        let w = RoFormerSeparator.hamming(5)
        #expect(w.map { ($0 * 1e6).rounded() / 1e6 } == [0.08, 0.54, 1, 0.54, 0.08])
    }
}

/// Made-up weights for a RoFormer config, the same for the same name on every run, for tests
/// that need a model but not the reference's numbers.
enum RandomRoFormer {
    static func weights(_ config: RoFormerConfig) -> Weights {
        Weights(fabricating: { name, shape in
            var rng = SplitMix64(seed: name.utf8.reduce(14_695_981_039_346_656_037) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 })
            let n = shape.reduce(1, *)
            return Tensor(shape: shape, data: (0..<n).map { _ in Float(Int(rng.next() % 2001) - 1000) / 10_000 })
        }, source: "random")
    }
}
