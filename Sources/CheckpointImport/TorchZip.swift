import DemucsEngine
import Foundation

/// Reads what `torch.save` writes (PyTorch >= 1.6): a zip archive whose entries all sit under one
/// folder (`<root>/`), with the pickled object in `<root>/data.pkl`, each tensor storage in
/// `<root>/data/<key>` (raw little-endian elements) and small records such as `<root>/version`
/// and `<root>/byteorder`.
///
/// The archive is checked before anything is unpickled: every entry must be a plain file under
/// the single root folder (no absolute paths, no `..`, no links), `byteorder`, when present,
/// must be `little`, and each storage must hold as many bytes as the pickle says. Storages are
/// read from memory, nothing is extracted to disk.
public enum TorchZip {
    /// The first bytes of a file written by the legacy (pre-1.6, non-zip) `torch.save`: the
    /// pickled magic number 0x1950a86a20f9469cfc6c.
    static let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    /// Unpickles the object saved in the checkpoint at `path`.
    public static func load(path: String) throws -> PickleValue {
        let name = (path as NSString).lastPathComponent
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CheckpointError("cannot open \(path)")
        }
        let head = [UInt8](handle.readData(ofLength: 16))
        try? handle.close()
        if head.starts(with: legacyMagic) {
            throw CheckpointError("\(path) is in the legacy torch serialization format (torch < 1.6, or saved with _use_new_zipfile_serialization=False), which is not supported; re-save it with a current PyTorch: torch.save(torch.load(f, weights_only=False), f)")
        }
        if head.first == 0x80 {
            throw CheckpointError("\(path) is a plain pickle, not a torch zip checkpoint; only files written by torch.save (PyTorch >= 1.6) are supported")
        }
        guard head.starts(with: [0x50, 0x4B]) else {
            throw CheckpointError("\(path) is not a torch checkpoint (it is neither a zip archive nor a pickle)")
        }
        return try load(archive: try ZipReader(path: path), path: path, name: name)
    }

    /// Unpickles a `torch.save` held in memory (demucs v2 stores its quantised state as the
    /// zlib-compressed bytes of one); `description` names it in errors.
    public static func load(data: Data, description: String) throws -> PickleValue {
        guard data.starts(with: [0x50, 0x4B]) else {
            if data.starts(with: legacyMagic) {
                throw CheckpointError("\(description) is in the legacy torch serialization format (torch < 1.6), which is not supported")
            }
            throw CheckpointError("\(description) is not a torch.save archive")
        }
        return try load(archive: try ZipReader(data: data, description: description), path: description, name: description)
    }

    private static func load(archive: ZipReader, path: String, name: String) throws -> PickleValue {
        // Every entry: a plain file under one root folder.
        var root: String?
        var entries: [String: ZipReader.Entry] = [:]
        for entry in archive.entries {
            let entryPath = entry.name
            var trimmed = entryPath
            if entry.isDirectory { trimmed.removeLast() }
            let parts = trimmed.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            let outside = trimmed.hasPrefix("/") || trimmed.contains("\\")
                || parts.contains { $0 == ".." || $0 == "." || $0.isEmpty }
                || (!entry.isDirectory && parts.count < 2)
            guard !outside else {
                throw CheckpointError("\(path): refusing to load: the zip entry '\(entryPath)' lies outside the archive's folder")
            }
            if root == nil { root = parts[0] }
            guard parts[0] == root else {
                throw CheckpointError("\(path): refusing to load: the zip entry '\(entryPath)' lies outside the archive's folder '\(root!)/'")
            }
            if entry.isSymbolicLink { throw CheckpointError("\(path): refusing to load: the zip entry '\(entryPath)' is a symbolic link") }
            if !entry.isDirectory { entries[entryPath] = entry }
        }
        guard let root, let pickleEntry = entries[root + "/data.pkl"] else {
            throw CheckpointError("\(path) is a zip archive but not a torch checkpoint (no <folder>/data.pkl)")
        }
        if let byteorder = entries[root + "/byteorder"] {
            let order = String(decoding: try archive.read(byteorder, limit: 64), as: UTF8.self)
            guard order.trimmingCharacters(in: .whitespacesAndNewlines) == "little" else {
                throw CheckpointError("\(path) was saved on a \(order)-endian machine; only little-endian checkpoints are supported")
            }
        }
        let pickle = try archive.read(pickleEntry, limit: 1 << 30)
        return try PickleReader.load(data: pickle, source: name) { key, dtype, count in
            guard !key.isEmpty, !key.contains("/"), !key.contains("\\"), key != "..", key != "." else {
                throw CheckpointError("\(path): refusing to load: the storage key '\(key)' is not a plain record name")
            }
            let recordPath = root + "/data/" + key
            guard let entry = entries[recordPath] else {
                throw CheckpointError("\(path): the pickle refers to storage \(key), but the archive has no \(recordPath)")
            }
            let needed = count * dtype.byteWidth
            guard entry.uncompressedSize >= UInt64(needed) else {
                throw CheckpointError("\(path): storage \(key) is truncated: it should hold \(count) \(dtype.rawValue) elements (\(needed) bytes) but \(recordPath) has \(entry.uncompressedSize) bytes")
            }
            return try archive.read(entry, limit: UInt64(needed))
        }
    }
}
