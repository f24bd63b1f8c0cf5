import AudioIO
import CheckpointImport
import DemucsEngine
import Foundation
import Testing

/// The RoFormer network against the reference's own forward (tools/make_fixtures_roformer.py):
/// each fixture model, built from its `.yaml` and `.ckpt` as a user has them, separates the first
/// second of cut_a.flac, and every stem matches the reference's to at least 75 dB SNR at the
/// reference's length (measured 81–85 dB, the fixtures' own precision; the acceptance floor is
/// 60 dB: the check sits near what is measured so that a regression shows first).
struct RoFormerParityTests {
    struct Cases: Decodable { var cases: [RoFormerFixtureCase] }

    static let folder = Fixtures.root + "/roformer"

    static let cases: [RoFormerFixtureCase] = {
        guard let data = FileManager.default.contents(atPath: folder + "/cases.json") else { return [] }
        return (try? JSONDecoder().decode(Cases.self, from: data).cases) ?? []
    }()

    @Test func fixturesArePresent() {
        #expect(Self.cases.map(\.name) == ["bs_1stem", "bs_2stem_linear", "mel_1stem"])
    }

    @Test(arguments: cases)
    func forwardMatchesTheReference(_ c: RoFormerFixtureCase) throws {
        let inputFrames = try #require(c.input_frames), outputFrames = try #require(c.output_frames)
        let model = try c.load()
        let input = try AudioDecoder.decode(path: Fixtures.root + "/audio/" + c.input)
        let mix = Tensor(shape: [2, inputFrames], data: input.channels.flatMap { $0.prefix(inputFrames) })
        let out = try model.forward(mix)
        #expect(out.shape == [model.stems.count, 2, outputFrames])
        #expect(Set(model.stems) == Set(c.stems.keys))
        for (index, stem) in model.stems.enumerated() {
            guard let file = c.stems[stem]?.file else { continue }
            let reference = try AudioDecoder.decode(path: Self.folder + "/" + file)
            let snr = RoFormerFixtureCase.snr(reference, frames: outputFrames) { ch, i in
                out.data[(index * 2 + ch) * outputFrames + i]
            }
            #expect(snr >= 75, "\(c.name)/\(stem): \(snr) dB")
            print("\(c.name)/\(stem): \(String(format: "%.1f", snr)) dB")
        }
    }
}

/// The whole-track driver against audio-separator's own (`MDXCSeparator.demix`, run by
/// tools/make_fixtures_roformer.py on all of cut_a.flac with 1 s chunks and 4 overlapping
/// chunks): chunk schedule, Hamming weights, their normalisation and the residual stem; at least
/// 75 dB per stem (measured 80–85 dB).
struct RoFormerDemixParityTests {
    struct Cases: Decodable { var demix: [RoFormerFixtureCase] }

    static let cases: [RoFormerFixtureCase] = {
        guard let data = FileManager.default.contents(atPath: RoFormerParityTests.folder + "/cases.json") else { return [] }
        return (try? JSONDecoder().decode(Cases.self, from: data).demix) ?? []
    }()

    @Test func fixturesArePresent() {
        #expect(Self.cases.map(\.name) == ["bs_2stem_linear", "mel_1stem"])
    }

    @Test(arguments: cases)
    func wholeTrackMatchesTheReferenceDriver(_ c: RoFormerFixtureCase) throws {
        let folder = RoFormerParityTests.folder, frames = try #require(c.frames)
        let model = try c.load()
        let input = try AudioDecoder.decode(path: Fixtures.root + "/audio/" + c.input)
        #expect(input.frameCount == frames)
        // The reference ran demix itself, without separate()'s short-track rule: the config's dim_t.
        let separator = RoFormerSeparator(model: model, options: RoFormerOptions(dimT: model.config.dimT))
        let stems = try separator.separateStems(Tensor(shape: [2, frames], data: input.channels.flatMap { $0 }))
        #expect(Set(stems.sources) == Set(c.stems.keys))
        for (k, stem) in stems.sources.enumerated() {
            guard let file = c.stems[stem]?.file else { continue }
            let reference = try AudioDecoder.decode(path: folder + "/" + file)
            #expect(reference.frameCount == frames)
            let snr = RoFormerFixtureCase.snr(reference, frames: frames) { ch, i in stems.rows[k * 2 + ch][i] }
            #expect(snr >= 75, "\(c.name)/\(stem): \(snr) dB")
            print("\(c.name) demix/\(stem): \(String(format: "%.1f", snr)) dB")
        }
    }
}

/// One fixture model of cases.json and what the reference made with it: the forward cases give
/// `input_frames` / `output_frames`, the demix cases the track's `frames`.
struct RoFormerFixtureCase: Decodable, Sendable, CustomTestStringConvertible {
    struct Stem: Decodable, Sendable { var file: String }
    var name: String
    var model: String
    var weights: String
    var input: String
    var stems: [String: Stem]
    var input_frames: Int?
    var output_frames: Int?
    var frames: Int?
    var testDescription: String { name }

    /// The model from its `.yaml` and `.ckpt`, as a user has them.
    func load() throws -> RoFormer {
        let folder = RoFormerParityTests.folder
        return try RoFormerCheckpoint.load(config: folder + "/" + model, checkpoint: folder + "/" + weights)
    }

    /// `snrDB` of `estimate(channel, frame)` against a stereo reference, over the first `frames`
    /// frames of each channel (fewer where the reference is shorter).
    static func snr(_ reference: AudioBuffer, frames: Int, _ estimate: (Int, Int) -> Float) -> Double {
        var expected: [Float] = [], actual: [Float] = []
        for ch in 0..<2 {
            let count = min(frames, reference.channels[ch].count)
            expected += reference.channels[ch].prefix(count)
            actual += (0..<count).map { estimate(ch, $0) }
        }
        return snrDB(expected, actual)
    }
}
