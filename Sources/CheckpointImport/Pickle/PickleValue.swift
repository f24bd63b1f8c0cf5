import DemucsEngine
import Foundation

/// A Python value as the pickle reader rebuilds it: plain data, containers, opaque references to
/// allow-listed classes, and tensors. Nothing here can run code.
///
/// Lists, dicts and sets are boxes (reference types), because a pickle memoises a container
/// before filling it and may refer to it again through the memo.
public indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case bytes(Data)
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    case set(PickleList)
    /// `fractions.Fraction(numerator, denominator)`, normalised.
    case fraction(Int, Int)
    /// An allow-listed class or function, by module and name; never resolved to code.
    case global(module: String, name: String)
    /// A tensor storage (`BINPERSID` of `('storage', type, key, location, numel)`).
    case storage(TorchStorage)
    /// A tensor rebuilt from a storage, as a contiguous raw tensor.
    case tensor(RawTensor)

    var kindName: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .set: return "set"
        case .fraction: return "Fraction"
        case .global(let m, let n): return "\(m).\(n)"
        case .storage: return "storage"
        case .tensor(let t): return "tensor \(t.dtype.rawValue)\(t.shape)"
        }
    }

    /// The value of `key` in a dict with string keys.
    subscript(key: String) -> PickleValue? {
        guard case .dict(let d) = self else { return nil }
        return d.pairs.first { if case .string(let k) = $0.key { return k == key } else { return false } }?.value
    }

    /// The items of a list or tuple.
    var items: [PickleValue]? {
        switch self {
        case .tuple(let v): return v
        case .list(let l): return l.items
        default: return nil
        }
    }
}

public final class PickleList {
    var items: [PickleValue]
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// A dict in insertion order; assigning an existing key replaces its value in place, as Python does.
public final class PickleDict {
    var pairs: [(key: PickleValue, value: PickleValue)] = []

    func set(_ key: PickleValue, _ value: PickleValue) throws {
        guard let k = HashKey(key) else {
            throw CheckpointError("refusing to load: the pickle uses a \(key.kindName) as a dict key")
        }
        if let i = pairs.firstIndex(where: { HashKey($0.key) == k }) {
            pairs[i].value = value
        } else {
            pairs.append((key, value))
        }
    }

    /// The comparable form of the key types model checkpoints use.
    enum HashKey: Equatable {
        case none, int(Int), double(Double), string(String), bytes(Data), tuple([HashKey]), global(String)

        init?(_ v: PickleValue) {
            switch v {
            case .none: self = .none
            case .bool(let b): self = .int(b ? 1 : 0)
            case .int(let i): self = .int(i)
            case .double(let d): self = d == d.rounded() && abs(d) < 1e18 ? .int(Int(d)) : .double(d)
            case .string(let s): self = .string(s)
            case .bytes(let b): self = .bytes(b)
            case .tuple(let items):
                var keys: [HashKey] = []
                for item in items {
                    guard let k = HashKey(item) else { return nil }
                    keys.append(k)
                }
                self = .tuple(keys)
            case .global(let m, let n): self = .global(m + "." + n)
            default: return nil
            }
        }
    }
}

/// One storage of a torch zip checkpoint: its key (the record `data/<key>`), element type and
/// element count.
public struct TorchStorage {
    public var key: String
    public var dtype: RawDType
    public var count: Int
    /// The bytes, little-endian, at least `count * dtype.byteWidth` of them.
    public var data: Data
}

/// An error while reading or converting a checkpoint; the message is meant for a person.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
