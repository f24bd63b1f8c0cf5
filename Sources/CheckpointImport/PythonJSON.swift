import Foundation

/// JSON text exactly as Python's `json.dumps` writes it with default settings (`", "` and
/// `": "` separators, `ensure_ascii`, floats as `repr`), so that converted metadata is byte for
/// byte what demucs's `tools/export_hf.py` writes.
enum PythonJSON {
    /// A value of the checkpoint's `args` / `kwargs`, with `export_hf._json_default`'s encoding of
    /// fractions (`{"_type": "fraction", "numerator": n, "denominator": d}`).
    static func encode(_ value: PickleValue, path: String = "kwargs", depth: Int = 0) throws -> String {
        // Also stops a list that contains itself (possible through the pickle memo).
        guard depth < 100 else { throw CheckpointError("the checkpoint's \(path) is nested too deeply") }
        switch value {
        case .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return float(d)
        case .string(let s): return string(s)
        case .fraction(let n, let d):
            return "{\"_type\": \"fraction\", \"numerator\": \(n), \"denominator\": \(d)}"
        case .tuple(let items):
            return "[" + (try items.enumerated().map { try encode($1, path: "\(path)[\($0)]", depth: depth + 1) }).joined(separator: ", ") + "]"
        case .list(let l):
            return "[" + (try l.items.enumerated().map { try encode($1, path: "\(path)[\($0)]", depth: depth + 1) }).joined(separator: ", ") + "]"
        case .dict(let d):
            let parts = try d.pairs.map { pair -> String in
                let key = try self.key(pair.key, path: path)
                return string(key) + ": " + (try encode(pair.value, path: "\(path).\(key)", depth: depth + 1))
            }
            return "{" + parts.joined(separator: ", ") + "}"
        case .global(let module, let name):
            // json.dumps(default=str) writes str(cls).
            return string("<class '\(module).\(name)'>")
        case .bytes, .set, .storage, .tensor:
            throw CheckpointError("the checkpoint's \(path) holds a \(value.kindName), which cannot be written as JSON metadata")
        }
    }

    /// A dict key as `json.dumps` converts it to a string.
    static func key(_ value: PickleValue, path: String) throws -> String {
        switch value {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return float(d)
        case .bool(let b): return b ? "true" : "false"
        case .none: return "null"
        default: throw CheckpointError("the checkpoint's \(path) has a dict key that is a \(value.kindName)")
        }
    }

    /// A JSON string literal with `ensure_ascii` escaping.
    static func string(_ s: String) -> String {
        var out = "\""
        for unit in s.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20..<0x7F: out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
            default: out += String(format: "\\u%04x", unit)
            }
        }
        return out + "\""
    }

    /// Python's `repr(float)` (and json.dumps's `NaN` / `Infinity`).
    static func float(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description has the shortest round-trip digits; only the layout differs.
        let text = "\(abs(d))"
        var mantissa = text, exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = String(text[..<e])
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        var digits = mantissa.replacingOccurrences(of: ".", with: "")
        var point = mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) } ?? mantissa.count
        // Strip leading zeros (moving the point) and trailing zeros.
        while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); point -= 1 }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        let x = point - 1 + exponent  // value = d.ddd × 10^x
        let sign = d < 0 ? "-" : ""
        if x >= -4 && x < 16 {
            if x >= 0 {
                let intCount = x + 1
                let intPart = digits.count >= intCount ? String(digits.prefix(intCount)) : digits + String(repeating: "0", count: intCount - digits.count)
                let frac = digits.count > intCount ? String(digits.dropFirst(intCount)) : "0"
                return sign + intPart + "." + frac
            }
            return sign + "0." + String(repeating: "0", count: -x - 1) + digits
        }
        let first = String(digits.prefix(1)), rest = String(digits.dropFirst())
        let exp = String(format: "%@%02d", x < 0 ? "-" : "+", abs(x))
        return sign + first + (rest.isEmpty ? "" : "." + rest) + "e" + exp
    }
}
