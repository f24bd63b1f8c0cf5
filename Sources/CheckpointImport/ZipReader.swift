import Foundation
import ZIPFoundation

/// A reader of the zip archives `torch.save` writes (stored entries, ZIP64 records), written
/// here because it is a safety boundary: every offset and size is checked against the file
/// before it is used, and a damaged or forged archive is an error naming the field.
/// ZIPFoundation's `Archive` traps on such files (an offset past `Int64.max` in a ZIP64 field
/// fails its `off_t` conversion; found by the torchzip and checkpoint fuzz targets), so only its
/// raw inflater and CRC-32 are used, for deflated entries.
struct ZipReader {
    struct Entry {
        var name: String
        var method: UInt16
        var compressedSize: UInt64
        var uncompressedSize: UInt64
        var checksum: UInt32
        var localHeaderOffset: UInt64
        var isDirectory: Bool { name.hasSuffix("/") }
        var isSymbolicLink: Bool
    }

    /// Reads `count` bytes at an offset, or throws when the archive ends first.
    typealias ByteSource = (_ offset: UInt64, _ count: Int) throws -> Data

    /// The archive's name in errors: its path, or the description of bytes in memory.
    let path: String
    let entries: [Entry]
    private let bytes: ByteSource
    /// Where the central directory starts: every entry's data lies before it.
    private let directoryStart: UInt64

