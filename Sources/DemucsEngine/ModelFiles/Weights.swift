/// The tensors of one model by their PyTorch state-dict names, checked as layers take them.
///
/// Layers ask for tensors by name and expected shape, so that a checkpoint that does not fit the
/// architecture its metadata describes fails at load with the name and both shapes, instead of
/// reading out of bounds later.
public struct Weights: Sendable {
    public private(set) var tensors: [String: Tensor]
    let source: String
    /// Names taken so far, to find tensors that no layer asked for.
    let usage = WeightUsage()
    /// Makes the tensor for a name the file does not have (`init(fabricating:)`).
    let fabricate: (@Sendable (String, [Int]) -> Tensor)?

    public init(tensors: [String: Tensor], source: String) {
        self.tensors = tensors
        self.source = source
        fabricate = nil
    }

    /// Weights that give `make(name, shape)` for every tensor a model asks for, and record the
    /// names and shapes asked for (`taken`): an architecture's parameter layout, or a model of
    /// made-up weights for a benchmark.
    public init(fabricating make: @escaping @Sendable (String, [Int]) -> Tensor, source: String) {
        tensors = [:]
        self.source = source
        fabricate = make
    }

    /// The names and shapes taken so far, in the order they were taken.
    public var taken: [(name: String, shape: [Int])] { usage.taken }

    /// Names of tensors in the file that no layer has taken.
    var unused: [String] { Set(tensors.keys).subtracting(usage.names).sorted() }

    /// Reads every tensor of a safetensors file.
    public init(file: SafeTensorsFile) throws {
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        self.init(tensors: tensors, source: file.path)
    }

    /// The tensor `name`, which must have `shape` (given with the checkpoint's own layout).
    func take(_ name: String, _ shape: [Int]) throws -> Tensor {
        if let fabricate, tensors[name] == nil {
            usage.insert(name, shape)
            return fabricate(name, shape)
        }
        guard let t = tensors[name] else {
            throw EngineError(.invalidModelFile, "model file \(source) is missing tensor \(name) (expected shape \(shape))")
        }
        usage.insert(name, shape)
        guard t.shape == shape else {
            throw EngineError(.invalidModelFile, "model file \(source): tensor \(name) has shape \(t.shape), the architecture needs \(shape)")
        }
        return t
    }

    func has(_ name: String) -> Bool { tensors[name] != nil }

    /// A view of the tensors under `prefix.`.
    func scoped(_ prefix: String) -> ScopedWeights { ScopedWeights(weights: self, prefix: prefix) }
}

/// `Weights` seen from inside one module: names are relative to the module's prefix.
struct ScopedWeights {
    let weights: Weights
    let prefix: String

    func take(_ name: String, _ shape: [Int]) throws -> Tensor {
        try weights.take(prefix.isEmpty ? name : prefix + "." + name, shape)
    }

    func has(_ name: String) -> Bool { weights.has(prefix.isEmpty ? name : prefix + "." + name) }

    func scoped(_ name: String) -> ScopedWeights {
        ScopedWeights(weights: weights, prefix: prefix.isEmpty ? name : prefix + "." + name)
    }
}

/// The set of tensor names taken from a `Weights`, shared by its copies while a model is built.
final class WeightUsage: @unchecked Sendable {
    private(set) var names: Set<String> = []
    private(set) var taken: [(name: String, shape: [Int])] = []
    func insert(_ name: String, _ shape: [Int]) {
        if names.insert(name).inserted { taken.append((name, shape)) }
    }
}
