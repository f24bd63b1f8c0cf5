@testable import CheckpointImport
import DemucsEngine
import Testing

/// The RoFormer fixtures' `.ckpt` files (tools/make_fixtures_roformer.py: `torch.save` of a
/// state dict, as the published checkpoints are) read through the safe pickle reader: every
/// entry a named float16 tensor of the shape the reference's model gives it.
struct RoFormerCheckpointTests {
    static let folder = Fixtures.root + "/roformer"

    @Test(arguments: [
        // name, entries, (key, shape) pairs from the reference's state_dict()
        ("bs_1stem", 457, [("layers.0.0.layers.0.0.to_qkv.weight", [48, 16]),
                           ("layers.0.0.layers.0.0.rotary_embed.freqs", [4]),
                           ("final_norm.gamma", [16]),
                           ("band_split.to_features.0.1.weight", [16, 8])]),
        ("bs_2stem_linear", 207, [("layers.0.0.layers.0.0.to_qkv.0.weight", [48, 16]),
                                  ("layers.0.0.layers.0.0.temperature", [2, 1, 1]),
                                  ("layers.0.2.layers.0.0.rotary_embed.freqs", [4]),
                                  ("band_split.to_features.0.1.weight", [16, 16])]),
        ("mel_1stem", 96, [("layers.0.0.layers.0.0.to_qkv.weight", [48, 16]),
                           ("band_split.to_features.0.1.weight", [16, 84])]),
    ])
    func stateDictReadsAsNamedHalfTensors(_ name: String, _ entries: Int, _ shapes: [(String, [Int])]) throws {
        let value = try TorchZip.load(path: Self.folder + "/\(name).ckpt")
        guard case .dict(let dict) = value else {
            Issue.record("\(name).ckpt holds a \(value.kindName), not a state dict")
            return
        }
        #expect(dict.pairs.count == entries)
        for (key, item) in dict.pairs {
            guard case .string = key, case .tensor(let tensor) = item else {
                Issue.record("\(name).ckpt: \(key.kindName) → \(item.kindName)")
                continue
            }
            #expect(tensor.dtype == .f16)
        }
        for (key, shape) in shapes {
            guard case .tensor(let tensor)? = value[key] else {
                Issue.record("\(name).ckpt has no tensor \(key)")
                continue
            }
            #expect(tensor.shape == shape, "\(key)")
        }
        // Mel-Band RoFormer has no final norm; each of its transformers ends with its own.
        #expect((value["final_norm.gamma"] != nil) == name.hasPrefix("bs_"))
    }
}
