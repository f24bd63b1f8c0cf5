import Foundation
import Testing
@testable import DemucsEngine

/// Hybrid Demucs (v3): one forward pass of each HDemucs fixture model against PyTorch's, on the
/// raw one-second segment of `debug/tiny4_layers.safetensors`, layer by layer for `hdemucs4`.
/// The fixtures are made by `tools/make_fixtures_hdemucs.py`; every dumped tensor is a box
/// (`ranges`, one `[start, stop)` per axis after the batch axis) of the full one.
@Suite struct HDemucsTests {
    struct Slice: Decodable { var ranges: [[Int]]; var full_shape: [Int] }

    static var root: String { FixturePaths.root + "/hdemucs" }
    static var models: String { root + "/models" }

    /// Cuts the box out of our tensor (which has no batch axis).
    static func cut(_ t: Tensor, _ s: Slice) -> [Float]? {
        let shape = Array(s.full_shape.dropFirst())
        guard shape.reduce(1, *) == t.count, shape.count == s.ranges.count else { return nil }
        var strides = [Int](repeating: 1, count: shape.count)
        for i in stride(from: shape.count - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * shape[i + 1] }
        var out: [Float] = []
        func walk(_ axis: Int, _ base: Int) {
            let r = s.ranges[axis]
            for i in r[0]..<r[1] {
                let offset = base + i * strides[axis]
                if axis == shape.count - 1 { out.append(t.data[offset]) } else { walk(axis + 1, offset) }
            }
        }
        walk(0, 0)
        return out
    }

    static func input() throws -> Tensor {
        let debug = try SafeTensorsFile(path: FixturePaths.debug + "/tiny4_layers.safetensors")
        let input = try debug.tensor("input")
        return input.reshaped([input.shape[1], input.shape[2]])
    }

    /// Runs `model` with a trace and returns the SNR of every dumped tensor.
    static func compare(_ model: HDemucs, dump: String) throws -> [String: Double] {
        let debug = try SafeTensorsFile(path: root + "/debug/" + dump)
        let slices = try JSONDecoder().decode([String: Slice].self, from: Data(debug.metadata["slices"]!.utf8))
        var seen: [String: Double] = [:]
        var shapeErrors: [String] = []
        let out = try model.forward(try input()) { name, t in
            guard let s = slices[name], let expected = try? debug.tensor(name) else { return }
            guard let mine = cut(t, s) else { shapeErrors.append("\(name): ours \(t.shape), torch \(s.full_shape)"); return }
            seen[name] = snr(reference: expected.data, estimate: mine)
        }
        #expect(shapeErrors.isEmpty, "\(shapeErrors)")
        for name in ["output_head", "output_mid", "output_tail"] {
            let s = try #require(slices[name])
            let mine = try #require(cut(out, s), "output \(out.shape) vs \(s.full_shape)")
            seen[name] = snr(reference: try debug.tensor(name).data, estimate: mine)
        }
        for name in seen.keys.sorted() { print(dump, name, seen[name]!) }
        return seen
    }

