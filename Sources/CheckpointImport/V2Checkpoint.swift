import DemucsEngine
import Foundation

/// demucs 2.0.3's checkpoints (the 2021 `--name demucs` models and Conv-TasNet), converted to the
/// hub layout with klass `demucs.model.Demucs` or `demucs.tasnet.ConvTasNet`.
///
/// v2 wrote two kinds of file:
/// - the pretrained downloads (`demucs-e07c671f.th`, ...): a bare state dict, or for
///   `demucs_quantized` `{"compressed": zlib(torch.save(diffq quantised state))}`. They carry no
///   architecture: `pretrained.py` builds it from the name. Here the name (the file's signature)
///   picks it when it is one of v2's, and otherwise it is read from the tensor shapes with v2's
///   defaults for what shapes do not show (stride 4, resample, no normalisation, gLN, non-causal,
///   segment 40 s / 8 s) — so a plain state needs no name, a quantised one does;
/// - `utils.save_model`'s package `{"klass", "args", "kwargs", "state", "training_args"}`, where
///   `training_args` (an argparse Namespace) says which quantizer made a compressed state.
///
/// A quantised state is restored at import (as v2's `load_model` does at load) and stored as
/// float32 tensors, since its quantizer settings live outside the state.
enum V2Checkpoint {
    static let classes: Set<String> = ["demucs.model.Demucs", "demucs.tasnet.ConvTasNet"]

    /// v2's `SOURCES`: every pretrained model separates these four.
    static let sources = ["drums", "bass", "other", "vocals"]

    /// A pretrained v2 model as `pretrained.py` builds it.
    struct Pretrained {
        var klass: String
        var kwargs: [(String, String)]  // key, JSON value
        /// diffq settings (`DiffQuantizer(model, group_size=8, min_size=1)`) for a compressed state.
        var quantized: Bool
    }

    static func demucsKwargs(channels: Int) -> [(String, String)] {
        [("sources", json(sources)), ("channels", "\(channels)")]
    }

    /// `pretrained.load_pretrained`, by name.
    static let pretrained: [String: Pretrained] = [
        "demucs": Pretrained(klass: "demucs.model.Demucs", kwargs: demucsKwargs(channels: 64), quantized: false),
        "demucs48_hq": Pretrained(klass: "demucs.model.Demucs", kwargs: demucsKwargs(channels: 48), quantized: false),
        "demucs_extra": Pretrained(klass: "demucs.model.Demucs", kwargs: demucsKwargs(channels: 64), quantized: false),
        "demucs_quantized": Pretrained(klass: "demucs.model.Demucs", kwargs: demucsKwargs(channels: 64), quantized: true),
        "demucs_unittest": Pretrained(klass: "demucs.model.Demucs", kwargs: demucsKwargs(channels: 4), quantized: false),
        "tasnet": Pretrained(klass: "demucs.tasnet.ConvTasNet", kwargs: [("sources", json(sources)), ("X", "10")], quantized: false),
        "tasnet_extra": Pretrained(klass: "demucs.tasnet.ConvTasNet", kwargs: [("sources", json(sources)), ("X", "10")], quantized: false),
    ]

    // MARK: - Bare state dicts (the pretrained downloads)

    static func convertBare(_ state: PickleDict, path: String, signature: String) throws -> LegacyCheckpoint.Converted {
        let known = pretrained[signature]
        if let compressed = state.pairs.first(where: { if case .string("compressed") = $0.key { return true }; return false }) {
            guard state.pairs.count == 1, case .bytes(let bytes) = compressed.value else {
                throw CheckpointError("\(path): a v2 quantised state is {'compressed': bytes}; this one has other entries")
            }
            guard let known, known.quantized else {
                throw CheckpointError("\(path) is a diffq-quantised demucs v2 state, which holds no architecture: only demucs_quantized's is known by name (the file is named '\(signature)'). Import the model as v2's save_model wrote it (with klass, kwargs and training_args) instead")
            }
            let quantizer = quantizerMeta(kind: "DiffQuantizer", kwargs: [("min_size", .double(1)), ("group_size", .int(8))])
            return try convertQuantized(bytes, klass: known.klass, kwargsJSON: object(known.kwargs), quantizer: quantizer, path: path)
        }
        let tensors = try LegacyCheckpoint.plainTensors(state, path: path)
        let klass: String, kwargsJSON: String
        if let known, !known.quantized {
            klass = known.klass
            kwargsJSON = object(known.kwargs)
        } else if known?.quantized == true {
            throw CheckpointError("\(path) is named \(signature), which demucs v2 published as a quantised state, but it holds plain tensors")
        } else {
            (klass, kwargsJSON) = try inferArchitecture(tensors, path: path)
        }
        return try plain(tensors, klass: klass, kwargsJSON: kwargsJSON, path: path)
    }

