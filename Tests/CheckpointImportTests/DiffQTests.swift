@testable import CheckpointImport
@testable import DemucsEngine
import Foundation
import Testing

/// diffq-quantised hub files (`structure` metadata) and the parameter layouts they depend on.
@Suite struct DiffQTests {
    /// Compares restored weights with the hashes tools/make_fixtures_import.py took of the
    /// weights diffq restores in PyTorch: every bit must match.
    static func checkHashes(_ weights: [String: Tensor], _ model: String) throws {
        let all = try Fixtures.json("dequantized.json") as! [String: [String: Any]]
        let expected = all[model]!
        for (name, hash) in expected["quantized"] as! [String: String] {
            guard let t = weights[name] else { Issue.record("\(model): no \(name)"); continue }
            #expect(FNV64.of(t.data) == hash, "\(model): \(name)")
        }
        #expect(FNV64.all(weights) == expected["all"] as! String, "\(model): all weights")
    }

    @Test func tinyqDequantisesExactlyAsDiffq() throws {
        let file = try SafeTensorsFile(path: Fixtures.tinyq)
        let raw = try file.rawTensors()
        let state = try StateStructure.unflatten(json: file.metadata["structure"]!, source: file.path) { raw[$0] }
        #expect(DiffQ.isQuantized(state))
        let layout = try ParameterLayout.parameters(klass: file.metadata["klass"]!, kwargsJSON: file.metadata["kwargs"]!, source: file.path)
        let weights = try DiffQ.dequantize(state: state, parameters: layout, source: file.path)
        #expect(weights.count == 465)
        try Self.checkHashes(weights, "tinyq")
    }

    @Test func tinyqLoadsThroughTheModelLoader() throws {
        let model = try ModelLoader.load(path: Fixtures.tinyq)
        #expect(model.sources == ["drums", "bass", "other", "vocals"])
        let bag = try ModelRepository(root: Fixtures.importDir + "/hub").load("tinyq")
        #expect(bag.models.count == 1)
    }

    @Test func aClassOutsideDiffqIsRefused() throws {
        #expect { try ModelLoader.load(path: Fixtures.hostile("evil_class.safetensors")) } throws: {
            let message = ($0 as? EngineError)?.message ?? ""
            return message.contains("refusing to load") && message.contains("os.system")
        }
    }

    @Test func aStateForAnotherArchitectureIsRefused() throws {
        // tinyq's quantised state with the kwargs of a model with one more source.
        let file = try SafeTensorsFile(path: Fixtures.tinyq)
        let raw = try file.rawTensors()
        let state = try StateStructure.unflatten(json: file.metadata["structure"]!, source: "x") { raw[$0] }
        let kwargs = file.metadata["kwargs"]!.replacingOccurrences(of: "\"vocals\"]", with: "\"vocals\", \"guitar\"]")
        let layout = try ParameterLayout.parameters(klass: file.metadata["klass"]!, kwargsJSON: kwargs, source: "x")
        #expect(throws: EngineError.self) { try DiffQ.dequantize(state: state, parameters: layout, source: "x") }
    }

    /// The parameter order and shapes of many configurations of the three model classes,
    /// against PyTorch's `named_parameters()`.
    @Test func parameterLayoutsMatchPyTorch() throws {
        let rows = try Fixtures.json("layouts.json") as! [[String: Any]]
        #expect(rows.count >= 15)
        for row in rows {
            let klass = row["klass"] as! String, kwargs = row["kwargs"] as! String
            let params = try ParameterLayout.parameters(klass: klass, kwargsJSON: kwargs, source: "layouts.json")
            let text = params.map { "\($0.name):\($0.shape.map(String.init).joined(separator: ","))\n" }.joined()
            #expect(params.count == row["count"] as! Int, "\(klass) \(kwargs)")
            #expect(FNV64.of(Data(text.utf8)) == row["fnv64"] as! String, "\(klass) \(kwargs)\n\(text)")
        }
    }

    @Test func fnmatchPatterns() {
        #expect(FNMatch.matches("encoder.0.conv.bias", "*bias"))
        #expect(FNMatch.matches("bias", "bias"))
        #expect(!FNMatch.matches("encoder.0.conv.weight", "*bias"))
        #expect(FNMatch.matches("layers.3.x", "layers.[0-4].?"))
        #expect(!FNMatch.matches("layers.5.x", "layers.[!5].x"))
        #expect(FNMatch.matches("a[b", "a[b"))
    }
}
