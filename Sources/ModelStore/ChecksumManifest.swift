import Foundation

/// The sha256 of each file of an installed model, recorded when the file was installed.
///
/// Stored beside the model as `<model>.sha256`, one line per file in the format `sha256sum`
/// prints and `sha256sum -c` checks:
///
///     <64 lowercase hex digits><two spaces><file name>
///
/// for example `3f1c…9a2b  955717e8.safetensors`, sorted by file name. That format was chosen so a
/// person can check a cache by hand (`cd ~/.cache/demucsd/models && sha256sum -c htdemucs.sha256`)
/// without this program. When reading, a `*` before the file name (sha256sum's binary marker),
/// blank lines and lines starting with `#` are accepted too.
public struct ChecksumManifest: Sendable, Equatable {
    /// File name (no folder) → lowercase hex sha256.
    public var hashes: [String: String]

    public init(hashes: [String: String] = [:]) {
        self.hashes = hashes
    }

    /// Parses manifest text; `source` names the file in error messages.
    public init(text: String, source: String) throws {
        var hashes: [String: String] = [:]
        // Splitting on Character.isNewline also handles "\r\n", which Swift treats as one Character.
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) || line.hasPrefix("#") { continue }
            guard let space = line.firstIndex(of: " ") else {
                throw Self.malformed(source, line: index + 1)
            }
            let hash = line[..<space].lowercased()
            var name = line[line.index(after: space)...]
            if name.first == " " || name.first == "*" { name = name.dropFirst() }
            guard hash.count == 64, hash.allSatisfy(\.isHexDigit), !name.isEmpty else {
                throw Self.malformed(source, line: index + 1)
            }
            hashes[String(name)] = hash
        }
        self.hashes = hashes
    }

    /// Reads the manifest at `path`, or returns nil when there is none.
    public static func load(path: String) throws -> ChecksumManifest? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ModelStoreError(.fileSystem, "cannot read the checksum manifest \(path); delete it and run again to rebuild it")
        }
        return try ChecksumManifest(text: text, source: path)
    }

    /// The manifest as text, one `<hex>  <file>` line per file, sorted by file name.
    public var text: String {
        hashes.keys.sorted().map { "\(hashes[$0]!)  \($0)\n" }.joined()
    }

    /// Writes the manifest to `path` atomically (a temporary file renamed into place), so a crash
    /// never leaves a half-written manifest that would make good files look damaged.
    public func write(path: String) throws {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ModelStoreError(.fileSystem, "cannot write the checksum manifest \(path): \(error)")
        }
    }

    private static func malformed(_ source: String, line: Int) -> ModelStoreError {
        ModelStoreError(.invalidModelFile, "checksum manifest \(source) is malformed at line \(line) (expected '<sha256 hex>  <file>'); delete it and run again to rebuild it")
    }
}