    /// The archive in the file at `path`, read as needed.
    init(path: String) throws {
        guard let file = FileHandle(forReadingAtPath: path) else {
            throw CheckpointError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        let size = try file.seekToEnd()
        try self.init(path: path, size: size) { offset, count in
            try file.seek(toOffset: offset)
            let data = try file.read(upToCount: count) ?? Data()
            guard data.count == count else { throw Self.endsFirst(offset, count) }
            return data
        }
    }

    /// The archive held in `data`; `description` names it in errors.
    init(data: Data, description: String) throws {
        try self.init(path: description, size: UInt64(data.count)) { offset, count in
            guard offset <= UInt64(data.count), count <= data.count - Int(offset) else { throw Self.endsFirst(offset, count) }
            let start = data.startIndex + Int(offset)
            return data.subdata(in: start..<(start + count))
        }
    }

    private init(path: String, size: UInt64, bytes: @escaping ByteSource) throws {
        self.path = path
        self.bytes = bytes
        (directoryStart, entries) = try Self.readDirectory(bytes, size: size, path: path)
    }

    private static func endsFirst(_ offset: UInt64, _ count: Int) -> CheckpointError {
        CheckpointError("cannot read \(count) bytes at offset \(offset): the file ends first")
    }

    // MARK: - Central directory

    private static func readDirectory(_ read: ByteSource, size: UInt64, path: String) throws -> (UInt64, [Entry]) {
        func damaged(_ what: String) -> CheckpointError {
            CheckpointError("\(path) is not a readable zip archive (truncated or damaged?): \(what)")
        }
        // The end-of-central-directory record: 22 bytes and a comment that ends the file.
        let tailLength = min(size, 22 + 0xFFFF)
        let tail = try read(size - tailLength, Int(tailLength))
        var eocd: Int?
        var i = tail.count - 22
        while i >= 0 {
            if tail.u32(i) == 0x0605_4B50 && i + 22 + Int(tail.u16(i + 20)) == tail.count { eocd = i; break }
            i -= 1
        }
        guard let eocd else { throw damaged("no end-of-central-directory record") }
        let eocdOffset = size - tailLength + UInt64(eocd)
        var count = UInt64(tail.u16(eocd + 10))
        var directorySize = UInt64(tail.u32(eocd + 12))
        var directoryOffset = UInt64(tail.u32(eocd + 16))
        var directoryEnd = eocdOffset
        if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // ZIP64: a 20-byte locator just before the record points at the ZIP64 record.
            guard eocdOffset >= 20 else { throw damaged("no ZIP64 locator before the end record") }
            let locator = try read(eocdOffset - 20, 20)
            guard locator.u32(0) == 0x0706_4B50 else { throw damaged("no ZIP64 locator before the end record") }
            let recordOffset = locator.u64(8)
            guard recordOffset <= eocdOffset - 20, eocdOffset - 20 - recordOffset >= 56 else {
                throw damaged("the ZIP64 record offset \(recordOffset) is outside the file")
            }
            let record = try read(recordOffset, 56)
            guard record.u32(0) == 0x0606_4B50 else { throw damaged("no ZIP64 end record at offset \(recordOffset)") }
            count = record.u64(32)
            directorySize = record.u64(40)
            directoryOffset = record.u64(48)
            directoryEnd = recordOffset
        }
        guard directoryOffset <= directoryEnd, directorySize <= directoryEnd - directoryOffset else {
            throw damaged("the central directory (offset \(directoryOffset), \(directorySize) bytes) is outside the file")
        }
        guard count <= directorySize / 46 else {
            throw damaged("\(count) entries cannot fit in a central directory of \(directorySize) bytes")
        }
        let directory = try read(directoryOffset, Int(directorySize))
        var entries: [Entry] = [], names = Set<String>()
        var at = 0
        for index in 0..<Int(count) {
            guard at + 46 <= directory.count, directory.u32(at) == 0x0201_4B50 else {
                throw damaged("central directory entry \(index) is missing")
            }
            let flags = directory.u16(at + 8), method = directory.u16(at + 10)
            let nameLength = Int(directory.u16(at + 28)), extraLength = Int(directory.u16(at + 30))
            let commentLength = Int(directory.u16(at + 32))
            let next = at + 46 + nameLength + extraLength + commentLength
            guard next <= directory.count else { throw damaged("central directory entry \(index) runs past the directory") }
            let name = String(decoding: directory[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self)
            var entry = Entry(name: name, method: method, compressedSize: UInt64(directory.u32(at + 20)),
                              uncompressedSize: UInt64(directory.u32(at + 24)), checksum: directory.u32(at + 16),
                              localHeaderOffset: UInt64(directory.u32(at + 42)),
                              isSymbolicLink: directory[at + 5] == 3 && (directory.u32(at + 38) >> 16) & 0xF000 == 0xA000)
            try readZIP64Extra(Data(directory[(at + 46 + nameLength)..<(at + 46 + nameLength + extraLength)]), into: &entry,
                               damaged: { damaged("entry '\(name)': \($0)") })
            guard flags & 1 == 0 else { throw damaged("entry '\(name)' is encrypted") }
            guard method == 0 || method == 8 else { throw damaged("entry '\(name)' uses compression method \(method) (only stored and deflated entries are read)") }
            guard method != 0 || entry.compressedSize == entry.uncompressedSize else {
                throw damaged("stored entry '\(name)' has \(entry.compressedSize) bytes but says it holds \(entry.uncompressedSize)")
            }
            guard entry.localHeaderOffset <= directoryOffset, entry.compressedSize <= directoryOffset - entry.localHeaderOffset else {
                throw damaged("entry '\(name)' (offset \(entry.localHeaderOffset), \(entry.compressedSize) bytes) lies outside the file's data")
            }
            guard names.insert(name).inserted else { throw damaged("the entry '\(name)' appears twice") }
            entries.append(entry)
            at = next
        }
        return (directoryOffset, entries)
    }

    /// The ZIP64 extended information (tag 1) in an entry's extra fields (`extra`, offsets from
    /// 0): the 64-bit values of the fields saturated at 0xFFFFFFFF, in the order uncompressed
    /// size, compressed size, local header offset.
    private static func readZIP64Extra(_ extra: Data, into entry: inout Entry, damaged: (String) -> CheckpointError) throws {
        var at = 0
        while at + 4 <= extra.count {
            let tag = extra.u16(at), length = Int(extra.u16(at + 2))
            let body = (at + 4)..<(at + 4 + length)
            guard body.upperBound <= extra.count else { throw damaged("an extra field runs past its entry") }
            if tag == 1 {
                var field = body.lowerBound
                func next() throws -> UInt64 {
                    guard field + 8 <= body.upperBound else { throw damaged("the ZIP64 field is too short") }
                    defer { field += 8 }
                    return extra.u64(field)
                }
                if entry.uncompressedSize == 0xFFFF_FFFF { entry.uncompressedSize = try next() }
                if entry.compressedSize == 0xFFFF_FFFF { entry.compressedSize = try next() }
                if entry.localHeaderOffset == 0xFFFF_FFFF { entry.localHeaderOffset = try next() }
            }
            at = body.upperBound
        }
    }

    // MARK: - Entries

    /// The bytes of `entry` (at most `limit`; a larger entry is refused), inflated if deflated
    /// and checked against the CRC-32 the directory records.
    func read(_ entry: Entry, limit: UInt64) throws -> Data {
        func damaged(_ what: String) -> CheckpointError {
            CheckpointError("\(path): the zip entry \(entry.name) \(what)")
        }
        guard entry.uncompressedSize <= limit else {
            throw damaged("is \(entry.uncompressedSize) bytes, more than the \(limit) expected")
        }
        let header = try bytes(entry.localHeaderOffset, 30)
        guard header.u32(0) == 0x0403_4B50 else { throw damaged("has no local header at offset \(entry.localHeaderOffset) (truncated or damaged archive?)") }
        let dataStart = entry.localHeaderOffset + 30 + UInt64(header.u16(26)) + UInt64(header.u16(28))
        guard dataStart <= directoryStart, entry.compressedSize <= directoryStart - dataStart else {
            throw damaged("runs past the archive's data (truncated or damaged archive?)")
        }
        let raw = try bytes(dataStart, Int(entry.compressedSize))
        let data = entry.method == 0 ? raw
            : try Zlib.inflate(raw, limit: Int(entry.uncompressedSize), tooLarge: damaged("is larger than it says"),
                               damaged: { damaged("does not inflate (truncated or damaged archive?): \($0)") })
        guard UInt64(data.count) == entry.uncompressedSize else {
            throw damaged("is truncated (\(data.count) of \(entry.uncompressedSize) bytes)")
        }
        guard data.crc32(checksum: 0) == entry.checksum else { throw damaged("is damaged (CRC-32 mismatch)") }
        return data
    }
}

private extension Data {
    /// Little-endian integers at `offset` bytes from `startIndex`.
    func u16(_ offset: Int) -> UInt16 {
        let s = startIndex + offset
        return UInt16(self[s]) | UInt16(self[s + 1]) << 8
    }
    func u32(_ offset: Int) -> UInt32 { UInt32(u16(offset)) | UInt32(u16(offset + 2)) << 16 }
    func u64(_ offset: Int) -> UInt64 { UInt64(u32(offset)) | UInt64(u32(offset + 4)) << 32 }
}
