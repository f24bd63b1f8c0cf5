import Foundation
import Testing
@testable import DemucsEngine

/// Checks one forward pass of the tiny HTDemucs fixture model against PyTorch's, layer by layer,
/// on the raw one-second segment dumped by `tools/make_fixtures.py`. Each dumped tensor is a
/// slice (`start..<stop` along one axis) of the full one; the metadata says which.
@Suite struct HTDemucsLayerTests {
    struct Slice: Decodable { var dim: Int; var start: Int; var stop: Int; var full_shape: [Int] }

    /// Cuts the same slice out of our tensor (which has no batch axis).
    static func slice(_ t: Tensor, _ s: Slice?) -> [Float] {
        guard let s else { return t.data }
        let shape = Array(s.full_shape.dropFirst())
        let dim = s.dim - 1
        var outer = 1, inner = 1
        for i in 0..<dim { outer *= shape[i] }
        for i in (dim + 1)..<shape.count { inner *= shape[i] }
        var out: [Float] = []
        for o in 0..<outer {
            let base = o * shape[dim] * inner
            out += t.data[(base + s.start * inner)..<(base + s.stop * inner)]
        }
        return out
    }

    @Test func everyLayerMatchesPyTorch() throws {
        let debug = try SafeTensorsFile(path: FixturePaths.debug + "/tiny4_layers.safetensors")
        let slices = try JSONDecoder().decode([String: Slice].self, from: Data(debug.metadata["slices"]!.utf8))
        let bag = try ModelRepository(root: FixturePaths.models).load("tiny4")
        let model = try #require(bag.models[0] as? HTDemucs)
        let input = try debug.tensor("input")
        var seen: [String: Double] = [:]
        let out = try model.forward(input.reshaped([input.shape[1], input.shape[2]])) { name, t in
            guard let expected = try? debug.tensor(name) else { return }
            seen[name] = snr(reference: expected.data, estimate: Self.slice(t, slices[name]))
        }
        let expected = try debug.tensor("output")
        seen["output"] = snr(reference: expected.data, estimate: Self.slice(out, slices["output"]))
        for name in seen.keys.sorted() { print(name, seen[name]!) }
        #expect(seen.count >= 20)
        for (name, value) in seen {
            let ok: Bool = value > 60
            #expect(ok, "\(name): \(value) dB")
        }
    }
}
