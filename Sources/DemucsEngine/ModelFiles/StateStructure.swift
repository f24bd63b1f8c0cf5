import Foundation

// A nested model state as demucs keeps it for diffq-quantised models, and the reading of the
// `structure` metadata that the demucs >= 4.1 hub files use to describe it.
//
// `tools/export_hf.py` (demucs 4.1) flattens a nested state into a flat `{key: tensor}` dict for
// safetensors plus a JSON description of the nesting, and `demucs.hf._unflatten_state` rebuilds
// it. The nodes are: `{"_tensor": key}`, `{"_dict": [[key, node], ...]}`, `{"_list": [...]}`,
// `{"_tuple": [...]}`, `{"_class": "module.QualName"}` and plain JSON scalars. Python resolves a
// `_class` node by importing the module; here a class is only a name, and only the diffq
// quantizer classes are accepted (nothing is ever executed or looked up).

/// The element type of a raw tensor, by its safetensors name.
public enum RawDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var byteWidth: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16: return true
        default: return false
        }
    }
}

/// A tensor of any element type: contiguous little-endian bytes and a shape.
public struct RawTensor: Sendable, Equatable {
    public var dtype: RawDType
    public var shape: [Int]
    public var data: Data

    public init(dtype: RawDType, shape: [Int], data: Data) {
        precondition(data.count == shape.reduce(1, *) * dtype.byteWidth, "raw tensor bytes do not match its shape")
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    public var count: Int { shape.reduce(1, *) }

    /// The elements converted to float32 (exactly, for F32 / F16 / BF16).
    public func floats() -> [Float] {
        let n = count
        var out = LargeBuffer.zeros(n)
        data.withUnsafeBytes { raw in
            switch dtype {
            case .f32:
                out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<(n * 4)])) }
            case .f64:
                for i in 0..<n { out[i] = Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
            case .f16:
                for i in 0..<n { out[i] = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
            case .bf16:
                for i in 0..<n { out[i] = Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16) }
            case .i64, .i32, .i16, .i8, .u8, .bool:
                let ints = integers()
                for i in 0..<n { out[i] = Float(ints[i]) }
            }
        }
        return out
    }

    /// The elements as integers (for integer dtypes; floats are truncated).
    public func integers() -> [Int64] {
        let n = count
        var out = [Int64](repeating: 0, count: n)
        data.withUnsafeBytes { raw in
            switch dtype {
            case .i64: for i in 0..<n { out[i] = raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self) }
            case .i32: for i in 0..<n { out[i] = Int64(raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)) }
            case .i16: for i in 0..<n { out[i] = Int64(raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)) }
            case .i8: for i in 0..<n { out[i] = Int64(raw.loadUnaligned(fromByteOffset: i, as: Int8.self)) }
            case .u8, .bool: for i in 0..<n { out[i] = Int64(raw[i]) }
            case .f32, .f64, .f16, .bf16:
                let f = floats()
                for i in 0..<n { out[i] = Int64(f[i]) }
            }
        }
        return out
    }
}

/// One value of a nested state: what `torch.load` or `_unflatten_state` would give in Python,
/// restricted to what model states hold.
public indirect enum StateValue: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case tensor(RawTensor)
    case list([StateValue])
    case tuple([StateValue])
    /// A dict, in insertion order.
    case dict([(key: StateValue, value: StateValue)])
    /// A reference to a class by its module and qualified name (never resolved to code).
    case classRef(module: String, name: String)

    /// The value of `key` in a dict with string keys.
    public subscript(key: String) -> StateValue? {
        guard case .dict(let pairs) = self else { return nil }
        for pair in pairs {
            if case .string(let k) = pair.key, k == key { return pair.value }
        }
        return nil
    }

    /// The items of a list or tuple.
    public var items: [StateValue]? {
        switch self {
        case .list(let v), .tuple(let v): return v
        default: return nil
        }
    }

    /// Python truthiness for the scalar kinds diffq's metadata uses.
    public var truthy: Bool {
        switch self {
        case .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let v), .tuple(let v): return !v.isEmpty
        case .dict(let d): return !d.isEmpty
        case .tensor, .classRef: return true
        }
    }

    /// A number as a double (ints and bools included).
    public var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// A short description of the kind of value, for error messages.
    public var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .tensor(let t): return "tensor \(t.dtype.rawValue)\(t.shape)"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .classRef(let m, let n): return "class \(m).\(n)"
        }
    }
}

/// The `structure` metadata of a quantised hub safetensors file.
public enum StateStructure {
    /// The classes a `_class` node may name: diffq's quantizers, which diffq's
    /// `restore_quantized_state` instantiates. Nothing else is accepted.
    public static let allowedClasses: Set<String> = [
        "diffq.diffq.DiffQuantizer",
        "diffq.uniform.UniformQuantizer",
    ]

