import Foundation

/// Restores the float weights of a diffq-quantised demucs state (`mdx_q`, `mdx_extra_q`), giving
/// exactly the float32 values `diffq.restore_quantized_state` (diffq 0.2.4) puts in the model.
///
/// The state, as `BaseQuantizer.get_quantized_state` returns it (plus `__quantized: True`):
///
///     {"quantized": [one entry per quantised parameter],
///      "float16":   [float16 copies of the small parameters, when float16=True],
///      "others":    [float32 copies of the small parameters],
///      "meta": {"init_kwargs": {...}, "klass": DiffQuantizer | UniformQuantizer,
///               "packed": bool, "torch_pack": bool}}
///
/// The lists hold no names: their order is the order in which the quantizer walks
/// `model.named_modules()` and each module's own parameters, a parameter being "small" when it
/// has at most `min_size * 2**20 // 4` elements (or matches an `exclude` pattern). So the
/// parameters of the architecture come from `ParameterLayout`.
///
/// A quantised entry is, for `DiffQuantizer` (bit-packed): `(packed levels per bit width 1..14
/// (None when unused), (min, max), packed bits per group)`, and for `UniformQuantizer`:
/// `(packed levels, (min, max))`. The float value of level `l` on `b` bits is
/// `l * (1 / (2^b - 1)) * (max - min) + min`, computed in float32 step by step as PyTorch does.
public enum DiffQ {
    /// Whether `state` is a quantised state (`state["__quantized"]` is true).
    public static func isQuantized(_ state: StateValue) -> Bool {
        state["__quantized"]?.truthy ?? false
    }

    /// The weights of a hub safetensors file whose metadata has `structure`.
    static func weights(file: SafeTensorsFile, structure: String, klass: String, kwargsJSON: String) throws -> Weights {
        let raw = try file.rawTensors()
        let state = try StateStructure.unflatten(json: structure, source: file.path) { raw[$0] }
        guard isQuantized(state) else {
            throw EngineError(.invalidModelFile, "model file \(file.path) has a 'structure' metadata entry but its state is not marked as quantised (__quantized); this engine only reads diffq-quantised nested states")
        }
        let layout = try ParameterLayout.parameters(klass: klass, kwargsJSON: kwargsJSON, source: file.path)
        let tensors = try dequantize(state: state, parameters: layout, source: file.path)
        return Weights(tensors: tensors, source: file.path)
    }

    /// The float tensors of the quantised `state` for a model whose parameters are `parameters`
    /// (in PyTorch order), by name.
    public static func dequantize(state: StateValue, parameters: [ParameterLayout.Parameter], source: String) throws -> [String: Tensor] {
        func bad(_ what: String) -> EngineError {
            EngineError(.invalidModelFile, "model file \(source): quantised state: \(what)")
        }
        guard let meta = state["meta"] else { throw bad("no 'meta' entry (it says which quantizer made it)") }
        let config = try Config(meta: meta, source: source)
        guard let quantized = state["quantized"]?.items else { throw bad("no 'quantized' list") }
        let float16 = state["float16"]?.items ?? []
        let others = state["others"]?.items ?? []

        // Which list each parameter's value is in, as BaseQuantizer._find_params decides.
        var qparams: [ParameterLayout.Parameter] = [], f16params: [ParameterLayout.Parameter] = [], otherParams: [ParameterLayout.Parameter] = []
        for p in parameters {
            if Double(p.count) <= config.minParams || config.excluded(p.name) {
                if config.float16 { f16params.append(p) } else { otherParams.append(p) }
            } else {
                qparams.append(p)
            }
        }
        guard quantized.count == qparams.count, float16.count == f16params.count, others.count == otherParams.count else {
            throw bad("it holds \(quantized.count) quantised, \(float16.count) float16 and \(others.count) other tensors, but the architecture in the metadata has \(qparams.count), \(f16params.count) and \(otherParams.count) (min_size \(config.minSize)); the file does not belong to this architecture")
        }

        var out: [String: Tensor] = [:]
        for (list, params, kind) in [(float16, f16params, "float16"), (others, otherParams, "others")] {
            for (value, p) in zip(list, params) {
                guard case .tensor(let t) = value, t.dtype.isFloatingPoint else {
                    throw bad("entry for \(p.name) in '\(kind)' is a \(value.kindName), not a float tensor")
                }
                guard t.count == p.count else {
                    throw bad("entry for \(p.name) in '\(kind)' has shape \(t.shape), the parameter has shape \(p.shape)")
                }
                out[p.name] = Tensor(shape: p.shape, data: t.floats())
            }
        }
        for (value, p) in zip(quantized, qparams) {
            do {
                out[p.name] = Tensor(shape: p.shape, data: try config.unquantize(value, count: p.count))
            } catch let error as EngineError {
                throw bad("parameter \(p.name) \(p.shape): \(error.message)")
            }
        }
        return out
    }

