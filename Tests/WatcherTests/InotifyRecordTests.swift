import Glibc
import Testing
@testable import Watcher

/// The record parser over crafted buffers laid out exactly as the kernel writes them.
@Suite struct InotifyRecordTests {
    /// Header bytes from the imported C struct, so the test follows the real layout.
    private func header(wd: Int32, mask: Int32, cookie: UInt32 = 0, len: UInt32) -> [UInt8] {
        var event = inotify_event()
        event.wd = wd
        event.mask = UInt32(bitPattern: mask)
        event.cookie = cookie
        event.len = len
        return withUnsafeBytes(of: &event) { Array($0) }
    }

    @Test func parsesOverflowThenNamedRecordAndDropsTruncatedTail() {
        let name = Array("song one.mp3".utf8)  // 12 bytes, padded to 16 like the kernel does
        var buffer = header(wd: -1, mask: IN_Q_OVERFLOW, len: 0)
        buffer += header(wd: 1, mask: IN_CLOSE_WRITE, cookie: 7, len: 16) + name + [0, 0, 0, 0]
        buffer += header(wd: 1, mask: IN_DELETE, len: 16) + Array("x.mp3".utf8)  // truncated record

        let records = buffer.withUnsafeBytes { InotifyRecord.parse($0) }

        #expect(MemoryLayout<inotify_event>.size == 16)
        #expect(records == [
            InotifyRecord(wd: -1, mask: UInt32(IN_Q_OVERFLOW)),
            InotifyRecord(wd: 1, mask: UInt32(IN_CLOSE_WRITE), cookie: 7, name: name),
        ])
        #expect(records[0].has(IN_Q_OVERFLOW))
        #expect(!records[1].has(IN_Q_OVERFLOW))
    }

    @Test func keepsNonUTF8NameBytesAndDirectoryFlag() {
        let name: [UInt8] = [0x61, 0xFF, 0x2E, 0x6D, 0x70, 0x33]
        let buffer = header(wd: 3, mask: IN_MOVED_TO | IN_ISDIR, len: 8) + name + [0, 0]
        let records = buffer.withUnsafeBytes { InotifyRecord.parse($0) }
        #expect(records == [InotifyRecord(wd: 3, mask: UInt32(bitPattern: IN_MOVED_TO | IN_ISDIR), name: name)])
        #expect(records[0].has(IN_ISDIR))
    }

    @Test func emptyAndShortBuffersYieldNothing() {
        #expect([UInt8]().withUnsafeBytes { InotifyRecord.parse($0) }.isEmpty)
        #expect([UInt8](repeating: 0, count: 15).withUnsafeBytes { InotifyRecord.parse($0) }.isEmpty)
    }
}