    @Test func hybridModelMatchesPyTorchLayerByLayer() throws {
        let bag = try ModelRepository(root: Self.models).load("hdemucs4")
        let model = try #require(bag.models[0] as? HDemucs)
        // Two frequency layers, the last frequency layer (merge), two time layers on the merged
        // tensor; three waveform layers, the last one the bare merge convolution.
        #expect(model.encoder.count == 5 && model.tencoder.count == 3)
        #expect(model.tencoder.last?.empty == true && model.tdecoder.first?.empty == true)
        #expect(model.encoder[3].options.freq == false && model.encoder[4].options.freq == false)
        let seen = try Self.compare(model, dump: "hdemucs4_forward.safetensors")
        // enc0-4, tenc0-2, dec0-4, tdec0-2 and the output.
        #expect(seen.count == 19)
        for (name, value) in seen { #expect(value > 60, "\(name): \(value) dB") }
    }

    @Test(arguments: [("0d01d002", "hd_old"), ("5bec0002", "hd_spec"), ("3d7f0003", "hdmulti")])
    func variantMatchesPyTorch(_ sig: String, _ name: String) throws {
        let model = try #require(try ModelLoader.load(path: "\(Self.models)/\(sig).safetensors") as? HDemucs)
        if name == "hd_spec" { #expect(model.tencoder.isEmpty && model.tdecoder.isEmpty) }
        let seen = try Self.compare(model, dump: "\(name)_forward.safetensors")
        #expect(seen.count == 3)
        for (key, value) in seen { #expect(value > 60, "\(name) \(key): \(value) dB") }
    }

    @Test func bagSegmentReplacesTheModelSegment() throws {
        let bag = try ModelRepository(root: Self.models).load("mixbag")
        #expect(bag.models.count == 2)
        #expect(bag.models[0] is HDemucs && bag.models[1] is HTDemucs)
        // segment: 1.2 applies to the HDemucs; the HTDemucs keeps its 1 s (only a shorter one replaces it).
        #expect(bag.models[0].segment == Fraction(6, 5))
        #expect(bag.models[1].segment == Fraction(1, 1))
        #expect(bag.models[0].maxSegment == nil)
        #expect(try bag.models[0].validLength(12345) == 12345)
    }

    /// Short chunks (the last chunk of a track can be a few samples): no crash, the right shape,
    /// finite values; the spectrogram-only model refuses what torch.stft's reflect padding refuses.
    @Test func shortInputs() throws {
        for sig in ["4d3c0de4", "0d01d002", "5bec0002", "3d7f0003"] {
            let model = try #require(try ModelLoader.load(path: "\(Self.models)/\(sig).safetensors") as? HDemucs)
            for length in [1, 2, 5, 63, 64, 65, 100, 129, 300, 1000] {
                var x = Tensor(zeros: [2, length])
                for i in 0..<x.count { x.data[i] = Float(sin(Double(i) * 0.37)) * 0.1 }
                if sig == "5bec0002" && length <= 128 {
                    #expect(throws: EngineError.self) { _ = try model.forward(x) }
                    continue
                }
                let y = try model.forward(x)
                #expect(y.shape == [model.sources.count, 2, length])
                let finite = y.data.allSatisfy { $0.isFinite }
                if length > 1 { #expect(finite, "\(sig) length \(length)") }
            }
        }
    }

    static func config(_ extra: String) throws -> HDemucsConfig {
        var a = try ModelArguments(json: "{\"sources\": [\"drums\", \"bass\"]\(extra)}", source: "test.safetensors")
        return try HDemucsConfig(&a)
    }

    @Test func officialDefaultsAreAccepted() throws {
        // hdemucs_mmi's architecture: all defaults (cac, hybrid, BLSTM and attention from layer 4).
        let c = try Self.config("")
        #expect(c.depth == 6 && c.nfft == 4096 && c.dconvLstm == 4 && c.dconvAttn == 4 && c.segment == Fraction(40, 1))
        _ = try Self.config(", \"multi_freqs\": [], \"hybrid_old\": true, \"wiener_iters\": 0, \"end_iters\": 0")
        // MultiWrap bands (the model file's layers then carry `layers.{k}.` weights).
        let m = try Self.config(", \"multi_freqs\": [0.25, 0.5], \"multi_freqs_depth\": 1")
        #expect(m.multiFreqs == [0.25, 0.5] && m.multiFreqsDepth == 1)
    }

    @Test(arguments: [
        (", \"cac\": false", "cac=false"),
        (", \"cac\": false, \"wiener_iters\": -1, \"end_iters\": -1", "magnitude masking"),
        (", \"multi_freqs\": [\"low\"]", "multi_freqs"),
        (", \"wiener_iters\": 1", "wiener_iters == end_iters"),
        (", \"hybrid\": false, \"hybrid_old\": true", "hybrid_old"),
        (", \"t_layers\": 5", "t_layers"),
    ])
    func unsupportedOptionsAreRefusedByName(_ extra: String, _ word: String) throws {
        do {
            _ = try Self.config(extra)
            Issue.record("accepted \(extra)")
        } catch let error as EngineError {
            #expect(error.message.contains(word), "\(error.message)")
        }
    }
}