    /// The architecture of a plain v2 state from its tensor shapes (see the type's documentation).
    static func inferArchitecture(_ t: [String: RawTensor], path: String) throws -> (String, String) {
        func shape(_ name: String) -> [Int]? { t[name]?.shape }
        func count(_ make: (Int) -> String) -> Int {
            var n = 0
            while t[make(n)] != nil { n += 1 }
            return n
        }
        func sourcesJSON(outputs: Int, audioChannels: Int) throws -> String {
            guard audioChannels > 0, outputs == sources.count * audioChannels else {
                throw CheckpointError("\(path): the model has \(outputs) output channels for \(audioChannels) audio channels; demucs v2 states separate the four sources \(sources.joined(separator: ", "))")
            }
            return json(sources)
        }
        if let enc = shape("encoder.0.0.weight"), enc.count == 3 {
            let channels = enc[0], audioChannels = enc[1], kernel = enc[2]
            let depth = count { "encoder.\($0).0.weight" }
            let rewrite = t["encoder.0.2.weight"] != nil
            let glu = rewrite ? (shape("encoder.0.2.weight")?.first == 2 * channels) : true
            let outer = "decoder.\(depth - 1)"
            let context = rewrite ? (shape("\(outer).0.weight")?.last ?? 3) : 3
            let last = shape("\(outer).\(rewrite ? 2 : 0).weight") ?? []
            guard last.count == 3 else { throw CheckpointError("\(path): the state has no decoder layer \(outer) (a demucs v2 state?)") }
            var growth = 2.0
            if depth > 1, let next = shape("encoder.1.0.weight")?.first { growth = Double(next) / Double(channels) }
            let lstmLayers = count { "lstm.lstm.weight_ih_l\($0)" }
            return ("demucs.model.Demucs", object([
                ("sources", try sourcesJSON(outputs: last[1], audioChannels: audioChannels)),
                ("audio_channels", "\(audioChannels)"), ("channels", "\(channels)"), ("depth", "\(depth)"),
                ("rewrite", rewrite ? "true" : "false"), ("glu", glu ? "true" : "false"),
                ("kernel_size", "\(kernel)"), ("growth", "\(growth)"), ("lstm_layers", "\(lstmLayers)"),
                ("context", "\(context)"),
            ]))
        }
        if let enc = shape("encoder.conv1d_U.weight"), enc.count == 3 {
            let n = enc[0], audioChannels = enc[1], l = enc[2]
            let block = "separator.network.2.0.0.net"
            guard let b = shape("separator.network.1.weight")?.first, let h = shape("\(block).0.weight")?.first,
                  let p = shape("\(block).3.net.0.weight")?.last, let masks = shape("separator.network.3.weight")?.first,
                  n > 0, masks % n == 0 else {
                throw CheckpointError("\(path): a Conv-TasNet state without its separator (separator.network.1 / .2.0.0 / .3)")
            }
            let repeats = count { "separator.network.2.\($0).0.net.0.weight" }
            let blocks = count { "separator.network.2.0.\($0).net.0.weight" }
            let causal = t["\(block).3.net.4.weight"] != nil
            let norm = t["\(block).2.gamma"] != nil ? "gLN" : "id"
            return ("demucs.tasnet.ConvTasNet", object([
                ("sources", try sourcesJSON(outputs: masks / n * audioChannels, audioChannels: audioChannels)),
                ("N", "\(n)"), ("L", "\(l)"), ("B", "\(b)"), ("H", "\(h)"), ("P", "\(p)"), ("X", "\(blocks)"),
                ("R", "\(repeats)"), ("audio_channels", "\(audioChannels)"), ("norm_type", json("\(norm)")),
                ("causal", causal ? "true" : "false"),
            ]))
        }
        throw CheckpointError("\(path) is a bare state dict, but not of a model this engine knows: demucs v2's Demucs (encoder.0.0.weight) or ConvTasNet (encoder.conv1d_U.weight). demucs >= 3 checkpoints carry klass / kwargs / state")
    }

    // MARK: - save_model packages

