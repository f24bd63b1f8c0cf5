import Foundation
import Testing
@testable import CheckpointImport
@testable import DemucsEngine

/// demucs 2.0.3's checkpoints (`tools/make_fixtures_v2.py`, `Tests/Fixtures/v2`): bare state dicts
/// whose architecture comes from their shapes, `save_model` packages with a diffq-quantised state
/// inside zlib, one forward pass of the v2 Demucs and of Conv-TasNet layer by layer against
/// PyTorch, and the errors for what cannot be converted.
@Suite struct V2CheckpointTests {
    static let root = Fixtures.root + "/v2"

    static func model(_ file: String) throws -> (LegacyCheckpoint.Converted, any SeparationModel) {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = root + "/models/" + file
        let converted = try LegacyCheckpoint.convert(path: path)
        let (_, written) = try LegacyCheckpoint.importFile(path: path, into: folder)
        return (converted, try ModelLoader.load(path: written))
    }

    static func file(prefix: String) throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: root + "/models")
        return try #require(names.first { $0.hasPrefix(prefix) })
    }

    static func kwargs(_ c: LegacyCheckpoint.Converted) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(c.metadata["kwargs"]!.utf8)) as? [String: Any])
    }

    @Test func bareDemucsStateGetsItsArchitectureFromTheShapes() throws {
        let (converted, model) = try Self.model(try Self.file(prefix: "v2demucs_small-"))
        #expect(converted.metadata["klass"] == "demucs.model.Demucs")
        let k = try Self.kwargs(converted)
        #expect(k["channels"] as? Int == 3)
        #expect(k["depth"] as? Int == 4)
        #expect(k["lstm_layers"] as? Int == 2)
        #expect(k["context"] as? Int == 3)
        #expect(k["sources"] as? [String] == ["drums", "bass", "other", "vocals"])
        let demucs = try #require(model as? WaveformDemucs)
        // valid_length as demucs 2.0.3 computes it (printed by the fixture generator).
        for (length, valid) in [(22050, 22442), (44100, 44458), (66150, 66602)] {
            #expect(try demucs.validLength(length) == valid)
        }
        #expect(model.applyGeneration == .v2)
        #expect(model.segment == Fraction(40, 1))
    }

    @Test func bareTasNetStateGetsItsArchitectureFromTheShapes() throws {
        let (converted, model) = try Self.model(try Self.file(prefix: "tasnet_small-"))
        #expect(converted.metadata["klass"] == "demucs.tasnet.ConvTasNet")
        let k = try Self.kwargs(converted)
        #expect(k["N"] as? Int == 16)
        #expect(k["L"] as? Int == 20)
        #expect(k["B"] as? Int == 8)
        #expect(k["H"] as? Int == 16)
        #expect(k["X"] as? Int == 3)
        #expect(k["R"] as? Int == 2)
        #expect(k["causal"] as? Bool == false)
        #expect(model.segment == Fraction(8, 1))
        #expect(try model.validLength(12345) == 12345)
    }

    /// The package keeps its own kwargs (1 s segments, normalisation); its state is a diffq state
    /// inside zlib inside a torch.save, restored with the quantizer its training_args name.
    @Test func quantisedPackageIsRestored() throws {
        let (converted, model) = try Self.model("v2demucs_q.th")
        #expect(converted.quantized)
        #expect(converted.tensors.values.allSatisfy { $0.dtype == .f32 })
        #expect(model.segment == Fraction(1, 1))
        let k = try Self.kwargs(converted)
        #expect(k["normalize"] as? Bool == true)
    }

    struct Slice: Decodable { var dim: Int; var start: Int; var stop: Int; var full_shape: [Int] }

    /// Compares every traced tensor with the dumped one (the centred 128 steps of its last axis).
    static func compare(_ prefix: String, model: any SeparationModel,
                        run: (Tensor, @escaping (String, Tensor) -> Void) throws -> Tensor) throws -> [String: Double] {
        let debug = try SafeTensorsFile(path: root + "/debug/v2_layers.safetensors")
        let slices = try JSONDecoder().decode([String: Slice].self, from: Data(debug.metadata["slices"]!.utf8))
        var input = try debug.tensor(prefix + ".input")
        input = input.reshaped(Array(input.shape.suffix(2)))
        let seen = SNRTable()
        func check(_ name: String, _ t: Tensor) {
            guard let s = slices[prefix + "." + name], let expected = try? debug.tensor(prefix + "." + name) else { return }
            let length = s.full_shape.last!
            #expect(t.shape.last == length, "\(name): \(t.shape) vs \(s.full_shape)")
            guard t.shape.last == length else { return }
            var cut: [Float] = []
            for r in 0..<(t.count / length) { cut += t.data[(r * length + s.start)..<(r * length + s.stop)] }
            seen.set(name, snrDB(expected.data, cut))
        }
        let out = try run(input, check)
        check("output", out)
        return seen.values
    }

    @Test func demucsLayersMatchPyTorch() throws {
        let (_, model) = try Self.model(try Self.file(prefix: "v2demucs_small-"))
        let demucs = try #require(model as? WaveformDemucs)
        let seen = try Self.compare("demucs", model: model) { x, trace in try demucs.forward(x, trace: trace) }
        #expect(seen.count == 11, "\(seen.keys.sorted())")
        for (name, value) in seen { #expect(value > 80, "\(name): \(value) dB") }
    }

    @Test(arguments: [("tasnet", "tasnet_small-"), ("tasnetc", "tasnet_cln")])
    func tasNetLayersMatchPyTorch(_ prefix: String, _ file: String) throws {
        let (_, model) = try Self.model(try Self.file(prefix: file))
        let tasnet = try #require(model as? ConvTasNet)
        let seen = try Self.compare(prefix, model: model) { x, trace in try tasnet.forward(x, trace: trace) }
        #expect(seen.count == 8, "\(seen.keys.sorted())")
        for (name, value) in seen { #expect(value > 80, "\(prefix).\(name): \(value) dB") }
    }

    // MARK: - What cannot be converted

    @Test func quantisedBareStateNeedsAKnownName() throws {
        // The compressed state of the package, saved bare under a name v2 never published.
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let package = try TorchZip.load(path: Self.root + "/models/v2demucs_q.th")
        guard case .dict(let state)? = package["state"] else { Issue.record("no state"); return }
        do {
            _ = try V2Checkpoint.convertBare(state, path: "mymodel.th", signature: "mymodel")
            Issue.record("a quantised state without a known name was converted")
        } catch let error as CheckpointError {
            #expect(error.message.contains("holds no architecture"), "\(error.message)")
        }
    }

    @Test func unknownBareStateIsRefusedByName() throws {
        let state = PickleDict()
        try state.set(.string("some.weight"), .tensor(RawTensor(dtype: .f32, shape: [1], data: Data(count: 4))))
        do {
            _ = try V2Checkpoint.convertBare(state, path: "x.th", signature: "x")
            Issue.record("an unknown state was converted")
        } catch let error as CheckpointError {
            #expect(error.message.contains("not of a model this engine knows"), "\(error.message)")
        }
    }

    @Test func zlibRoundTripsAndChecksItsChecksum() throws {
        // Python: zlib.compress(b"hello") == 78 9c cb 48 cd c9 c9 07 00 06 2c 02 15.
        let blob = Data([0x78, 0x9C, 0xCB, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00, 0x06, 0x2C, 0x02, 0x15])
        #expect(try Zlib.decompress(blob, description: "blob") == Data("hello".utf8))
        var damaged = blob
        damaged[damaged.count - 1] ^= 1
        #expect(throws: CheckpointError.self) { try Zlib.decompress(damaged, description: "blob") }
        #expect(throws: CheckpointError.self) { try Zlib.decompress(Data("hello there".utf8), description: "blob") }
    }
}

final class SNRTable: @unchecked Sendable {
    private(set) var values: [String: Double] = [:]
    func set(_ name: String, _ value: Double) { values[name] = value }
}

/// The diffq 0.1.0 layout of a quantised state (no `meta`, unpacked levels and bits), which the
/// 2021 `demucs_quantized` file has, restores to exactly the weights of the diffq 0.2 layout.
@Suite struct V2DiffQ01Tests {
    @Test func diffq01LayoutRestoresTheSameWeights() throws {
        let root = Fixtures.root + "/v2/models/"
        let packed = try LegacyCheckpoint.convert(path: root + "v2demucs_q.th")
        let old = try LegacyCheckpoint.convert(path: root + "v2demucs_q01.th")
        #expect(old.quantized)
        #expect(old.metadata == packed.metadata)
        #expect(Set(old.tensors.keys) == Set(packed.tensors.keys))
        for (name, tensor) in packed.tensors {
            #expect(old.tensors[name] == tensor, "\(name) differs")
        }
    }
}