    // MARK: - Quantizer settings

    struct Config {
        enum Kind { case diffq, uniform }
        var kind: Kind
        var minSize = 0.01
        var float16 = false
        var exclude: [String] = []
        var groupSize = 1
        var minBits = 2.0
        var bits = 8.0
        var packed = false
        var torchPack = false

        /// `min_size * 2**20 // 4`, the largest element count kept unquantised.
        var minParams: Double { (minSize * 1_048_576 / 4).rounded(.down) }

        init(meta: StateValue, source: String) throws {
            func bad(_ what: String) -> EngineError {
                EngineError(.invalidModelFile, "model file \(source): quantised state: \(what)")
            }
            guard case .classRef(let module, let name)? = meta["klass"] else {
                throw bad("'meta' does not name the quantizer class")
            }
            switch "\(module).\(name)" {
            case "diffq.diffq.DiffQuantizer": kind = .diffq
            case "diffq.uniform.UniformQuantizer": kind = .uniform
            default:
                throw EngineError(.unsupportedModel, "model file \(source): quantised with \(module).\(name), which this engine cannot restore (supported: diffq.diffq.DiffQuantizer, diffq.uniform.UniformQuantizer)")
            }
            packed = meta["packed"]?.truthy ?? false
            torchPack = meta["torch_pack"]?.truthy ?? false
            let kwargs = meta["init_kwargs"] ?? .dict([])
            guard case .dict(let pairs) = kwargs else { throw bad("'init_kwargs' is not a dict") }
            let known: Set<String> = kind == .diffq
                ? ["min_size", "float16", "group_size", "min_bits", "max_bits", "param", "noise", "init_bits",
                   "extra_bits", "suffix", "exclude", "detect_bound"]
                : ["bits", "min_size", "float16", "qat", "exclude", "detect_bound"]
            for (key, value) in pairs {
                guard case .string(let k) = key, known.contains(k) else {
                    throw EngineError(.unsupportedModel, "model file \(source): quantizer option \(key) is not known to this engine")
                }
                func number() throws -> Double {
                    guard let n = value.number else { throw bad("quantizer option \(k) is a \(value.kindName), not a number") }
                    return n
                }
                switch k {
                case "min_size": minSize = try number()
                case "float16": float16 = value.truthy
                case "group_size": groupSize = Int(try number())
                case "min_bits": minBits = try number()
                case "bits": bits = try number()
                case "exclude":
                    guard let items = value.items else { throw bad("quantizer option exclude is not a list") }
                    exclude = try items.map {
                        guard case .string(let s) = $0 else { throw bad("quantizer option exclude holds a \($0.kindName)") }
                        return s
                    }
                default: break  // training-only settings (noise, init bits, ...) and detect_bound
                }
            }
            if kind == .uniform {
                guard bits == bits.rounded(), bits >= 1, bits <= 15 else { throw bad("UniformQuantizer bits \(bits) is not a whole number in 1...15") }
            }
            if kind == .diffq && groupSize <= 0 {
                throw EngineError(.unsupportedModel, "model file \(source): DiffQuantizer with group_size \(groupSize) cannot be restored (diffq itself cannot unpack it)")
            }
        }

