import Crypto
import Foundation

/// The sha256 of a file, computed by reading it in fixed-size chunks.
///
/// Model weights run to hundreds of megabytes; reading them whole just to hash them would double the
/// process's peak memory for no reason, so the file is streamed through the hasher instead.
public enum FileDigest {
    /// How much of the file is read at a time.
    static let chunkSize = 1 << 20

    /// The lowercase hex sha256 of the file at `path`.
    public static func sha256(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ModelStoreError(.fileSystem, "cannot open \(path) to check its sha256")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        do {
            while let chunk = try handle.read(upToCount: chunkSize), !chunk.isEmpty {
                hasher.update(data: chunk)
            }
        } catch {
            throw ModelStoreError(.fileSystem, "cannot read \(path) to check its sha256: \(error)")
        }
        return hex(hasher.finalize())
    }

    /// Lowercase hex of a digest, the form `sha256sum` prints.
    static func hex(_ digest: SHA256.Digest) -> String {
        var text = ""
        text.reserveCapacity(SHA256.byteCount * 2)
        for byte in digest {
            let value = Int(byte)
            text.append(Self.digits[value >> 4])
            text.append(Self.digits[value & 0xF])
        }
        return text
    }

    private static let digits: [Character] = Array("0123456789abcdef")
}
