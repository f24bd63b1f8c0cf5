import DemucsEngine
import Foundation

/// Converts demucs's legacy `.th` checkpoints into the demucs >= 4.1 hub layout the engine reads.
///
/// A demucs `.th` is what `demucs.states.serialize_model` gives to `torch.save`:
///
///     {"klass": <model class>, "args": (...), "kwargs": {...}, "state": state,
///      "training_args": {...}, "metrics": ...}
///
/// where `state` is the state dict (tensors, float16 when `half=True`) or, for a model trained
/// with a quantizer (`mdx_q`, `mdx_extra_q`), diffq's packed quantised state marked with
/// `__quantized`. The conversion is the one demucs's `tools/export_hf.py` does: a plain state
/// becomes one tensor per state-dict entry with its own dtype (float16 stays float16, so the
/// values are exact); a quantised state is flattened into tensors plus the `structure` metadata
/// (`_flatten_state`), which the engine dequantises at load. `klass` (dotted name), `args` and
/// `kwargs` (JSON, fractions as `{"_type": "fraction", ...}`) go into the metadata, byte for
/// byte as `export_hf.py` writes them. `training_args` and `metrics` are not kept.
///
/// The pickle is read by `PickleReader`, which never runs code; see `TorchZip` for the checks
/// on the archive.
public enum LegacyCheckpoint {
    /// The model classes a checkpoint may name.
    public static let modelClasses: Set<String> = ["demucs.htdemucs.HTDemucs", "demucs.hdemucs.HDemucs", "demucs.demucs.Demucs",
                                                   "demucs.model.Demucs", "demucs.tasnet.ConvTasNet"]

    /// A checkpoint converted to the hub layout, not yet written.
    public struct Converted {
        /// `klass`, `args`, `kwargs` and, for a quantised model, `structure`.
        public var metadata: [String: String]
        /// The tensors by safetensors name.
        public var tensors: [String: RawTensor]
        /// Whether the state was diffq-quantised.
        public var quantized: Bool
    }

    /// The signature of a checkpoint file as demucs's `LocalRepo` derives it: the file name
    /// without `.th`, up to the last `-` when there is one (`<sig>-<sha256 prefix>.th`, whose
    /// checksum is then verified).
    public static func signature(ofFile path: String) throws -> String {
        let name = (path as NSString).lastPathComponent
        var stem = name
        if stem.hasSuffix(".th") { stem.removeLast(3) }
        var signature = stem
        if let dash = stem.lastIndex(of: "-") {
            signature = String(stem[..<dash])
            let checksum = String(stem[stem.index(after: dash)...]).lowercased()
            if !checksum.isEmpty, checksum.allSatisfy(\.isHexDigit) {
                let actual = try FileSHA256.hex(ofFile: path)
                guard actual.hasPrefix(checksum) else {
                    throw CheckpointError("\(path): the checksum in its name (\(checksum)) does not match its content (sha256 \(actual.prefix(checksum.count))...); the file is damaged or renamed")
                }
            }
        }
        guard isSafeName(signature) else {
            throw CheckpointError("\(path): the model signature '\(signature)' taken from the file name cannot be used as a file name (use letters, digits, '.', '_', '-')")
        }
        return signature
    }

