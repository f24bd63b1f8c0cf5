/// Checks every table header (`[name]`, `[[name]]`) of a configuration text before the TOML
/// library sees it: toml++ (inside TOMLKit) asserts, aborting the process, on a header that
/// holds no key — `[` alone on a line was enough (found by the config fuzz target). A broken
/// header is a `ConfigError` naming its line instead.
///
/// The scan knows just enough TOML to find headers: strings (basic, literal, multi-line) and
/// comments are skipped, and a `[` inside a value (an array, even over several lines) is not a
/// header. Everything else is left to the TOML parser.
enum TableHeaderCheck {
    static func check(_ text: String, file: String) throws {
        let bytes = Array(text.utf8)
        var i = 0, line = 1, depth = 0
        var lineStart = true
        func at(_ s: String) -> Bool { bytes.count - i >= s.utf8.count && Array(bytes[i..<(i + s.utf8.count)]) == Array(s.utf8) }
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\n") { line += 1; lineStart = true; i += 1; continue }
            if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") { i += 1; continue }
            if c == UInt8(ascii: "#") {
                while i < bytes.count, bytes[i] != UInt8(ascii: "\n") { i += 1 }
                continue
            }
            if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                lineStart = false
                let quote = c
                let triple = at(c == UInt8(ascii: "\"") ? "\"\"\"" : "'''")
                i += triple ? 3 : 1
                while i < bytes.count {
                    if bytes[i] == UInt8(ascii: "\\"), quote == UInt8(ascii: "\"") { i += 2; continue }
                    if bytes[i] == UInt8(ascii: "\n") {
                        if !triple { break }
                        line += 1
                    }
                    if bytes[i] == quote, !triple || at(quote == UInt8(ascii: "\"") ? "\"\"\"" : "'''") {
                        i += triple ? 3 : 1
                        break
                    }
                    i += 1
                }
                continue
            }
            if c == UInt8(ascii: "["), lineStart, depth == 0 {
                i = try header(bytes, from: i, line: line, file: file)
                lineStart = false
                continue
            }
            if c == UInt8(ascii: "[") || c == UInt8(ascii: "{") { depth += 1 }
            if c == UInt8(ascii: "]") || c == UInt8(ascii: "}") { depth = max(depth - 1, 0) }
            lineStart = false
            i += 1
        }
    }

    /// Checks the header starting at `start`; returns the index after it.
    private static func header(_ bytes: [UInt8], from start: Int, line: Int, file: String) throws -> Int {
        func broken() -> ConfigError {
            ConfigError(file: file, key: nil,
                        problem: "line \(line): a section header must be [name] (or [\"quoted name\"]) on a line of its own",
                        line: line)
        }
        var i = start + 1
        let double = i < bytes.count && bytes[i] == UInt8(ascii: "[")
        if double { i += 1 }
        func skipSpace() { while i < bytes.count, bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: "\t") { i += 1 } }
        func isBare(_ c: UInt8) -> Bool {
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
        }
        while true {
            skipSpace()
            guard i < bytes.count else { throw broken() }
            if bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") {
                let quote = bytes[i]
                i += 1
                while i < bytes.count, bytes[i] != quote, bytes[i] != UInt8(ascii: "\n") {
                    i += (bytes[i] == UInt8(ascii: "\\") && quote == UInt8(ascii: "\"")) ? 2 : 1
                }
                guard i < bytes.count, bytes[i] == quote else { throw broken() }
                i += 1
            } else if isBare(bytes[i]) {
                while i < bytes.count, isBare(bytes[i]) { i += 1 }
            } else {
                throw broken()
            }
            skipSpace()
            guard i < bytes.count else { throw broken() }
            if bytes[i] == UInt8(ascii: ".") { i += 1; continue }
            break
        }
        guard bytes[i] == UInt8(ascii: "]") else { throw broken() }
        i += 1
        if double {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "]") else { throw broken() }
            i += 1
        }
        skipSpace()
        guard i == bytes.count || bytes[i] == UInt8(ascii: "\n") || bytes[i] == UInt8(ascii: "\r") || bytes[i] == UInt8(ascii: "#") else {
            throw broken()
        }
        return i
    }
}
