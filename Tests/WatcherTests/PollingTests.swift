import Foundation
import Glibc
import Testing
@testable import Watcher

private typealias T = WatcherTestSupport

/// The polling watch for folders on network filesystems, where inotify does not see other
/// hosts' writes: a scan every interval, the same settle rule. (That it holds no inotify
/// instance is checked on the daemon's process, PollingWatchEndToEndTests.)
@Suite struct PollingTests {
    @Test func aPollingWatchSeesNewChangedAndRemovedFilesWithoutInotify() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        try T.writeFile(folder + "/old.wav")
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(200), mode: .poll(every: .milliseconds(300)))
        _ = try watcher.armExisting()
        let first = try T.collect(watcher, limit: .seconds(5)) { $0.contains(.ready("old.wav")) }
        #expect(T.readyNames(first) == ["old.wav"])

        let started = ContinuousClock.now
        try T.writeFile(folder + "/new.wav")
        try FileManager.default.createDirectory(atPath: folder + "/sub", withIntermediateDirectories: false)
        let second = try T.collect(watcher, limit: .seconds(5), grace: .milliseconds(700)) { $0.contains(.ready("new.wav")) }
        #expect(T.readyNames(second) == ["new.wav"], "the unchanged old.wav is not reported again: \(second.map(\.event))")
        #expect(second.map(\.event).contains(.ignored("sub", .directory)))
        #expect(ContinuousClock.now - started >= .milliseconds(200), "the settle rule holds")

        try T.appendFile(folder + "/new.wav", count: 100)
        let third = try T.collect(watcher, limit: .seconds(5)) { $0.contains(.ready("new.wav")) }
        #expect(T.readyNames(third) == ["new.wav"], "a changed file is reported again")

        unlink(folder + "/old.wav")
        let fourth = try T.collect(watcher, limit: .seconds(5)) { $0.contains(.removed("old.wav")) }
        #expect(fourth.map(\.event).contains(.removed("old.wav")))
    }

    /// A file still growing between scans is reported once it stopped changing.
    @Test func aFileStillBeingWrittenWaitsUntilItSettles() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(300), mode: .poll(every: .milliseconds(100)))
        let writer = Thread.start {
            for _ in 0..<8 {
                try? T.appendFile(folder + "/slow.wav", count: 1000)
                usleep(150_000)
            }
        }
        let whileWriting = try T.collect(watcher, for: .milliseconds(900))
        #expect(T.readyNames(whileWriting).isEmpty, "reported while still growing")
        writer.wait()
        let after = try T.collect(watcher, limit: .seconds(5)) { $0.contains(.ready("slow.wav")) }
        #expect(T.readyNames(after) == ["slow.wav"])
        #expect(T.fileSize(folder + "/slow.wav") == 8000)
    }

    @Test func theFolderGoingAwayIsReported() throws {
        let folder = try T.makeFolder()
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(100), mode: .poll(every: .milliseconds(100)))
        T.remove(folder)
        let events = try T.collect(watcher, limit: .seconds(3)) { $0.contains(.folderGone) }
        #expect(events.map(\.event).contains(.folderGone))
    }

    /// The inotify watch's safety net: a rescan finds what changed without an event, and only that.
    @Test func aRescanArmsOnlyWhatChangedSinceItWasReported() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(100))
        try T.writeFile(folder + "/a.wav")
        let first = try T.collect(watcher, limit: .seconds(5)) { $0.contains(.ready("a.wav")) }
        #expect(T.readyNames(first) == ["a.wav"])
        #expect(try watcher.rescan().isEmpty)
        #expect(T.readyNames(try T.collect(watcher, for: .milliseconds(300))).isEmpty, "nothing changed: nothing again")
        // Changed behind inotify's back (as another host's write on NFS would be): its times move.
        try T.setModificationTime(folder + "/a.wav", seconds: 1_000_000)
        _ = try T.collect(watcher, for: .milliseconds(300))
        _ = try watcher.rescan()
        let after = try T.collect(watcher, limit: .seconds(5)) { $0.contains(.ready("a.wav")) }
        #expect(T.readyNames(after) == ["a.wav"])
    }

    /// statfs magic numbers: network filesystems are told apart from local ones.
    @Test func networkFileSystemsAreRecognisedByTheirMagicNumber() {
        #expect(NetworkFileSystem.name(magic: 0x6969) == "NFS")
        #expect(NetworkFileSystem.name(magic: 0xFF53_4D42) == "CIFS")
        #expect(NetworkFileSystem.name(magic: Int(Int32(bitPattern: 0xFF53_4D42))) == "CIFS", "a sign-extended f_type")
        #expect(NetworkFileSystem.name(magic: 0xFE53_4D42) == "SMB2")
        #expect(NetworkFileSystem.name(magic: 0x517B) == "SMB")
        #expect(NetworkFileSystem.name(magic: 0xEF53) == nil, "ext4")
        #expect(NetworkFileSystem.name(magic: 0x0102_1994) == nil, "tmpfs")
        #expect(NetworkFileSystem.name(magic: 0x5846_5342) == nil, "XFS")
        #expect(NetworkFileSystem.name(of: NSTemporaryDirectory()) == nil, "this machine's temporary folder is local")
    }
}