        /// Whether an `exclude` pattern matches `name` (the full dotted name or its last part).
        func excluded(_ name: String) -> Bool {
            guard !exclude.isEmpty else { return false }
            let short = name.split(separator: ".").last.map(String.init) ?? name
            let full = name.contains(".") ? name : "." + name
            return exclude.contains { FNMatch.matches(full, $0) || FNMatch.matches(short, $0) }
        }

        func unpack(_ value: StateValue, count: Int) throws -> [Int32] {
            guard case .tensor(let t) = value else {
                throw EngineError(.invalidModelFile, "packed levels are a \(value.kindName), not a tensor")
            }
            return torchPack ? try BitPack.torchUnpack(t, count: count) : try BitPack.unpack(t, count: count)
        }

        /// The float values of one parameter's quantised entry.
        func unquantize(_ entry: StateValue, count: Int) throws -> [Float] {
            guard let parts = entry.items else {
                throw EngineError(.invalidModelFile, "the entry is a \(entry.kindName), not a tuple")
            }
            switch kind {
            case .uniform:
                guard parts.count == 2 else { throw EngineError(.invalidModelFile, "a UniformQuantizer entry has 2 parts, found \(parts.count)") }
                let (mn, mx) = try scales(parts[1])
                let levels: [Int32]
                if packed {
                    levels = try unpack(parts[0], count: count)
                } else {
                    levels = try plainLevels(parts[0], count: count)
                }
                return Self.dequantize(levels: levels, bits: [bits], groupSize: count, min: mn, max: mx)
            case .diffq:
                guard parts.count == 3 else { throw EngineError(.invalidModelFile, "a DiffQuantizer entry has 3 parts, found \(parts.count)") }
                guard count % groupSize == 0 else {
                    throw EngineError(.invalidModelFile, "\(count) elements are not a multiple of group_size \(groupSize)")
                }
                let groups = count / groupSize
                let (mn, mx) = try scales(parts[1])
                var bitsPerGroup: [Double]
                var levels: [Int32]
                if packed {
                    bitsPerGroup = try unpack(parts[2], count: groups).map { Double($0) + minBits }
                    guard let perWidth = parts[0].items else {
                        throw EngineError(.invalidModelFile, "the packed levels are a \(parts[0].kindName), not a list")
                    }
                    levels = [Int32](repeating: 0, count: count)
                    var filled = [Bool](repeating: false, count: groups)
                    for (index, packedLevels) in perWidth.enumerated() {
                        let bit = Double(index + 1)
                        let rows = (0..<groups).filter { bitsPerGroup[$0] == bit }
                        if case .none = packedLevels {
                            continue
                        }
                        let values = try unpack(packedLevels, count: rows.count * groupSize)
                        for (k, row) in rows.enumerated() {
                            for j in 0..<groupSize { levels[row * groupSize + j] = values[k * groupSize + j] }
                            filled[row] = true
                        }
                    }
                    if let row = filled.firstIndex(of: false) {
                        throw EngineError(.invalidModelFile, "group \(row) uses \(bitsPerGroup[row]) bits but no levels are stored for that width (diffq would leave it uninitialised)")
                    }
                } else {
                    levels = try plainLevels(parts[0], count: count)
                    guard case .tensor(let b) = parts[2], b.count == groups else {
                        throw EngineError(.invalidModelFile, "the bits are not a tensor of \(groups) groups")
                    }
                    bitsPerGroup = b.integers().map(Double.init)
                }
                if let b = bitsPerGroup.first(where: { $0 < 1 || $0 > 15 || $0 != $0.rounded() }) {
                    throw EngineError(.invalidModelFile, "a group is quantised on \(b) bits (expected 1 to 15)")
                }
                return Self.dequantize(levels: levels, bits: bitsPerGroup, groupSize: groupSize, min: mn, max: mx)
            }
        }