    /// Rebuilds the nested state from the structure JSON, taking tensors by key from `tensor`.
    public static func unflatten(json: String, source: String, tensor: (String) throws -> RawTensor?) throws -> StateValue {
        let root: JSONValue
        do {
            root = try JSONValue.parse(json)
        } catch let error as JSONValue.ParseError {
            throw EngineError(.invalidModelFile, "model file \(source): the 'structure' metadata is not valid JSON (\(error.message))")
        }
        return try unflatten(root, source: source, depth: 0, tensor: tensor)
    }

    private static func unflatten(_ node: JSONValue, source: String, depth: Int,
                                  tensor: (String) throws -> RawTensor?) throws -> StateValue {
        guard depth < 64 else {
            throw EngineError(.invalidModelFile, "model file \(source): the 'structure' metadata is nested too deeply")
        }
        switch node {
        case .null: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .array(let items):
            // `_unflatten_state` returns a plain JSON list as it is; only scalars are expected there.
            return .list(try items.map { item in
                if case .object = item {
                    throw EngineError(.invalidModelFile, "model file \(source): the 'structure' metadata has a node inside a plain list")
                }
                return try unflatten(item, source: source, depth: depth + 1, tensor: tensor)
            })
        case .object(let pairs):
            guard pairs.count == 1, let (kind, body) = pairs.first else {
                throw EngineError(.invalidModelFile, "model file \(source): invalid 'structure' node with keys \(pairs.map(\.0))")
            }
            switch kind {
            case "_tensor":
                guard case .string(let key) = body else {
                    throw EngineError(.invalidModelFile, "model file \(source): a '_tensor' node of the 'structure' metadata is not a tensor name")
                }
                guard let t = try tensor(key) else {
                    throw EngineError(.invalidModelFile, "model file \(source): the 'structure' metadata refers to tensor \(key), which the file does not have")
                }
                return .tensor(t)
            case "_dict":
                guard case .array(let items) = body else {
                    throw EngineError(.invalidModelFile, "model file \(source): a '_dict' node of the 'structure' metadata is not a list of pairs")
                }
                var out: [(key: StateValue, value: StateValue)] = []
                for item in items {
                    guard case .array(let pair) = item, pair.count == 2 else {
                        throw EngineError(.invalidModelFile, "model file \(source): a '_dict' node of the 'structure' metadata is not a list of pairs")
                    }
                    let key = try unflatten(pair[0], source: source, depth: depth + 1, tensor: tensor)
                    switch key {
                    case .string, .int, .bool, .none, .double: break
                    default:
                        throw EngineError(.invalidModelFile, "model file \(source): a dict key of the 'structure' metadata is a \(key.kindName)")
                    }
                    out.append((key, try unflatten(pair[1], source: source, depth: depth + 1, tensor: tensor)))
                }
                return .dict(out)
            case "_list", "_tuple":
                guard case .array(let items) = body else {
                    throw EngineError(.invalidModelFile, "model file \(source): a '\(kind)' node of the 'structure' metadata is not a list")
                }
                let values = try items.map { try unflatten($0, source: source, depth: depth + 1, tensor: tensor) }
                return kind == "_list" ? .list(values) : .tuple(values)
            case "_class":
                guard case .string(let path) = body, let dot = path.lastIndex(of: ".") else {
                    throw EngineError(.invalidModelFile, "model file \(source): a '_class' node of the 'structure' metadata is not a dotted class name")
                }
                guard allowedClasses.contains(path) else {
                    throw EngineError(.invalidModelFile, "model file \(source): refusing to load: the 'structure' metadata names the class \(path); only the diffq quantizers (\(allowedClasses.sorted().joined(separator: ", "))) are accepted")
                }
                return .classRef(module: String(path[..<dot]), name: String(path[path.index(after: dot)...]))
            default:
                throw EngineError(.invalidModelFile, "model file \(source): invalid 'structure' node \(kind)")
            }
        }
    }
}

// MARK: - Raw tensors of a safetensors file

