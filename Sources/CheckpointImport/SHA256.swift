import Crypto
import Foundation

/// The sha256 of a checkpoint file, to check the `<sig>-<first 8 hex digits>.th` naming demucs
/// uses. Reads the file in 1 MiB chunks so a large checkpoint is never held in memory at once.
enum FileSHA256 {
    static func hex(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CheckpointError("cannot open \(path)") }
        defer { try? handle.close() }
        var hasher = Crypto.SHA256()
        while true {
            let chunk = handle.readData(ofLength: 1 << 20)
            if chunk.isEmpty { break }
            hasher.update(data: chunk)
        }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
