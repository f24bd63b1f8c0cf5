import Foundation
import Testing
@testable import DemucsEngine

/// The waveform Demucs (`demucs.demucs.Demucs`) against PyTorch: its LSTM, BLSTM and LocalState
/// layers on their own, one forward pass of the `wav_attn` fixture model layer by layer, and
/// `valid_length` and the option checks. Data from `tools/make_fixtures_demucs.py`.
@Suite struct WaveformDemucsTests {
    static let root = FixturePaths.root + "/demucs"

    static func units() throws -> (SafeTensorsFile, Weights) {
        let file = try SafeTensorsFile(path: root + "/debug/wav_units.safetensors")
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        return (file, Weights(tensors: tensors, source: "wav_units"))
    }

    static func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "\(a.count) vs \(b.count)")
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    @Test func lstmMatchesTorch() throws {
        let (file, weights) = try Self.units()
        let lstm = try LSTM(weights.scoped("lstm"), inputSize: 5, hidden: 6, layers: 2, bidirectional: true)
        let x = try file.tensor("lstm_in")          // [9, 3, 5]
        let expected = try file.tensor("lstm_out")  // [9, 3, 12]
        let y = lstm(x, time: 9, batch: 3)
        #expect(y.shape == [9, 3, 12])
        let diff = Self.maxDiff(y.data, expected.data)
        let value = snr(reference: expected.data, estimate: y.data)
        #expect(diff < 1e-5, "max |diff| \(diff), SNR \(value) dB")
    }

    /// demucs's BLSTM with `max_steps` 8: a 21-step input is cut into 6 overlapping frames; a
    /// 7-step input runs as one sequence. Torch layout `[B, C, T]`, ours `[C, B, T]`.
    @Test(arguments: ["blstm_long", "blstm_short"])
    func blstmMatchesDemucs(_ name: String) throws {
        let (file, weights) = try Self.units()
        let blstm = try BLSTM(weights.scoped("blstm"), dim: 6, layers: 2, maxSteps: 8, skip: true)
        let x = try file.tensor("\(name)_in")
        let expected = try file.tensor("\(name)_out")
        let batch = x.shape[0]
        let y = blstm(x.permuted([1, 0, 2]), batch: batch).permuted([1, 0, 2])
        #expect(y.shape == expected.shape)
        let diff = Self.maxDiff(y.data, expected.data)
        #expect(diff < 1e-5, "\(name): max |diff| \(diff)")
    }

    @Test func localStateMatchesDemucs() throws {
        let (file, weights) = try Self.units()
        let local = try LocalState(weights.scoped("local"), channels: 8, heads: 4, ndecay: 4)
        let x = try file.tensor("local_in")          // [2, 8, 30]
        let expected = try file.tensor("local_out")
        let y = local(x.permuted([1, 0, 2]), batch: 2).permuted([1, 0, 2])
        let diff = Self.maxDiff(y.data, expected.data)
        #expect(diff < 1e-5, "max |diff| \(diff)")
    }

    struct Slice: Decodable { var dim: Int; var start: Int; var stop: Int; var full_shape: [Int] }

    /// Our tensor (no batch axis) cut like the dumped one: the first `stop` samples of every row.
    static func slice(_ t: Tensor, _ s: Slice) -> [Float] {
        let length = s.full_shape.last!
        precondition(t.shape.last! == length, "\(t.shape) vs \(s.full_shape)")
        let rows = t.count / length
        var out: [Float] = []
        for r in 0..<rows { out += t.data[(r * length + s.start)..<(r * length + s.stop)] }
        return out
    }

    @Test func everyLayerMatchesPyTorch() throws {
        let debug = try SafeTensorsFile(path: Self.root + "/debug/wav_layers.safetensors")
        let slices = try JSONDecoder().decode([String: Slice].self, from: Data(debug.metadata["slices"]!.utf8))
        let bag = try ModelRepository(root: Self.root + "/models").load("wav_attn")
        let model = try #require(bag.models[0] as? WaveformDemucs)
        let input = try debug.tensor("input")
        var seen: [String: Double] = [:]
        let out = try model.forward(input.reshaped([input.shape[1], input.shape[2]])) { name, t in
            guard let s = slices[name], let expected = try? debug.tensor(name) else { return }
            seen[name] = snr(reference: expected.data, estimate: Self.slice(t, s))
        }
        let expected = try debug.tensor("output")
        seen["output"] = snr(reference: expected.data, estimate: Self.slice(out, slices["output"]!))
        for name in seen.keys.sorted() { print(name, seen[name]!) }
        #expect(seen.count == 11)
        for (name, value) in seen {
            let ok: Bool = value > 80
            #expect(ok, "\(name): \(value) dB")
        }
    }

    /// Checkpoints of the previous Demucs generation name the decoder's transposed convolution
    /// `decoder.N.2` where the current layout has `decoder.N.3`; demucs renames them on load,
    /// and so does the engine.
    @Test func previousGenerationNamesLoad() throws {
        let file = try SafeTensorsFile(path: Self.root + "/models/d3a4e5b1.safetensors")
        var current: [String: Tensor] = [:], previous: [String: Tensor] = [:]
        for name in file.names {
            let t = try file.tensor(name)
            current[name] = t
            var renamed = name
            for i in 0..<4 {
                for part in ["weight", "bias"] where name == "decoder.\(i).3.\(part)" {
                    renamed = "decoder.\(i).2.\(part)"
                }
            }
            previous[renamed] = t
        }
        #expect(previous.keys.contains("decoder.0.2.weight") && !previous.keys.contains("decoder.0.3.weight"))
        func build(_ tensors: [String: Tensor]) throws -> (WaveformDemucs, Weights) {
            var args = try ModelArguments(json: file.metadata["kwargs"]!, source: "test")
            let weights = Weights(tensors: tensors, source: "test")
            return (try WaveformDemucs(config: WaveformDemucsConfig(&args), weights: weights), weights)
        }
        let (a, _) = try build(current)
        let (b, weightsB) = try build(previous)
        #expect(weightsB.unused.isEmpty)
        var x = Tensor(zeros: [2, 3000])
        for i in 0..<x.count { x.data[i] = sin(Float(i) * 0.01) * 0.3 + Float(i % 7) * 0.01 }
        #expect(try a.forward(x) == b.forward(x))
    }

    static func config(_ json: String) throws -> WaveformDemucsConfig {
        var args = try ModelArguments(json: json, source: "test")
        return try WaveformDemucsConfig(&args)
    }

    /// Values from demucs 4.1's `Demucs.valid_length` (channels 4, the rest as listed).
    @Test func validLengthMatchesDemucs() throws {
        let lengths = [1, 2, 7, 100, 1001, 44100, 66150, 441000]
        let cases: [(String, [Int])] = [
            ("", [4778, 4778, 4778, 4778, 4778, 45738, 66218, 441002]),
            (#", "resample": false"#, [9556, 9556, 9556, 9556, 9556, 46420, 66900, 443732]),
            (#", "depth": 4, "channels": 3"#, [298, 298, 298, 298, 1066, 44202, 66218, 441002]),
            (#", "kernel_size": 5, "stride": 3, "depth": 3"#, [27, 27, 27, 108, 1012, 44104, 66163, 441004]),
            (#", "resample": false, "depth": 2, "kernel_size": 6, "stride": 2"#, [16, 16, 16, 100, 1004, 44100, 66152, 441000]),
        ]
        for (extra, expected) in cases {
            let c = try Self.config(#"{"sources": ["a", "b"], "channels": 4"# + extra + "}")
            #expect(lengths.map { c.validLength($0) } == expected, "\(extra)")
        }
    }

    @Test func defaultsAreDemucs41() throws {
        let c = try Self.config(#"{"sources": ["drums", "bass", "other", "vocals"]}"#)
        #expect(c.channels == 64 && c.depth == 6 && c.growth == 2 && c.kernelSize == 8 && c.stride == 4)
        #expect(c.dconvMode == 1 && c.dconvComp == 4 && c.dconvAttn == 4 && c.dconvLstm == 4 && c.lstmLayers == 0)
        #expect(c.glu && c.gelu && c.rewrite && c.normalize && c.resample && c.context == 1)
        #expect(c.segment == Fraction(40, 1) && c.samplerate == 44100 && c.normStarts == 4 && c.normGroups == 4)
    }

    @Test func unknownOrImpossibleOptionsAreRefusedByName() throws {
        let cases = [
            (#"{"sources": ["a"], "wiener_iters": 1}"#, "wiener_iters"),
            (#"{"sources": ["a"], "dconv_mode": 4}"#, "dconv_mode"),
            (#"{"sources": ["a"], "channels": 6, "norm_starts": 0, "norm_groups": 4}"#, "norm_groups"),
            (#"{"sources": ["a"], "stride": 0}"#, "stride"),
        ]
        for (json, key) in cases {
            do {
                _ = try Self.config(json)
                Issue.record("\(json) was accepted")
            } catch let error as EngineError {
                #expect(error.kind == .unsupportedModel)
                #expect(error.message.contains(key), "\(error.message)")
            }
        }
        // Initialisation-only options are accepted.
        _ = try Self.config(#"{"sources": ["a"], "rescale": 0.1, "dconv_init": 0.0001}"#)
    }
}
