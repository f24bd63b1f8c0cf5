import DemucsEngine
import Foundation

/// A pickle reader (protocols 0 to 5, the opcodes `torch.save` and plain Python data use) that
/// never executes anything.
///
/// Python's unpickler imports whatever module a `GLOBAL` opcode names and calls whatever `REDUCE`
/// hands it, which is why loading an untrusted `.th` with `torch.load(weights_only=False)` can run
/// arbitrary code. Here a global is only a name: it must be on `allowedGlobals`, and a call
/// (`REDUCE`, `NEWOBJ`) is interpreted for the few callables that rebuild data (tensors, ordered
/// dicts, fractions, sets, byte strings); anything else is refused with the name it asked for.
/// Classes on the list (the demucs models, the diffq quantizers, the storage types) are opaque
/// references that can be stored and compared, never instantiated.
public struct PickleReader {
    /// Module → names a pickle may refer to.
    public static let allowedGlobals: [String: Set<String>] = [
        "torch._utils": ["_rebuild_tensor_v2", "_rebuild_tensor", "_rebuild_parameter", "_rebuild_parameter_with_state"],
        "torch": Set(storageTypes.keys).union(["Size"]),
        "collections": ["OrderedDict"],
        "fractions": ["Fraction"],
        "builtins": ["set", "frozenset"],
        "__builtin__": ["set", "frozenset"],
        "_codecs": ["encode"],
        "demucs.htdemucs": ["HTDemucs"],
        "demucs.hdemucs": ["HDemucs"],
        "demucs.demucs": ["Demucs"],
        // demucs 2.0.3's model classes, and what its `save_model` pickles in `training_args`: an
        // argparse Namespace of the training flags, some of them paths.
        "demucs.model": ["Demucs"],
        "demucs.tasnet": ["ConvTasNet"],
        "argparse": ["Namespace"],
        "pathlib": ["PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath", "Path"],
        "diffq.diffq": ["DiffQuantizer"],
        "diffq.uniform": ["UniformQuantizer"],
    ]

    /// `torch.<Name>Storage` → element type.
    public static let storageTypes: [String: RawDType] = [
        "FloatStorage": .f32, "DoubleStorage": .f64, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool,
    ]

    /// Loads the bytes of storage `key` holding `count` elements of `dtype` (called once per key).
    public typealias StorageLoader = (_ key: String, _ dtype: RawDType, _ count: Int) throws -> Data

    let bytes: [UInt8]
    let source: String
    let loadStorage: StorageLoader
    var pos = 0
    var stack: [PickleValue] = []
    var marks: [[PickleValue]] = []
    var memo: [Int: PickleValue] = [:]
    /// The dicts that stand for `argparse.Namespace` objects: their BUILD state is their content.
    var namespaces = Set<ObjectIdentifier>()
    var storages: [String: TorchStorage] = [:]

    public init(data: Data, source: String, loadStorage: @escaping StorageLoader) {
        self.bytes = [UInt8](data)
        self.source = source
        self.loadStorage = loadStorage
    }

    /// Reads one pickle from `data`.
    public static func load(data: Data, source: String, loadStorage: @escaping StorageLoader) throws -> PickleValue {
        var reader = PickleReader(data: data, source: source, loadStorage: loadStorage)
        return try reader.run()
    }

    func fail(_ what: String) -> CheckpointError {
        CheckpointError("\(source): \(what)")
    }

    func refuse(_ what: String) -> CheckpointError {
        CheckpointError("\(source): refusing to load: \(what)")
    }

