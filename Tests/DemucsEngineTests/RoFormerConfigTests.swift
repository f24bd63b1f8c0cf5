@testable import DemucsEngine
import Foundation
import Testing

/// The RoFormer `.yaml` reader on the reference's fixtures (tools/make_fixtures_roformer.py) and
/// on configs a model file should never be loaded with.
struct RoFormerConfigTests {
    static func fixture(_ name: String) -> String { FixturePaths.root + "/roformer/\(name).yaml" }

    @Test func bandSplitFixtureReadsAsTheReferenceBuiltIt() throws {
        let c = try RoFormerConfig(path: Self.fixture("bs_1stem"))
        #expect(c.family == .bandSplit && c.dim == 16 && c.depth == 1 && c.stereo && c.numStems == 1)
        #expect(c.freqsPerBands == RoFormerConfig.defaultFreqsPerBands && c.freqsPerBands.count == 62)
        #expect(c.nFFT == 2048 && c.hopLength == 441 && c.dimHead == 8 && c.heads == 2)
        #expect(c.maskEstimatorDepth == 2 && c.mlpExpansionFactor == 1 && c.linearTransformerDepth == 0)
        #expect(c.stems == ["vocals"] && c.chunkSize == 44_100 && c.numOverlap == 4 && c.dimT == 101 && c.sampleRate == 44_100)
    }

    @Test func twoStemsWithLinearAttention() throws {
        let c = try RoFormerConfig(path: Self.fixture("bs_2stem_linear"))
        #expect(c.family == .bandSplit && c.numStems == 2 && c.linearTransformerDepth == 1)
        #expect(c.nFFT == 1024 && c.hopLength == 256 && c.freqsPerBands.reduce(0, +) == 513)
        #expect(c.stems == ["vocals", "instrumental"] && c.maskEstimatorDepth == 1)
        #expect(c.targetInstrument == nil, "target_instrument: null is no target")
    }

    @Test func overlapAndChunkFramesAreOptional() throws {
        let c = try RoFormerConfig(yaml: Self.config().replacingOccurrences(of: "  num_overlap: 4\n", with: "  batch_size: 1\n"),
                                   source: "vocals.yaml")
        #expect(c.numOverlap == nil && c.dimT == nil && c.chunkSize == 352_800)
    }

    @Test func melBandFixture() throws {
        let c = try RoFormerConfig(path: Self.fixture("mel_1stem"))
        #expect(c.family == .melBand && c.numBands == 8 && c.freqsPerBands.isEmpty)
        #expect(c.nFFT == 1024 && c.hopLength == 441 && c.maskEstimatorDepth == 2 && !c.matchInputAudioLength)
        #expect(c.stems == ["vocals"])
    }

    /// A config as the published BS-RoFormer ones are, with `edit` applied to its model lines.
    static func config(model: String = "", training: String = "  instruments: [vocals, other]\n  target_instrument: vocals\n") -> String {
        "audio:\n  chunk_size: 352800\n  sample_rate: 44100\nmodel:\n  dim: 512\n  depth: 12\n  stereo: true\n  stft_hop_length: 441\n"
            + model + "training:\n" + training + "inference:\n  num_overlap: 4\n"
    }

    @Test(arguments: [
        (config(model: "  dimm: 3\n"), "model.dimm is not an option"),
        (config(model: "  dim: 1000000000\n"), "model.dim is 1000000000"),
        (config(model: "  heads: many\n"), "model.heads must be a whole number"),
        (config(model: "  freqs_per_bands: !!python/tuple [2, 2, 1020]\n"), "model.freqs_per_bands has 3 bands of 1024 bins"),
        (config(model: "  freqs_per_bands: [2, 2]\n"), "model.freqs_per_bands has 2 bands of 4 bins"),
        (config(model: "  stft_normalized: true\n"), "model.stft_normalized is true"),
        (config(model: "  stft_win_length: 1024\n"), "model.stft_win_length is 1024"),
        (config(model: "  stft_hop_length: 4096\n"), "model.stft_hop_length"),
        (config(model: "  num_bands: 60\n  freqs_per_bands: [1025]\n"), "model.freqs_per_bands is given"),
        (config(model: "  num_stems: 2\n"), "training.target_instrument is 'vocals'"),
        (config(training: "  instruments: [vocals, other]\n"), "training.instruments names 2 stems but model.num_stems is 1"),
        (config(training: "  instruments: [vocals, vocals]\n  target_instrument: vocals\n"), "training.instruments must name each stem once"),
        (config(training: "  instruments: [../x]\n"), "training.instruments holds"),
        ("audio: {}\ntraining:\n  instruments: [vocals]\n", "has no 'model' section"),
        ("model: [1, 2]\n", "'model' is not a mapping"),
        ("model: {dim: 8\n", "is not valid YAML"),
    ])
    func aConfigThatCannotBeTheReferencesIsRefusedNamingTheKey(_ yaml: String, _ message: String) {
        let error = #expect(throws: EngineError.self) { try RoFormerConfig(yaml: yaml, source: "vocals.yaml") }
        #expect(error?.message.contains(message) == true && error?.message.contains("vocals.yaml") == true,
                "\(String(describing: error))")
    }

    @Test func thePublishedShapeLoads() throws {
        let c = try RoFormerConfig(yaml: Self.config(model: "  freqs_per_bands: !!python/tuple\n  - 2\n  - 1023\n  mask_estimator_depth: 2\n  flash_attn: true\n  attn_dropout: 0.1\n  multi_stft_resolutions_window_sizes: !!python/tuple [4096, 2048]\n"),
                                   source: "vocals.yaml")
        #expect(c.dim == 512 && c.depth == 12 && c.freqsPerBands == [2, 1023] && c.stems == ["vocals"])
    }
}
