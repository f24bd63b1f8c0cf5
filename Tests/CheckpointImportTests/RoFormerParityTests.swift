import AudioIO
import CheckpointImport
import DemucsEngine
import Foundation
import Testing

/// The RoFormer network against the reference's own forward (tools/make_fixtures_roformer.py):
/// each fixture model, built from its `.yaml` and `.ckpt` as a user has them, separates the first
/// second of cut_a.flac, and every stem matches the reference's to at least 60 dB SNR at the
/// reference's length.
struct RoFormerParityTests {
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        struct Stem: Decodable, Sendable { var file: String }
        var name: String
        var model: String
        var weights: String
        var input: String
        var input_frames: Int
        var output_frames: Int
        var stems: [String: Stem]
        var testDescription: String { name }
    }

    struct Cases: Decodable { var cases: [Case] }

    static let folder = Fixtures.root + "/roformer"

    static let cases: [Case] = {
        guard let data = FileManager.default.contents(atPath: folder + "/cases.json") else { return [] }
        return (try? JSONDecoder().decode(Cases.self, from: data).cases) ?? []
    }()

    @Test func fixturesArePresent() {
        #expect(Self.cases.map(\.name) == ["bs_1stem", "bs_2stem_linear", "mel_1stem"])
    }

    @Test(arguments: cases)
    func forwardMatchesTheReference(_ c: Case) throws {
        let model = try RoFormerCheckpoint.load(config: Self.folder + "/" + c.model, checkpoint: Self.folder + "/" + c.weights)
        let input = try AudioDecoder.decode(path: Fixtures.root + "/audio/" + c.input)
        let mix = Tensor(shape: [2, c.input_frames], data: input.channels.flatMap { $0.prefix(c.input_frames) })
        let out = try model.forward(mix)
        #expect(out.shape == [model.stems.count, 2, c.output_frames])
        #expect(Set(model.stems) == Set(c.stems.keys))
        for (index, stem) in model.stems.enumerated() {
            guard let file = c.stems[stem]?.file else { continue }
            let reference = try AudioDecoder.decode(path: Self.folder + "/" + file)
            var signal = 0.0, noise = 0.0
            for ch in 0..<2 {
                for i in 0..<min(c.output_frames, reference.channels[ch].count) {
                    let r = Double(reference.channels[ch][i]), e = Double(out.data[(index * 2 + ch) * c.output_frames + i])
                    signal += r * r
                    noise += (r - e) * (r - e)
                }
            }
            let snr = 10 * log10(signal / max(noise, 1e-300))
            #expect(snr >= 60, "\(c.name)/\(stem): \(snr) dB")
            print("\(c.name)/\(stem): \(String(format: "%.1f", snr)) dB")
        }
    }
}

/// The whole-track driver against audio-separator's own (`MDXCSeparator.demix`, run by
/// tools/make_fixtures_roformer.py on all of cut_a.flac with 1 s chunks and 4 overlapping
/// chunks): chunk schedule, Hamming weights, their normalisation and the residual stem.
struct RoFormerDemixParityTests {
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        struct Stem: Decodable, Sendable { var file: String }
        var name: String
        var model: String
        var weights: String
        var input: String
        var frames: Int
        var stems: [String: Stem]
        var testDescription: String { name }
    }

    struct Cases: Decodable { var demix: [Case] }

    static let cases: [Case] = {
        guard let data = FileManager.default.contents(atPath: RoFormerParityTests.folder + "/cases.json") else { return [] }
        return (try? JSONDecoder().decode(Cases.self, from: data).demix) ?? []
    }()

    @Test func fixturesArePresent() {
        #expect(Self.cases.map(\.name) == ["bs_2stem_linear", "mel_1stem"])
    }

    @Test(arguments: cases)
    func wholeTrackMatchesTheReferenceDriver(_ c: Case) throws {
        let folder = RoFormerParityTests.folder
        let model = try RoFormerCheckpoint.load(config: folder + "/" + c.model, checkpoint: folder + "/" + c.weights)
        let input = try AudioDecoder.decode(path: Fixtures.root + "/audio/" + c.input)
        #expect(input.frameCount == c.frames)
        // The reference ran demix itself, without separate()'s short-track rule: the config's dim_t.
        let separator = RoFormerSeparator(model: model, options: RoFormerOptions(dimT: model.config.dimT))
        let stems = try separator.separateStems(Tensor(shape: [2, c.frames], data: input.channels.flatMap { $0 }))
        #expect(Set(stems.sources) == Set(c.stems.keys))
        for (k, stem) in stems.sources.enumerated() {
            guard let file = c.stems[stem]?.file else { continue }
            let reference = try AudioDecoder.decode(path: folder + "/" + file)
            #expect(reference.frameCount == c.frames)
            var signal = 0.0, noise = 0.0
            for ch in 0..<2 {
                for (r, e) in zip(reference.channels[ch], stems.rows[k * 2 + ch]) {
                    signal += Double(r) * Double(r)
                    noise += (Double(r) - Double(e)) * (Double(r) - Double(e))
                }
            }
            let snr = 10 * log10(signal / max(noise, 1e-300))
            #expect(snr >= 60, "\(c.name)/\(stem): \(snr) dB")
            print("\(c.name) demix/\(stem): \(String(format: "%.1f", snr)) dB")
        }
    }
}