    static func convertPackaged(_ package: PickleValue, klass: String, path: String) throws -> LegacyCheckpoint.Converted {
        guard let state = package["state"], let kwargs = package["kwargs"], case .dict = kwargs else {
            throw CheckpointError("\(path): a demucs v2 model package needs 'state' and a 'kwargs' dict")
        }
        if let args = package["args"]?.items, !args.isEmpty {
            throw CheckpointError("\(path): positional constructor arguments are not supported (v2 models are built from keyword arguments)")
        }
        let kwargsJSON = try PythonJSON.encode(kwargs, path: "kwargs")
        guard case .dict(let dict) = state else {
            throw CheckpointError("\(path): 'state' is a \(state.kindName), not a dict")
        }
        if case .bytes(let bytes)? = state["compressed"] {
            // v2's get_quantizer: DiffQuantizer(min_size=q_min_size, group_size=8) when
            // training_args.diffq, UniformQuantizer(bits=qat, min_size=q_min_size) when .qat.
            let args = package["training_args"]
            let minSize = args?["q_min_size"].flatMap(number) ?? 1
            let quantizer: StateValue
            if let diffq = args?["diffq"], LegacyCheckpoint.truthy(diffq) {
                quantizer = quantizerMeta(kind: "DiffQuantizer", kwargs: [("min_size", .double(minSize)), ("group_size", .int(8))])
            } else if let qat = args?["qat"], LegacyCheckpoint.truthy(qat), let bits = number(qat) {
                quantizer = quantizerMeta(kind: "UniformQuantizer", kwargs: [("bits", .double(bits)), ("min_size", .double(minSize))])
            } else {
                throw CheckpointError("\(path): the state is quantised, but training_args names neither diffq nor qat, so its quantizer is unknown")
            }
            return try convertQuantized(bytes, klass: klass, kwargsJSON: kwargsJSON, quantizer: quantizer, path: path)
        }
        let tensors = try LegacyCheckpoint.plainTensors(dict, path: path)
        return try plain(tensors, klass: klass, kwargsJSON: kwargsJSON, path: path)
    }

    /// A plain state, checked against the architecture `klass` / `kwargsJSON` describe.
    static func plain(_ tensors: [String: RawTensor], klass: String, kwargsJSON: String,
                      path: String) throws -> LegacyCheckpoint.Converted {
        let layout = try LegacyCheckpoint.engineCall(path) {
            try ParameterLayout.parameters(klass: klass, kwargsJSON: kwargsJSON, source: path)
        }
        try LegacyCheckpoint.check(tensors, against: layout, path: path)
        return LegacyCheckpoint.Converted(metadata: ["klass": klass, "args": "[]", "kwargs": kwargsJSON], tensors: tensors, quantized: false)
    }

    // MARK: - Quantised states

    /// Inflates `{"compressed": ...}`, restores the weights with the quantizer v2 would have built
    /// (`quantizer`: diffq's `meta` layout; the state's own `packed` / `torch_pack` flags are kept)
    /// and returns them as float32 tensors.
    static func convertQuantized(_ compressed: Data, klass: String, kwargsJSON: String, quantizer: StateValue,
                                 path: String) throws -> LegacyCheckpoint.Converted {
        let inner = try TorchZip.load(data: try Zlib.decompress(compressed, description: "\(path): the compressed state"),
                                      description: "\(path): the compressed state")
        guard case .dict(let pairs) = try LegacyCheckpoint.toState(inner, depth: 0) else {
            throw CheckpointError("\(path): the compressed state is not a dict")
        }
        var meta = quantizer
        if case .dict(var m) = meta, let own = StateValue.dict(pairs)["meta"] {
            for flag in ["packed", "torch_pack"] { if let v = own[flag] { m.append((.string(flag), v)) } }
            meta = .dict(m)
        }
        let state = StateValue.dict(pairs.filter { if case .string("meta") = $0.key { return false }; return true } + [(.string("meta"), meta)])
        let tensors = try LegacyCheckpoint.engineCall(path) { () -> [String: Tensor] in
            let layout = try ParameterLayout.parameters(klass: klass, kwargsJSON: kwargsJSON, source: path)
            return try DiffQ.dequantize(state: state, parameters: layout, source: path)
        }
        var raw: [String: RawTensor] = [:]
        for (name, t) in tensors {
            raw[name] = RawTensor(dtype: .f32, shape: t.shape, data: t.data.withUnsafeBufferPointer { Data(buffer: $0) })
        }
        return LegacyCheckpoint.Converted(metadata: ["klass": klass, "args": "[]", "kwargs": kwargsJSON], tensors: raw, quantized: true)
    }

    static func quantizerMeta(kind: String, kwargs: [(String, StateValue)]) -> StateValue {
        let module = kind == "DiffQuantizer" ? "diffq.diffq" : "diffq.uniform"
        return .dict([
            (.string("init_kwargs"), .dict(kwargs.map { (.string($0.0), $0.1) })),
            (.string("klass"), .classRef(module: module, name: kind)),
        ])
    }

    // MARK: - Small helpers

    static func number(_ v: PickleValue) -> Double? {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    static func json(_ s: String) -> String { PythonJSON.string(s) }
    static func json(_ list: [String]) -> String { "[" + list.map(PythonJSON.string).joined(separator: ", ") + "]" }
    static func object(_ pairs: [(String, String)]) -> String {
        "{" + pairs.map { "\(PythonJSON.string($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
    }
}
