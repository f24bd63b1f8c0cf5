import Foundation
import ZIPFoundation

/// `zlib.decompress` for what Python's `zlib.compress` wrote (RFC 1950: a two-byte header, a raw
/// deflate stream, the Adler-32 of the content). demucs v2 wraps its quantised state in it.
/// The deflate stream is inflated by ZIPFoundation (zlib underneath); the header and checksum are
/// checked here.
enum Zlib {
    static func decompress(_ data: Data, description: String, limit: Int = 1 << 32) throws -> Data {
        let bytes = [UInt8](data.prefix(2))
        guard data.count >= 6, bytes.count == 2, bytes[0] & 0x0F == 8,
              (Int(bytes[0]) * 256 + Int(bytes[1])) % 31 == 0 else {
            throw CheckpointError("\(description) is not zlib-compressed data")
        }
        guard bytes[1] & 0x20 == 0 else { throw CheckpointError("\(description) uses a zlib preset dictionary, which is not supported") }
        let body = data.subdata(in: (data.startIndex + 2)..<(data.endIndex - 4))
        let out = try inflate(body, limit: limit,
                              tooLarge: CheckpointError("\(description) decompresses to more than \(limit) bytes"),
                              damaged: { CheckpointError("\(description) is damaged: its zlib stream does not inflate (\($0))") })
        let trailer = [UInt8](data.suffix(4))
        let expected = trailer.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        guard adler32(out) == expected else {
            throw CheckpointError("\(description) is damaged: its Adler-32 checksum does not match")
        }
        return out
    }

    /// Inflates the raw deflate stream `body` (ZIPFoundation, zlib underneath), throwing
    /// `tooLarge` once the output passes `limit` bytes and `damaged(error)` when it does not inflate.
    static func inflate(_ body: Data, limit: Int, tooLarge: @autoclosure () -> CheckpointError,
                        damaged: (Error) -> CheckpointError) throws -> Data {
        var out = Data()
        do {
            _ = try Data.decompress(size: Int64(body.count), bufferSize: 1 << 20, skipCRC32: true, provider: { position, size in
                let start = body.startIndex + Int(position)
                return body.subdata(in: start..<min(body.endIndex, start + size))
            }, consumer: { chunk in
                out.append(chunk)
                guard out.count <= limit else { throw tooLarge() }
            })
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw damaged(error)
        }
        return out
    }

    static func adler32(_ data: Data) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        data.withUnsafeBytes { raw in
            let p = raw.bindMemory(to: UInt8.self)
            var i = 0
            while i < p.count {
                // 5552 bytes keep the sums below 2^32 between reductions.
                let end = min(p.count, i + 5552)
                while i < end { a += UInt32(p[i]); b += a; i += 1 }
                a %= 65521
                b %= 65521
            }
        }
        return b << 16 | a
    }
}