    // MARK: - Reading bytes

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - pos else { throw fail("the pickle is truncated (needs \(n) bytes at offset \(pos))") }
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }

    mutating func byte() throws -> UInt8 { try take(1).first! }

    mutating func uint(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try take(n).enumerated() { v |= UInt64(b) << UInt64(8 * i) }
        return v
    }

    mutating func length(_ n: Int) throws -> Int {
        let v = try uint(n)
        guard v <= UInt64(bytes.count - pos) else { throw fail("the pickle is truncated (a \(v)-byte item at offset \(pos))") }
        return Int(v)
    }

    mutating func line() throws -> String {
        guard let end = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("the pickle is truncated (unterminated line)") }
        defer { pos = end + 1 }
        return String(decoding: bytes[pos..<end], as: UTF8.self)
    }

    mutating func utf8(_ n: Int) throws -> String {
        let slice = try take(n)
        guard let s = String(validating: slice, as: UTF8.self) else { throw fail("the pickle has a string that is not valid UTF-8") }
        return s
    }

    // MARK: - Stack

    mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("the pickle pops from an empty stack (offset \(pos))") }
        return v
    }

    mutating func popMark() throws -> [PickleValue] {
        guard let saved = marks.popLast() else { throw fail("the pickle has no MARK where one is needed (offset \(pos))") }
        let items = stack
        stack = saved
        return items
    }

    mutating func push(_ v: PickleValue) throws {
        guard stack.count < 1_000_000 else { throw fail("the pickle's stack is too deep") }
        stack.append(v)
    }

    func top() throws -> PickleValue {
        guard let v = stack.last else { throw fail("the pickle reads an empty stack (offset \(pos))") }
        return v
    }

    // MARK: - The machine

    mutating func run() throws -> PickleValue {
        while true {
            let op = try byte()
            switch op {
            case 0x80: // PROTO
                let proto = try byte()
                guard proto <= 5 else { throw fail("unsupported pickle protocol \(proto)") }
            case 0x95: // FRAME
                _ = try uint(8)
            case 0x2E: // STOP
                let result = try pop()
                return result
            case 0x28: // MARK
                marks.append(stack)
                stack = []
            case 0x7D: try push(.dict(PickleDict()))               // EMPTY_DICT
            case 0x5D: try push(.list(PickleList()))               // EMPTY_LIST
            case 0x29: try push(.tuple([]))                        // EMPTY_TUPLE
            case 0x8F: try push(.set(PickleList()))                // EMPTY_SET
            case 0x4E: try push(.none)                             // NONE
            case 0x88: try push(.bool(true))                       // NEWTRUE
            case 0x89: try push(.bool(false))                      // NEWFALSE
            case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x4B: try push(.int(Int(try byte())))                              // BININT1
            case 0x4D: try push(.int(Int(try uint(2))))                             // BININT2
            case 0x8A: try push(try long(Int(try byte())))                          // LONG1
            case 0x8B: try push(try long(try length(4)))                            // LONG4
            case 0x47: try push(.double(Double(bitPattern: try uint(8).byteSwapped)))  // BINFLOAT (big-endian)
            case 0x58: try push(.string(try utf8(try length(4))))                   // BINUNICODE
            case 0x8C: try push(.string(try utf8(try length(1))))                   // SHORT_BINUNICODE
            case 0x8D: try push(.string(try utf8(try length(8))))                   // BINUNICODE8
            case 0x54: try push(.string(latin1(try take(try length(4)))))           // BINSTRING
            case 0x55: try push(.string(latin1(try take(try length(1)))))           // SHORT_BINSTRING
            case 0x42: try push(.bytes(Data(try take(try length(4)))))              // BINBYTES
            case 0x43: try push(.bytes(Data(try take(try length(1)))))              // SHORT_BINBYTES
            case 0x8E, 0x96: try push(.bytes(Data(try take(try length(8)))))        // BINBYTES8, BYTEARRAY8
            case 0x49: try push(try textInt(try line()))                            // INT
            case 0x4C: try push(try textInt(try line()))                            // LONG
            case 0x46:                                                              // FLOAT
                let text = try line()
                guard let d = Double(text) else { throw fail("bad FLOAT \(text)") }
                try push(.double(d))
            case 0x74: try push(.tuple(try popMark()))                              // TUPLE
            case 0x85: try push(.tuple([try pop()]))                                // TUPLE1
            case 0x86:                                                              // TUPLE2
                let b = try pop(), a = try pop()
                try push(.tuple([a, b]))
            case 0x87:                                                              // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                try push(.tuple([a, b, c]))
            case 0x6C: try push(.list(PickleList(try popMark())))                   // LIST
            case 0x61:                                                              // APPEND
                let v = try pop()
                try append(to: try top(), [v])
            case 0x65:                                                              // APPENDS
                let items = try popMark()
                try append(to: try top(), items)
            case 0x64:                                                              // DICT
                let items = try popMark()
                let d = PickleDict()
                try setItems(d, items)
                try push(.dict(d))
            case 0x73:                                                              // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d) = try top() else { throw fail("SETITEM on a \(try top().kindName)") }
                try refuseCycle([k, v], into: d)
                try d.set(k, v)
            case 0x75:                                                              // SETITEMS
                let items = try popMark()
                guard case .dict(let d) = try top() else { throw fail("SETITEMS on a \(try top().kindName)") }
                try setItems(d, items)
            case 0x90:                                                              // ADDITEMS
                let items = try popMark()
                guard case .set(let s) = try top() else { throw fail("ADDITEMS on a \(try top().kindName)") }
                try refuseCycle(items, into: s)
                s.items.append(contentsOf: items)
            case 0x91: try push(.set(PickleList(try popMark())))                    // FROZENSET
            case 0x30: _ = try pop()                                                // POP
            case 0x31: _ = try popMark()                                            // POP_MARK
            case 0x32: try push(try top())                                          // DUP
            case 0x71: memo[Int(try byte())] = try top()                            // BINPUT
            case 0x72: memo[Int(try uint(4))] = try top()                           // LONG_BINPUT
            case 0x70:                                                              // PUT
                guard let i = Int(try line()) else { throw fail("bad PUT") }
                memo[i] = try top()
            case 0x94: memo[memo.count] = try top()                                 // MEMOIZE
            case 0x68: try push(try get(Int(try byte())))                           // BINGET
            case 0x6A: try push(try get(Int(try uint(4))))                          // LONG_BINGET
            case 0x67:                                                              // GET
                guard let i = Int(try line()) else { throw fail("bad GET") }
                try push(try get(i))
            case 0x63:                                                              // GLOBAL
                let module = try line(), name = try line()
                try push(try global(module, name))
            case 0x93:                                                              // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .string(let n) = name, case .string(let m) = module else {
                    throw fail("STACK_GLOBAL with non-string names")
                }
                try push(try global(m, n))
            case 0x52:                                                              // REDUCE
                let args = try pop(), callable = try pop()
                guard case .tuple(let a) = args else { throw fail("REDUCE with arguments that are a \(args.kindName)") }
                try push(try call(callable, a))
            case 0x81:                                                              // NEWOBJ
                let args = try pop(), cls = try pop()
                guard case .tuple(let a) = args else { throw fail("NEWOBJ with arguments that are a \(args.kindName)") }
                try push(try construct(cls, a))
            case 0x62:                                                              // BUILD
                let state = try pop()
                try build(try top(), state)
            case 0x51:                                                              // BINPERSID
                try push(try persistent(try pop()))
            case 0x92:                                                              // NEWOBJ_EX
                _ = try pop(); _ = try pop()
                throw refuse("the pickle constructs an object of class \(try pop().kindName) (NEWOBJ_EX)")
            case 0x69:                                                              // INST
                let module = try line(), name = try line()
                throw refuse("the pickle asks for global \(module).\(name) (INST)")
            case 0x6F:                                                              // OBJ
                throw refuse("the pickle constructs an object (OBJ)")
            case 0x50:                                                              // PERSID
                throw refuse("the pickle uses a text persistent id, which torch checkpoints do not")
            case 0x82, 0x83, 0x84:                                                  // EXT1/2/4
                throw refuse("the pickle uses the extension registry (EXT opcodes)")
            case 0x97, 0x98:                                                        // NEXT_BUFFER, READONLY_BUFFER
                throw refuse("the pickle uses out-of-band buffers")
            default:
                throw fail(String(format: "unknown pickle opcode 0x%02x at offset %d", op, pos - 1))
            }
        }
    }

    func latin1(_ bytes: ArraySlice<UInt8>) -> String {
        String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
    }

    func textInt(_ text: String) throws -> PickleValue {
        var t = text
        if t.hasSuffix("L") { t.removeLast() }
        if t == "00" { return .bool(false) }
        if t == "01" { return .bool(true) }
        guard let i = Int(t) else { throw fail("integer \(text) is too large or malformed") }
        return .int(i)
    }

    /// A little-endian two's complement integer of `n` bytes.
    mutating func long(_ n: Int) throws -> PickleValue {
        let b = Array(try take(n))
        guard n > 0 else { return .int(0) }
        if n > 8 {
            // Wider encodings are fine while the value still fits 64 bits (pure sign extension).
            let sign: UInt8 = b[7] & 0x80 != 0 ? 0xFF : 0
            guard b[8...].allSatisfy({ $0 == sign }) else {
                throw fail("the pickle has an integer of \(n) bytes, too large for this reader")
            }
        }
        let m = min(n, 8)
        var v: UInt64 = 0
        for i in 0..<m { v |= UInt64(b[i]) << UInt64(8 * i) }
        if m < 8, b[m - 1] & 0x80 != 0 { v |= ~UInt64(0) << UInt64(8 * m) }
        return .int(Int(Int64(bitPattern: v)))
    }

    func get(_ index: Int) throws -> PickleValue {
        guard let v = memo[index] else { throw fail("the pickle refers to memo entry \(index), which was never stored") }
        return v
    }

    func append(to target: PickleValue, _ items: [PickleValue]) throws {
        guard case .list(let l) = target else { throw fail("APPEND on a \(target.kindName)") }
        try refuseCycle(items, into: l)
        l.items.append(contentsOf: items)
    }

    func setItems(_ d: PickleDict, _ items: [PickleValue]) throws {
        guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
        try refuseCycle(items, into: d)
        for i in stride(from: 0, to: items.count, by: 2) { try d.set(items[i], items[i + 1]) }
    }

    /// Refuses to put `values` into `container` when one of them holds it, directly or through
    /// other lists, dicts, sets or tuples: the objects are classes, so a cycle would never be
    /// freed (found by the pickle fuzz target), and no checkpoint has one. Values that are no
    /// containers cost nothing; the walk over containers shared by several others (the memo)
    /// visits each once per call.
    func refuseCycle(_ values: [PickleValue], into container: AnyObject) throws {
        var seen = Set<ObjectIdentifier>()
        var pending = values
        while let value = pending.popLast() {
            switch value {
            case .list(let l), .set(let l):
                if l === container { throw refuse("the pickle puts a list or set into itself") }
                if seen.insert(ObjectIdentifier(l)).inserted { pending += l.items }
            case .dict(let d):
                if d === container { throw refuse("the pickle puts a dict into itself") }
                if seen.insert(ObjectIdentifier(d)).inserted {
                    for pair in d.pairs { pending.append(pair.key); pending.append(pair.value) }
                }
            case .tuple(let items):
                pending += items
            default:
                break
            }
        }
    }

    func global(_ module: String, _ name: String) throws -> PickleValue {
        guard Self.allowedGlobals[module]?.contains(name) == true else {
            throw refuse("the pickle asks for global \(module).\(name), which is not on the allow-list of a model checkpoint")
        }
        return .global(module: module, name: name)
    }

    // MARK: - Calls

    mutating func call(_ callable: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
        guard case .global(let module, let name) = callable else {
            throw refuse("the pickle calls a \(callable.kindName)")
        }
        switch (module, name) {
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
            guard args.count >= 4 else { throw fail("\(name) with \(args.count) arguments") }
            return .tensor(try rebuildTensor(args[0], args[1], args[2], args[3]))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            guard let data = args.first, case .tensor = data else { throw fail("\(name) without a tensor") }
            return data
        case ("collections", "OrderedDict"):
            let d = PickleDict()
            if let first = args.first {
                guard let pairs = first.items else { throw fail("OrderedDict of a \(first.kindName)") }
                for pair in pairs {
                    guard let kv = pair.items, kv.count == 2 else { throw fail("OrderedDict item is not a pair") }
                    try d.set(kv[0], kv[1])
                }
            }
            return .dict(d)
        case ("fractions", "Fraction"):
            return try fraction(args)
        case ("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"), ("__builtin__", "frozenset"):
            guard let first = args.first else { return .set(PickleList()) }
            guard let items = first.items else { throw fail("\(name) of a \(first.kindName)") }
            return .set(PickleList(items))
        case ("_codecs", "encode"):
            guard args.count == 2, case .string(let s) = args[0], case .string(let enc) = args[1],
                  ["latin1", "latin-1", "iso-8859-1"].contains(enc.lowercased()) else {
                throw refuse("the pickle calls _codecs.encode with arguments other than (str, 'latin1')")
            }
            var out = Data()
            for scalar in s.unicodeScalars {
                guard scalar.value < 256 else { throw fail("a latin1 byte string holds U+\(String(scalar.value, radix: 16))") }
                out.append(UInt8(scalar.value))
            }
            return .bytes(out)
        case ("pathlib", _):
            // A path is only data here: its parts joined, never touched on disk.
            var parts: [String] = []
            for arg in args {
                guard case .string(let part) = arg else { throw fail("\(name) of a \(arg.kindName)") }
                parts.append(part)
            }
            return .string(parts.joined(separator: "/").replacingOccurrences(of: "//", with: "/"))
        case ("torch", "Size"):
            guard let first = args.first, let items = first.items else { return .tuple([]) }
            return .tuple(items)
        default:
            throw refuse("the pickle calls \(module).\(name); a model checkpoint only refers to that class, it must not construct it")
        }
    }

    mutating func construct(_ cls: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
        if case .global("collections", "OrderedDict") = cls, args.isEmpty { return .dict(PickleDict()) }
        if case .global("argparse", "Namespace") = cls, args.isEmpty {
            let d = PickleDict()
            namespaces.insert(ObjectIdentifier(d))
            return .dict(d)
        }
        throw refuse("the pickle constructs an object of class \(cls.kindName) (NEWOBJ)")
    }

    func build(_ object: PickleValue, _ state: PickleValue) throws {
        switch (object, state) {
        case (.dict(let d), .dict(let attributes)) where namespaces.contains(ObjectIdentifier(d)):
            for (key, value) in attributes.pairs {
                try refuseCycle([key, value], into: d)
                try d.set(key, value)
            }
            return
        case (.dict, .none): return
        // The instance attributes of an OrderedDict, such as the `_metadata` of a state_dict():
        // plain data that a state has no use for.
        case (.dict, .dict): return
        case (.tensor, .none): return
        default:
            throw refuse("the pickle sets the state of a \(object.kindName) (BUILD)")
        }
    }

    func fraction(_ args: [PickleValue]) throws -> PickleValue {
        func make(_ n: Int, _ d: Int) throws -> PickleValue {
            guard d != 0 else { throw fail("a Fraction with denominator 0") }
            var a = abs(n), b = abs(d)
            while b != 0 { (a, b) = (b, a % b) }
            let g = max(a, 1) * (d < 0 ? -1 : 1)
            return .fraction(n / g, d / g)
        }
        switch args.count {
        case 1:
            switch args[0] {
            case .int(let n): return try make(n, 1)
            case .string(let text):
                let t = text.trimmingCharacters(in: .whitespaces)
                if let slash = t.firstIndex(of: "/") {
                    guard let n = Int(t[..<slash].trimmingCharacters(in: .whitespaces)),
                          let d = Int(t[t.index(after: slash)...].trimmingCharacters(in: .whitespaces)) else {
                        throw fail("a Fraction of '\(text)'")
                    }
                    return try make(n, d)
                }
                if let n = Int(t) { return try make(n, 1) }
                // A decimal such as "7.8": digits after the point give the denominator.
                let parts = t.split(separator: ".", omittingEmptySubsequences: false)
                guard parts.count == 2, parts[1].count <= 15, let whole = Int(parts[0].isEmpty ? "0" : String(parts[0]).replacingOccurrences(of: "-", with: "")),
                      let frac = Int(parts[1].isEmpty ? "0" : String(parts[1])) else {
                    throw fail("a Fraction of '\(text)'")
                }
                var scale = 1
                for _ in 0..<parts[1].count { scale *= 10 }
                let negative = t.hasPrefix("-")
                return try make((whole * scale + frac) * (negative ? -1 : 1), scale)
            default:
                throw fail("a Fraction of a \(args[0].kindName)")
            }
        case 2:
            guard case .int(let n) = args[0], case .int(let d) = args[1] else { throw fail("a Fraction of non-integers") }
            return try make(n, d)
        default:
            throw fail("a Fraction with \(args.count) arguments")
        }
    }

    // MARK: - Storages and tensors

    mutating func persistent(_ pid: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count == 5, case .string("storage") = t[0] else {
            throw refuse("the pickle has a persistent id that is not a torch storage (\(pid.kindName))")
        }
        guard case .global("torch", let typeName) = t[1], let dtype = Self.storageTypes[typeName] else {
            throw refuse("the pickle has a storage of type \(t[1].kindName)")
        }
        guard case .string(let key) = t[2], case .int(let count) = t[4], count >= 0 else {
            throw fail("a storage with a malformed key or size")
        }
        if let known = storages[key] {
            guard known.dtype == dtype else { throw fail("storage \(key) is used with two element types") }
            return .storage(known)
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteWidth)
        guard !overflow else { throw fail("storage \(key) has an impossible size \(count)") }
        let data = try loadStorage(key, dtype, count)
        guard data.count >= bytes else {
            throw fail("storage \(key) is truncated: it should hold \(count) \(dtype.rawValue) elements (\(bytes) bytes) but has \(data.count) bytes")
        }
        let storage = TorchStorage(key: key, dtype: dtype, count: count, data: data)
        storages[key] = storage
        return .storage(storage)
    }

    func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
        guard let items = v.items else { throw fail("tensor \(what) is a \(v.kindName), not a tuple") }
        return try items.map {
            guard case .int(let i) = $0, i >= 0 else { throw fail("tensor \(what) holds \($0.kindName) values or negative numbers") }
            return i
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`: the elements the view
    /// selects, gathered into a contiguous tensor.
    func rebuildTensor(_ storageValue: PickleValue, _ offsetValue: PickleValue, _ sizeValue: PickleValue, _ strideValue: PickleValue) throws -> RawTensor {
        guard case .storage(let storage) = storageValue else { throw fail("a tensor without a storage (\(storageValue.kindName))") }
        guard case .int(let offset) = offsetValue, offset >= 0 else { throw fail("a tensor with a bad storage offset") }
        let size = try ints(sizeValue, "size"), stride = try ints(strideValue, "stride")
        guard size.count == stride.count else { throw fail("a tensor whose size \(size) and stride \(stride) differ in rank") }
        var count = 1
        for s in size {
            let (c, o) = count.multipliedReportingOverflow(by: s)
            guard !o, c < 1 << 40 else { throw fail("a tensor of impossible size \(size)") }
            count = c
        }
        let width = storage.dtype.byteWidth
        if count == 0 { return RawTensor(dtype: storage.dtype, shape: size, data: Data()) }
        var last = offset
        for (s, st) in zip(size, stride) {
            let (p, o1) = (s - 1).multipliedReportingOverflow(by: st)
            let (q, o2) = last.addingReportingOverflow(p)
            guard !o1, !o2 else { throw fail("a tensor with impossible strides \(stride)") }
            last = q
        }
        guard last < storage.count else {
            throw fail("tensor of size \(size), stride \(stride) at offset \(offset) reaches element \(last) of storage \(storage.key), which has \(storage.count) elements")
        }
        // Contiguous: one copy.
        var contiguous = [Int](repeating: 1, count: size.count)
        for i in Swift.stride(from: size.count - 2, through: 0, by: -1) { contiguous[i] = contiguous[i + 1] * size[i + 1] }
        let isContiguous = zip(zip(size, stride), contiguous).allSatisfy { $0.0 == 1 || $0.1 == $1 }
        if isContiguous {
            // The whole storage (the usual case: one storage per tensor) is shared, not copied:
            // the reader keeps its storages until the end, so a copy would double the memory of
            // a checkpoint while it loads.
            if offset == 0 && count == storage.count { return RawTensor(dtype: storage.dtype, shape: size, data: storage.data) }
            let start = storage.data.startIndex + offset * width
            return RawTensor(dtype: storage.dtype, shape: size, data: Data(storage.data[start..<(start + count * width)]))
        }
        // Any other view: gather element by element.
        var out = Data(count: count * width)
        storage.data.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                var index = [Int](repeating: 0, count: size.count)
                for o in 0..<count {
                    var e = offset
                    for d in 0..<size.count { e += index[d] * stride[d] }
                    (dst.baseAddress! + o * width).copyMemory(from: src.baseAddress! + e * width, byteCount: width)
                    var d = size.count - 1
                    while d >= 0 {
                        index[d] += 1
                        if index[d] < size[d] { break }
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return RawTensor(dtype: storage.dtype, shape: size, data: out)
    }
}