extension SafeTensorsFile {
    /// Reads every tensor of the file with its own dtype (the engine's `tensor(_:)` converts to
    /// float32; the packed levels of a quantised model are integers).
    public func rawTensors() throws -> [String: RawTensor] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw EngineError(.invalidModelFile, "cannot read model file \(path): \(error.localizedDescription)")
        }
        guard data.count >= 8 else {
            throw EngineError(.invalidModelFile, "model file \(path) is truncated")
        }
        let headerLength = data.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        let dataStart = 8 + headerLength
        var out: [String: RawTensor] = [:]
        for (name, entry) in entries {
            guard let dtype = RawDType(rawValue: entry.dtype) else {
                throw EngineError(.invalidModelFile, "model file \(path): tensor \(name) has unsupported dtype \(entry.dtype)")
            }
            let begin = dataStart + entry.begin, end = dataStart + entry.end
            guard begin >= dataStart, end <= data.count, end - begin == entry.shape.reduce(1, *) * dtype.byteWidth else {
                throw EngineError(.invalidModelFile, "model file \(path): tensor \(name) lies outside the file")
            }
            out[name] = RawTensor(dtype: dtype, shape: entry.shape, data: Data(data[begin..<end]))
        }
        return out
    }
}

// MARK: - JSON with order and exact numbers

/// A JSON value that keeps object key order and tells ints, floats and booleans apart (which
/// `JSONSerialization` does not do reliably on Linux). Doubles are parsed correctly rounded.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public struct ParseError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The value of `key` in an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first(where: { $0.0 == key })?.1
    }

    public static func parse(_ text: String) throws -> JSONValue {
        var parser = Parser(bytes: Array(text.utf8))
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.pos == parser.bytes.count else { throw parser.fail("trailing characters") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var pos = 0

        func fail(_ what: String) -> ParseError { ParseError(message: "\(what) at offset \(pos)") }

        mutating func skipSpace() {
            while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
        }

        mutating func literal(_ word: String) -> Bool {
            let w = Array(word.utf8)
            guard pos + w.count <= bytes.count, Array(bytes[pos..<(pos + w.count)]) == w else { return false }
            pos += w.count
            return true
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard depth < 512 else { throw fail("nesting too deep") }
            guard pos < bytes.count else { throw fail("unexpected end") }
            switch bytes[pos] {
            case UInt8(ascii: "{"):
                pos += 1
                var pairs: [(String, JSONValue)] = []
                skipSpace()
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(pairs) }
                while true {
                    skipSpace()
                    guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let key = try string()
                    skipSpace()
                    guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    pos += 1
                    skipSpace()
                    pairs.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    guard pos < bytes.count else { throw fail("unexpected end") }
                    if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(pairs) }
                    throw fail("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                pos += 1
                var items: [JSONValue] = []
                skipSpace()
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard pos < bytes.count else { throw fail("unexpected end") }
                    if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                guard literal("true") else { throw fail("bad literal") }
                return .bool(true)
            case UInt8(ascii: "f"):
                guard literal("false") else { throw fail("bad literal") }
                return .bool(false)
            case UInt8(ascii: "n"):
                guard literal("null") else { throw fail("bad literal") }
                return .null
            case UInt8(ascii: "N"):
                guard literal("NaN") else { throw fail("bad literal") }
                return .double(.nan)
            case UInt8(ascii: "I"):
                guard literal("Infinity") else { throw fail("bad literal") }
                return .double(.infinity)
            default:
                return try number()
            }
        }

        mutating func number() throws -> JSONValue {
            let start = pos
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "-") {
                pos += 1
                if literal("Infinity") { return .double(-.infinity) }
            }
            var isFloat = false
            while pos < bytes.count {
                let c = bytes[pos]
                if (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                    pos += 1
                } else if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                    isFloat = true
                    pos += 1
                } else {
                    break
                }
            }
            let text = String(decoding: bytes[start..<pos], as: UTF8.self)
            guard !text.isEmpty, text != "-" else { throw fail("unexpected character") }
            if !isFloat, let i = Int(text) { return .int(i) }
            guard let d = Double(text) else { throw fail("bad number \(text)") }
            return .double(d)
        }

        mutating func hex4() throws -> UInt32 {
            guard pos + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[pos..<(pos + 4)], as: UTF8.self), radix: 16) else {
                throw fail("bad \\u escape")
            }
            pos += 4
            return v
        }

        mutating func string() throws -> String {
            pos += 1  // opening quote
            var out = [UInt8]()
            while true {
                guard pos < bytes.count else { throw fail("unterminated string") }
                let c = bytes[pos]
                pos += 1
                if c == UInt8(ascii: "\"") { break }
                if c != UInt8(ascii: "\\") { out.append(c); continue }
                guard pos < bytes.count else { throw fail("unterminated string") }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xD800 && scalar < 0xDC00, pos + 1 < bytes.count,
                       bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                        pos += 2
                        let low = try hex4()
                        guard low >= 0xDC00 && low < 0xE000 else { throw fail("bad surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    let u = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw fail("bad escape")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
