import Foundation
import Glibc
import Testing
import Watcher

private typealias T = WatcherTestSupport

/// `scan` and `scanEntries` on a folder holding one of every kind of entry.
@Suite struct ScanTests {
    @Test func ordersByModificationTimeThenNameAndReportsKinds() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        func at(_ name: String, _ seconds: Int) throws { try T.setModificationTime(folder + "/" + name, seconds: seconds) }

        try T.writeFile(folder + "/b.mp3"); try at("b.mp3", 2_000_000)
        try T.writeFile(folder + "/a.mp3"); try at("a.mp3", 2_000_000)
        try T.writeFile(folder + "/old.wav"); try at("old.wav", 1_000_000)
        try T.writeFile(folder + "/new.flac"); try at("new.flac", 3_000_000)
        try FileManager.default.createDirectory(atPath: folder + "/sub", withIntermediateDirectories: false)
        try at("sub", 1_500_000)
        try FileManager.default.createSymbolicLink(atPath: folder + "/link.mp3", withDestinationPath: "new.flac")
        try at("link.mp3", 2_500_000)
        #expect(mkfifo(folder + "/pipe", 0o644) == 0)
        try at("pipe", 500_000)
        // Not valid UTF-8; created now, so newer than everything above.
        try T.writeFile(in: folder, nameBytes: [0x62, 0xFF, 0x2E, 0x6D, 0x70, 0x33])
        for ignored in [".hidden.mp3", "x.mp3.part", "y.crdownload"] { try T.writeFile(folder + "/" + ignored) }

        let entries = try FolderWatcher.scanEntries(path: folder)
        #expect(entries.map(\.name) == ["pipe", "old.wav", "sub", "a.mp3", "b.mp3", "link.mp3", "new.flac", "b\u{FFFD}.mp3"])
        #expect(entries.map(\.kind) == [.other, .regular, .directory, .regular, .regular, .symlink, .regular, .undecodableName])
        #expect(try FolderWatcher.scan(path: folder) == ["old.wav", "a.mp3", "b.mp3", "new.flac"])
    }

    @Test func emptyFolderAndMissingFolder() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        #expect(try FolderWatcher.scanEntries(path: folder).isEmpty)
        let error = try #require(throws: WatcherError.self) { try FolderWatcher.scan(path: folder + "/missing") }
        #expect(error == WatcherError(errnoCode: ENOENT, operation: "opendir", path: folder + "/missing"))
    }
}
