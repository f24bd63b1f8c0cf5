import Glibc

/// One event record as the kernel queues it, with the name copied out as raw bytes.
///
/// Swift imports `struct inotify_event` without its flexible `name[]` member, so the name has to
/// be read from the byte buffer at `MemoryLayout<inotify_event>.size`, `len` bytes long and
/// NUL-padded to alignment. Parsing is a pure function over a buffer so it can be tested with
/// crafted records (a queue overflow is hard to provoke on purpose).
struct InotifyRecord: Sendable, Equatable {
    /// Watch descriptor; -1 for `IN_Q_OVERFLOW`, which belongs to no watch.
    var wd: Int32
    var mask: UInt32
    /// Pairs `IN_MOVED_FROM` with `IN_MOVED_TO` for one rename; unused here but kept for logging.
    var cookie: UInt32
    /// The entry name inside the watched folder with the NUL padding removed; empty for events
    /// about the folder itself (`IN_DELETE_SELF`, `IN_MOVE_SELF`, `IN_IGNORED`, overflow).
    var name: [UInt8]

    init(wd: Int32, mask: UInt32, cookie: UInt32 = 0, name: [UInt8] = []) {
        self.wd = wd
        self.mask = mask
        self.cookie = cookie
        self.name = name
    }

    /// Whether any of `bits` (an `IN_*` constant) is set.
    func has(_ bits: Int32) -> Bool {
        mask & UInt32(bitPattern: bits) != 0
    }

    static let headerSize = MemoryLayout<inotify_event>.size

    /// Splits a buffer filled by `read(2)` into records.
    ///
    /// The kernel only ever returns whole records; a trailing partial record (which would mean a
    /// corrupt buffer) is dropped rather than read out of bounds.
    static func parse(_ buffer: UnsafeRawBufferPointer) -> [InotifyRecord] {
        var records: [InotifyRecord] = []
        var offset = 0
        let wdOffset = MemoryLayout<inotify_event>.offset(of: \.wd)!
        let maskOffset = MemoryLayout<inotify_event>.offset(of: \.mask)!
        let cookieOffset = MemoryLayout<inotify_event>.offset(of: \.cookie)!
        let lenOffset = MemoryLayout<inotify_event>.offset(of: \.len)!
        while buffer.count - offset >= headerSize {
            let wd = buffer.loadUnaligned(fromByteOffset: offset + wdOffset, as: Int32.self)
            let mask = buffer.loadUnaligned(fromByteOffset: offset + maskOffset, as: UInt32.self)
            let cookie = buffer.loadUnaligned(fromByteOffset: offset + cookieOffset, as: UInt32.self)
            let len = Int(buffer.loadUnaligned(fromByteOffset: offset + lenOffset, as: UInt32.self))
            let nameStart = offset + headerSize
            guard len <= buffer.count - nameStart else { break }
            var name = Array(buffer[nameStart..<(nameStart + len)])
            if let nul = name.firstIndex(of: 0) { name.removeSubrange(nul...) }
            records.append(InotifyRecord(wd: wd, mask: mask, cookie: cookie, name: name))
            offset = nameStart + len
        }
        return records
    }
}