        func plainLevels(_ value: StateValue, count: Int) throws -> [Int32] {
            guard case .tensor(let t) = value, !t.dtype.isFloatingPoint, t.count == count else {
                throw EngineError(.invalidModelFile, "the levels are not an integer tensor of \(count) elements")
            }
            return t.integers().map { Int32(truncatingIfNeeded: $0) }
        }

        func scales(_ value: StateValue) throws -> (Double, Double) {
            guard let pair = value.items, pair.count == 2, let mn = pair[0].number, let mx = pair[1].number else {
                throw EngineError(.invalidModelFile, "the scales are a \(value.kindName), not a (min, max) pair of numbers")
            }
            return (mn, mx)
        }

        /// `uniform_unquantize`: per group of `groupSize` levels with `bits[g]` bits (one entry
        /// covers all groups when `bits.count == 1`), in float32 with PyTorch's rounding steps.
        static func dequantize(levels: [Int32], bits: [Double], groupSize: Int, min mn: Double, max mx: Double) -> [Float] {
            let scale = Float(mx - mn)
            let offset = Float(mn)
            var out = LargeBuffer.zeros(levels.count)
            let groups = bits.count == 1 ? 1 : bits.count
            let size = bits.count == 1 ? levels.count : groupSize
            levels.withUnsafeBufferPointer { lv in
                out.withUnsafeMutableBufferPointer { o in
                    for g in 0..<groups {
                        let numLevels = Float(pow(2.0, bits[g]))
                        let unit: Float = 1 / (numLevels - 1)
                        for i in (g * size)..<((g + 1) * size) {
                            let p = Float(lv[i]) * unit
                            let scaled = p * scale
                            o[i] = scaled + offset
                        }
                    }
                }
            }
            return out
        }
    }
}

/// diffq's bit packing.
enum BitPack {
    /// `diffq.bitpack.unpack`: `packed` is int64 `[lines, nbits, block]`; element
    /// `line * block * 64 + bitIn * block + index` has bit `bitOut` equal to bit `bitIn` of
    /// `packed[line, bitOut, index]`. Returns the first `count` values.
    static func unpack(_ packed: RawTensor, count: Int) throws -> [Int32] {
        guard packed.dtype == .i64, packed.shape.count == 3 else {
            throw EngineError(.invalidModelFile, "bit-packed levels should be an int64 tensor [lines, bits, block], found \(packed.dtype.rawValue)\(packed.shape)")
        }
        let (lines, nbits, block) = (packed.shape[0], packed.shape[1], packed.shape[2])
        guard nbits <= 16 else { throw EngineError(.invalidModelFile, "bit-packed levels use \(nbits) bits") }
        let total = lines * block * 64
        guard count <= total else {
            throw EngineError(.invalidModelFile, "bit-packed levels hold \(total) values, \(count) are needed")
        }
        var out = [UInt16](repeating: 0, count: total)
        let words = packed.integers()
        words.withUnsafeBufferPointer { w in
            out.withUnsafeMutableBufferPointer { o in
                for line in 0..<lines {
                    for bitOut in 0..<nbits {
                        let row = (line * nbits + bitOut) * block
                        for index in 0..<block {
                            let word = UInt64(bitPattern: w[row + index])
                            if word == 0 { continue }
                            let base = line * block * 64 + index
                            for bitIn in 0..<64 where (word >> UInt64(bitIn)) & 1 != 0 {
                                o[base + bitIn * block] |= UInt16(1) << UInt16(bitOut)
                            }
                        }
                    }
                }
            }
        }
        return out[0..<count].map { Int32(Int16(bitPattern: $0)) }
    }

