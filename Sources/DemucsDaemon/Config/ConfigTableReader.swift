import TOMLKit

/// Reads typed, range-checked values out of one TOML table of the configuration file.
///
/// TOMLKit hands back loosely typed values; this wrapper turns every way a value can be wrong into
/// a `ConfigError` that names the key, so the section parsers stay one line per key. It also
/// remembers which keys were read, so that anything left over — almost always a typo — is
/// reported instead of ignored.
struct ConfigTableReader {
    /// The file name used in error messages.
    let file: String
    /// The section name (`output`), or nil for the top level of the file.
    let section: String?
    /// Where keys of other sections belong (`"shifts": "[separation]"`), for messages about a key
    /// written under the wrong header.
    let elsewhere: [String: String]
    private let table: TOMLTable
    private var read: [String] = []

    init(file: String, section: String?, table: TOMLTable, elsewhere: [String: String] = [:]) {
        self.file = file
        self.section = section
        self.table = table
        self.elsewhere = elsewhere
    }

    /// The key as shown in messages: `[output] mp3_bitrate`, or just `data` at the top level.
    func display(_ key: String) -> String {
        section.map { "[\($0)] \(key)" } ?? key
    }

    /// An error about `key` (whose value, if present, is shown after an `=`).
    func error(_ key: String, _ problem: String) -> ConfigError {
        if let value = table[key] {
            return ConfigError(file: file, key: display(key), problem: "= \(Self.render(value)) \(problem)")
        }
        return ConfigError(file: file, key: display(key), problem: problem)
    }

    /// The raw value of `key`, marking it as known.
    private mutating func value(_ key: String) -> TOMLValueConvertible? {
        read.append(key)
        return table[key]
    }

    mutating func string(_ key: String, default fallback: String) throws -> String {
        guard let v = value(key) else { return fallback }
        guard let s = v.string else { throw wrongType(key, v, expected: "a string") }
        return s
    }

    mutating func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let v = value(key) else { return fallback }
        guard let b = v.bool else { throw wrongType(key, v, expected: "true or false") }
        return b
    }

    /// An integer inside `range`; `what` names the quantity in the range message
    /// ("is not a valid MP3 bitrate (8..320)"), `note` explains a special value ("0 = no limit").
    mutating func int(_ key: String, default fallback: Int, range: ClosedRange<Int>, what: String,
                      note: String? = nil) throws -> Int {
        guard let v = value(key) else { return fallback }
        guard let i = v.int else { throw wrongType(key, v, expected: "a whole number") }
        guard range.contains(i) else {
            let extra = note.map { "; \($0)" } ?? ""
            throw error(key, "is not a valid \(what) (\(range.lowerBound)..\(range.upperBound)\(extra))")
        }
        return i
    }

    /// A number inside `range`. Integers are accepted too, because `overlap = 0` or
    /// `settle_seconds = 2` are what people write, and TOML would otherwise call them the wrong type.
    mutating func double(_ key: String, default fallback: Double, range: some RangeExpression<Double>, rangeText: String,
                         what: String) throws -> Double {
        guard let v = value(key) else { return fallback }
        let d: Double
        if let x = v.double { d = x } else if let i = v.int { d = Double(i) } else {
            throw wrongType(key, v, expected: "a number")
        }
        guard d.isFinite, range.contains(d) else { throw error(key, "is not a valid \(what) (\(rangeText))") }
        return d
    }

    /// One of the raw values of `E`, spelled exactly (the enums are lower-case words).
    mutating func choice<E: RawRepresentable & CaseIterable>(_ key: String, default fallback: E) throws -> E
    where E.RawValue == String {
        guard let v = value(key) else { return fallback }
        guard let s = v.string else { throw wrongType(key, v, expected: "a string") }
        guard let e = E(rawValue: s) else {
            let options = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            throw error(key, "is not one of \(options)")
        }
        return e
    }

    /// Throws for the first key of the table that no reader asked for (and is not in `alsoKnown`,
    /// such as the section tables at the top level). The message says where the key belongs when
    /// `elsewhere` knows it (a key written under the wrong `[section]` header is a common TOML
    /// slip), or else suggests the closest known key.
    func rejectUnknownKeys(alsoKnown: [String] = []) throws {
        let known = read + alsoKnown
        for key in table.keys.sorted() where !known.contains(key) {
            var problem = "is not a known key"
            if let home = elsewhere[key] {
                problem += "; it belongs in \(home)"
            } else if let guess = Self.closest(to: key, in: known) {
                problem += "; did you mean \(guess)?"
            } else {
                problem += " (known keys: \(read.joined(separator: ", ")))"
            }
            throw ConfigError(file: file, key: display(key), problem: problem)
        }
    }

    private func wrongType(_ key: String, _ v: TOMLValueConvertible, expected: String) -> ConfigError {
        error(key, "must be \(expected), not \(Self.typeName(v.type))")
    }

    /// How a TOML type is called in messages.
    static func typeName(_ type: TOMLType) -> String {
        switch type {
        case .string: "a string"
        case .int: "a whole number"
        case .double: "a fractional number"
        case .bool: "a boolean"
        case .table: "a table"
        case .array: "an array"
        case .date: "a date"
        case .time: "a time"
        case .dateTime: "a date-time"
        }
    }

    /// `value` written back the way it would appear in the file, so the message quotes the user.
    static func render(_ value: TOMLValueConvertible) -> String {
        switch value.type {
        case .string:
            var out = "\""
            for scalar in (value.string ?? "").unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                    out += "\\u" + String(scalar.value, radix: 16).leftPadded(to: 4)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        case .int: return String(value.int ?? 0)
        case .double: return String(value.double ?? 0)
        case .bool: return String(value.bool ?? false)
        case .array: return "[…]"
        case .table: return "{…}"
        case .date, .time, .dateTime: return value.debugDescription
        }
    }

    /// The candidate within edit distance 2 of `word`, if there is a single best one.
    static func closest(to word: String, in candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(word, $0)) }.filter { $0.1 <= 2 }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        return best.0
    }

    /// Levenshtein distance, for "did you mean" suggestions.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var previous = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[b.count]
    }
}

private extension String {
    func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
