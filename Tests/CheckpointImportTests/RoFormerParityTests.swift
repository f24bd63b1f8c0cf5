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