    static func isSafeName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first != "." else { return false }
        return s.unicodeScalars.allSatisfy {
            switch $0 {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
            default: return false
            }
        }
    }

    /// Reads and converts the checkpoint at `path`, checking its tensors against the
    /// architecture its class and arguments describe.
    public static func convert(path: String) throws -> Converted {
        let package = try TorchZip.load(path: path)
        guard case .dict(let top) = package else {
            throw CheckpointError("\(path) is not a demucs checkpoint: it holds a \(package.kindName), not a dict with klass / args / kwargs / state")
        }
        // demucs 2.0.3: pretrained files are bare state dicts; its save_model names v2 classes.
        if package["klass"] == nil, package["state"] == nil {
            return try V2Checkpoint.convertBare(top, path: path, signature: try signature(ofFile: path))
        }
        if case .global(let module, let name)? = package["klass"], V2Checkpoint.classes.contains("\(module).\(name)") {
            return try V2Checkpoint.convertPackaged(package, klass: "\(module).\(name)", path: path)
        }
        for key in ["klass", "args", "kwargs", "state"] where package[key] == nil {
            throw CheckpointError("\(path) is not a demucs model checkpoint: it has no '\(key)' entry (a training checkpoint or a bare state dict?)")
        }
        guard case .global(let module, let name) = package["klass"]!, modelClasses.contains("\(module).\(name)") else {
            throw CheckpointError("\(path): 'klass' is a \(package["klass"]!.kindName), not one of the demucs model classes (\(modelClasses.sorted().joined(separator: ", ")))")
        }
        let klass = "\(module).\(name)"
        guard let args = package["args"]!.items else {
            throw CheckpointError("\(path): 'args' is a \(package["args"]!.kindName), not a list")
        }
        guard case .dict = package["kwargs"]! else {
            throw CheckpointError("\(path): 'kwargs' is a \(package["kwargs"]!.kindName), not a dict")
        }
        var metadata = [
            "klass": klass,
            "args": try PythonJSON.encode(.list(PickleList(args)), path: "args"),
            "kwargs": try PythonJSON.encode(package["kwargs"]!, path: "kwargs"),
        ]
        guard case .dict(let state) = package["state"]! else {
            throw CheckpointError("\(path): 'state' is a \(package["state"]!.kindName), not a dict")
        }
        let layout = try engineCall(path) {
            try ParameterLayout.parameters(klass: klass, kwargsJSON: metadata["kwargs"]!, source: path)
        }

        if package["state"]!["__quantized"].map(truthy) == true {
            var tensors: [String: RawTensor] = [:]
            let structure = try flatten(package["state"]!, path: "state", tensors: &tensors, depth: 0)
            metadata["structure"] = structure
            // Check it now: restoring needs the architecture's parameter order and sizes.
            let stateValue = try toState(package["state"]!, depth: 0)
            _ = try engineCall(path) { try DiffQ.dequantize(state: stateValue, parameters: layout, source: path) }
            return Converted(metadata: metadata, tensors: tensors, quantized: true)
        }

        let tensors = try plainTensors(state, path: path)
        try check(tensors, against: layout, path: path)
        return Converted(metadata: metadata, tensors: tensors, quantized: false)
    }

    /// The tensors of a plain state dict, which must all be float tensors under string names.
    static func plainTensors(_ state: PickleDict, path: String) throws -> [String: RawTensor] {
        var tensors: [String: RawTensor] = [:]
        for (key, value) in state.pairs {
            guard case .string(let k) = key else {
                throw CheckpointError("\(path): the state has a key that is a \(key.kindName), not a tensor name")
            }
            guard case .tensor(let t) = value else {
                throw CheckpointError("\(path): state entry \(k) is a \(value.kindName), not a tensor")
            }
            guard t.dtype.isFloatingPoint else {
                throw CheckpointError("\(path): state entry \(k) is a \(t.dtype.rawValue) tensor; a demucs model state holds floats")
            }
            tensors[k] = t
        }
        return tensors
    }

    /// The same names and shapes as the architecture, so that a mismatch is reported at import.
    static func check(_ tensors: [String: RawTensor], against layout: [ParameterLayout.Parameter], path: String) throws {
        for p in layout {
            guard let t = tensors[p.name] else {
                throw CheckpointError("\(path): the state has no tensor \(p.name) (shape \(p.shape)), which the architecture in its klass / kwargs needs")
            }
            guard t.shape == p.shape else {
                throw CheckpointError("\(path): tensor \(p.name) has shape \(t.shape), the architecture in its klass / kwargs needs \(p.shape)")
            }
        }
        let expected = Set(layout.map(\.name))
        if let extra = tensors.keys.sorted().first(where: { !expected.contains($0) }) {
            throw CheckpointError("\(path): the state has tensor \(extra), which the architecture in its klass / kwargs does not have")
        }
    }

    /// Converts the checkpoint at `path` into `folder/<signature>.safetensors` (written
    /// atomically, replacing a file of that name) and returns the signature and the file's path.
    @discardableResult
    public static func importFile(path: String, into folder: String) throws -> (signature: String, file: String) {
        let signature = try signature(ofFile: path)
        let converted = try convert(path: path)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError("\(folder) does not exist or is not a folder")
        }
        let file = (folder as NSString).appendingPathComponent(signature + ".safetensors")
        try SafeTensorsWriter.write(tensors: converted.tensors, metadata: converted.metadata, to: file)
        return (signature, file)
    }

    // MARK: - Helpers

    static func engineCall<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as EngineError {
            throw CheckpointError(error.message.replacingOccurrences(of: "model file \(path)", with: path))
        }
    }

    static func truthy(_ v: PickleValue) -> Bool {
        switch v {
        case .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        default: return true
        }
    }

    /// `export_hf._flatten_state`: tensors under their dotted path, and the JSON nesting.
    static func flatten(_ value: PickleValue, path: String, tensors: inout [String: RawTensor], depth: Int) throws -> String {
        guard depth < 64 else { throw CheckpointError("the quantised state is nested too deeply") }
        switch value {
        case .tensor(let t):
            tensors[path] = t
            return "{\"_tensor\": \(PythonJSON.string(path))}"
        case .dict(let d):
            let items = try d.pairs.map { pair -> String in
                let keyText: String
                switch pair.key {
                case .string(let s): keyText = s
                case .int(let i): keyText = String(i)
                default: throw CheckpointError("the quantised state has a dict key that is a \(pair.key.kindName)")
                }
                let keyJSON = try PythonJSON.encode(pair.key, path: path)
                return "[\(keyJSON), \(try flatten(pair.value, path: "\(path).\(keyText)", tensors: &tensors, depth: depth + 1))]"
            }
            return "{\"_dict\": [" + items.joined(separator: ", ") + "]}"
        case .list(let l):
            let items = try l.items.enumerated().map { try flatten($1, path: "\(path).\($0)", tensors: &tensors, depth: depth + 1) }
            return "{\"_list\": [" + items.joined(separator: ", ") + "]}"
        case .tuple(let items):
            let parts = try items.enumerated().map { try flatten($1, path: "\(path).\($0)", tensors: &tensors, depth: depth + 1) }
            return "{\"_tuple\": [" + parts.joined(separator: ", ") + "]}"
        case .global(let module, let name):
            return "{\"_class\": \(PythonJSON.string("\(module).\(name)"))}"
        case .none, .bool, .int, .double, .string:
            return try PythonJSON.encode(value, path: path)
        case .fraction, .bytes, .set, .storage:
            throw CheckpointError("the quantised state holds a \(value.kindName) at \(path), which the hub layout cannot store")
        }
    }

    /// The engine's view of a nested state.
    static func toState(_ value: PickleValue, depth: Int) throws -> StateValue {
        guard depth < 64 else { throw CheckpointError("the quantised state is nested too deeply") }
        switch value {
        case .none: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .tensor(let t): return .tensor(t)
        case .tuple(let items): return .tuple(try items.map { try toState($0, depth: depth + 1) })
        case .list(let l): return .list(try l.items.map { try toState($0, depth: depth + 1) })
        case .dict(let d):
            return .dict(try d.pairs.map { (try toState($0.key, depth: depth + 1), try toState($0.value, depth: depth + 1)) })
        case .global(let m, let n): return .classRef(module: m, name: n)
        case .fraction, .bytes, .set, .storage:
            throw CheckpointError("the quantised state holds a \(value.kindName)")
        }
    }
}