    /// `diffq.torch_pack.unpack`: `packed` is `[nbits, groups]` of a storage integer type with
    /// `S` bits; element `bitIn * groups + g` has bit `bitOut` equal to bit `bitIn` of
    /// `packed[bitOut, g]`.
    static func torchUnpack(_ packed: RawTensor, count: Int) throws -> [Int32] {
        let storage: Int
        switch packed.dtype {
        case .i64: storage = 64
        case .i32: storage = 32
        case .i16: storage = 16
        case .u8: storage = 8
        default: throw EngineError(.invalidModelFile, "torch-packed levels have the invalid storage type \(packed.dtype.rawValue)")
        }
        guard packed.shape.count == 2 else {
            throw EngineError(.invalidModelFile, "torch-packed levels should be [bits, groups], found \(packed.shape)")
        }
        let (nbits, groups) = (packed.shape[0], packed.shape[1])
        let total = storage * groups
        guard count <= total else {
            throw EngineError(.invalidModelFile, "torch-packed levels hold \(total) values, \(count) are needed")
        }
        let words = packed.integers()
        var out = [UInt16](repeating: 0, count: total)
        for bitIn in 0..<storage {
            for bitOut in 0..<min(nbits, 16) {
                for g in 0..<groups where (UInt64(bitPattern: words[bitOut * groups + g]) >> UInt64(bitIn)) & 1 != 0 {
                    out[bitIn * groups + g] |= UInt16(1) << UInt16(bitOut)
                }
            }
        }
        return out[0..<count].map { Int32(Int16(bitPattern: $0)) }
    }
}

/// Python's `fnmatch.fnmatchcase` (diffq's `exclude` patterns): `*`, `?`, `[seq]`, `[!seq]`.
enum FNMatch {
    static func matches(_ name: String, _ pattern: String) -> Bool {
        match(Array(name.unicodeScalars), 0, Array(pattern.unicodeScalars), 0)
    }

    private static func match(_ s: [Unicode.Scalar], _ si: Int, _ p: [Unicode.Scalar], _ pi: Int) -> Bool {
        var si = si, pi = pi
        while pi < p.count {
            switch p[pi] {
            case "*":
                let rest = pi + 1
                if rest == p.count { return true }
                for k in si...s.count where match(s, k, p, rest) { return true }
                return false
            case "?":
                guard si < s.count else { return false }
                si += 1; pi += 1
            case "[":
                guard let (matched, next) = set(p, pi, si < s.count ? s[si] : nil) else {
                    // No closing bracket: a literal '['.
                    guard si < s.count, s[si] == "[" else { return false }
                    si += 1; pi += 1
                    continue
                }
                guard si < s.count, matched else { return false }
                si += 1; pi = next
            default:
                guard si < s.count, s[si] == p[pi] else { return false }
                si += 1; pi += 1
            }
        }
        return si == s.count
    }

    /// Parses the set starting at `p[start] == "["`; returns whether `c` is in it and the index
    /// after the closing bracket, or nil when the bracket is not closed.
    private static func set(_ p: [Unicode.Scalar], _ start: Int, _ c: Unicode.Scalar?) -> (Bool, Int)? {
        var i = start + 1
        var negate = false
        if i < p.count, p[i] == "!" { negate = true; i += 1 }
        var members: [(Unicode.Scalar, Unicode.Scalar)] = []
        var first = true
        while i < p.count, p[i] != "]" || first {
            first = false
            if i + 2 < p.count, p[i + 1] == "-", p[i + 2] != "]" {
                members.append((p[i], p[i + 2]))
                i += 3
            } else {
                members.append((p[i], p[i]))
                i += 1
            }
        }
        guard i < p.count else { return nil }
        guard let c else { return (false, i + 1) }
        let inSet = members.contains { $0.0 <= c && c <= $0.1 }
        return (inSet != negate, i + 1)
    }
}
