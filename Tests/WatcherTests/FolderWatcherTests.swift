import Foundation
import Glibc
import Testing
@testable import Watcher

private typealias T = WatcherTestSupport

/// The watcher against real inotify on private temporary folders.
@Suite struct FolderWatcherTests {
    @Test func cpStyleCopyIsReadyOnceAfterSettle() throws {
        let folder = try T.makeFolder()
        let outside = try T.makeFolder()
        defer { T.remove(folder); T.remove(outside) }
        try T.writeFile(outside + "/song.mp3", count: 300_000)
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(300))

        try T.run("/bin/cp", ["--", outside + "/song.mp3", folder + "/song.mp3"])
        let copied = T.clock.now
        let events = try T.collect(watcher, grace: .milliseconds(700)) { !$0.isEmpty }

        #expect(events.map(\.event) == [.ready("song.mp3")])
        // Not before the settle period has passed since the copy finished.
        #expect(events[0].at >= copied.advanced(by: .milliseconds(290)))
        #expect(T.fileSize(folder + "/song.mp3") == 300_000)
    }

    @Test func slowWriterInSeveralCyclesIsReadyOnceAfterItStops() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        // Generous against scheduling delays on a loaded machine: gaps are 250 ms.
        let settle = Duration.milliseconds(800)
        let watcher = try FolderWatcher(path: folder, settle: settle)
        let path = folder + "/slow.flac"
        let finished = Box<ContinuousClock.Instant?>(nil)

        // 9 open/append/close cycles 250 ms apart: about 2 s of writing, gaps below the settle.
        let done = Thread.start {
            for _ in 0..<9 {
                try? T.appendFile(path, count: 10_000)
                Thread.sleep(forTimeInterval: 0.25)
            }
            try? T.appendFile(path, count: 10_000)
            finished.value = T.clock.now
        }
        let events = try T.collect(watcher, limit: .seconds(10), grace: .seconds(1)) { !$0.isEmpty }
        done.wait()

        #expect(events.map(\.event) == [.ready("slow.flac")])
        let end = try #require(finished.value)
        #expect(events[0].at >= end.advanced(by: settle))
        #expect(T.fileSize(path) == 100_000)
    }

    @Test func writerThatReopensAndKeepsWritingIsNotReportedEarly() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let settle = Duration.milliseconds(600)
        let watcher = try FolderWatcher(path: folder, settle: settle)
        let path = folder + "/long.wav"
        let finished = Box<ContinuousClock.Instant?>(nil)

        // A first close, then one long open session (no close, so no inotify event) for
        // ~1.5 s, far longer than the settle period: only the snapshot check can tell.
        let done = Thread.start {
            try? T.writeFile(path, count: 1000)
            try? T.withNamedFile(Array(path.utf8), flags: O_WRONLY | O_APPEND) { fd in
                for _ in 0..<15 {
                    Thread.sleep(forTimeInterval: 0.1)
                    try T.writeAll(fd, count: 1000)
                }
            }
            finished.value = T.clock.now
        }
        let events = try T.collect(watcher, limit: .seconds(10), grace: .seconds(1)) { !$0.isEmpty }
        done.wait()

        #expect(events.map(\.event) == [.ready("long.wav")])
        let end = try #require(finished.value)
        #expect(events[0].at >= end.advanced(by: settle))
    }

    @Test func mvFromOutsideIsReady() throws {
        let folder = try T.makeFolder()
        let outside = try T.makeFolder()
        defer { T.remove(folder); T.remove(outside) }
        try T.writeFile(outside + "/track.ogg")
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(200))

        try T.run("/bin/mv", ["--", outside + "/track.ogg", folder + "/track.ogg"])
        let events = try T.collect(watcher, grace: .milliseconds(500)) { !$0.isEmpty }

        #expect(events.map(\.event) == [.ready("track.ogg")])
    }

    @Test func partialDownloadRenamedToFinalNameIsReadyOnlyUnderFinalName() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(200))

        try T.writeFile(folder + "/song.mp3.part", count: 50_000)
        try T.appendFile(folder + "/song.mp3.part", count: 50_000)
        try T.rename(folder + "/song.mp3.part", folder + "/song.mp3")
        let events = try T.collect(watcher, grace: .milliseconds(500)) { !$0.isEmpty }

        // No ready and no removal for the .part name.
        #expect(events.map(\.event) == [.ready("song.mp3")])
    }

    @Test func hiddenAndTemporaryNamesAreIgnored() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(150))

        for name in [".hidden.mp3", "a.crdownload", "b.TMP", "c.mp3~", ".c.mp3.swp", "d.flac.!qB",
                     "e.download", "f.temp", "g.partial", "h.opdownload", "i.Part"] {
            try T.writeFile(folder + "/" + name)
        }
        try T.rename(folder + "/b.TMP", folder + "/b2.tmp")
        try FileManager.default.removeItem(atPath: folder + "/a.crdownload")
        #expect(try T.collect(watcher, for: .milliseconds(600)).isEmpty)

        // rsync style: a hidden temporary renamed to the final name at the end.
        try T.writeFile(folder + "/.song.flac.Ab12Cd", count: 20_000)
        try T.rename(folder + "/.song.flac.Ab12Cd", folder + "/song.flac")
        let events = try T.collect(watcher, grace: .milliseconds(400)) { !$0.isEmpty }
        #expect(events.map(\.event) == [.ready("song.flac")])
    }

    @Test func subfoldersAreIgnored() throws {
        let folder = try T.makeFolder()
        let outside = try T.makeFolder()
        defer { T.remove(folder); T.remove(outside) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(150))

        try FileManager.default.createDirectory(atPath: folder + "/album", withIntermediateDirectories: false)
        try T.writeFile(folder + "/album/track1.mp3")
        try FileManager.default.createDirectory(atPath: outside + "/moved", withIntermediateDirectories: false)
        try T.writeFile(outside + "/moved/track2.mp3")
        try T.rename(outside + "/moved", folder + "/moved")
        try FileManager.default.removeItem(atPath: folder + "/album")
        try T.rename(folder + "/moved", outside + "/back")

        // Each folder appearing is reported once as ignored; nothing inside them ever is.
        #expect(try T.collect(watcher, for: .milliseconds(700)).map(\.event)
                == [.ignored("album", .directory), .ignored("moved", .directory)])
    }

    @Test func symlinkCreatedInPlaceIsReportedAsIgnored() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(150))
        #expect(symlink("/etc/passwd", folder + "/link.wav") == 0)
        #expect(try T.collect(watcher) { !$0.isEmpty }.map(\.event) == [.ignored("link.wav", .symlink)])
    }

    @Test func deleteIsReportedAsRemoved() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(150))
        try T.writeFile(folder + "/gone.mp3")
        #expect(try T.collect(watcher) { !$0.isEmpty }.map(\.event) == [.ready("gone.mp3")])

        try FileManager.default.removeItem(atPath: folder + "/gone.mp3")
        #expect(try T.collect(watcher, grace: .milliseconds(300)) { !$0.isEmpty }.map(\.event) == [.removed("gone.mp3")])
    }

    @Test func deleteBeforeSettleCancelsReady() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(300))
        try T.writeFile(folder + "/brief.mp3")
        try FileManager.default.removeItem(atPath: folder + "/brief.mp3")

        #expect(try T.collect(watcher, for: .milliseconds(800)).map(\.event) == [.removed("brief.mp3")])
    }

    @Test func renameInsideFolderRemovesOldAndReadiesNewName() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(150))
        try T.writeFile(folder + "/old name.mp3")
        #expect(try T.collect(watcher) { !$0.isEmpty }.map(\.event) == [.ready("old name.mp3")])

        try T.rename(folder + "/old name.mp3", folder + "/new name.mp3")
        let events = try T.collect(watcher, grace: .milliseconds(300)) { $0.contains(.ready("new name.mp3")) }
        #expect(events.map(\.event) == [.removed("old name.mp3"), .ready("new name.mp3")])
    }

    @Test func awkwardNamesWork() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(200))
        let names = [
            "my song (live).mp3", "  two  spaces .wav", "Björk – Jóga.flac", "日本語の歌.ogg", "🎸.m4a",
            "it's \"quoted\" `x` $(y).mp3", "-rf.mp3", "--help.flac", "line\nbreak.mp3", "back\\slash.mp3",
            "Beyonc\u{E9}.mp3", "Beyonce\u{301}.mp3",  // NFC and NFD: two different files on Linux
        ]
        for name in names { try T.writeFile(folder + "/" + name) }
        let events = try T.collect(watcher, grace: .milliseconds(400)) {
            $0.count >= names.count
        }

        let ready = T.readyNames(events)
        #expect(events.count == names.count)
        #expect(Set(ready.map { Array($0.utf8) }) == Set(names.map { Array($0.utf8) }))
        for name in ready { #expect(T.fileSize(folder + "/" + name) == 4096) }
    }

    @Test func undecodableNameIsReportedAsIgnored() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(150))
        try T.writeFile(in: folder, nameBytes: Array("bad".utf8) + [0xFF, 0xFE] + Array(".mp3".utf8))

        let events = try T.collect(watcher, grace: .milliseconds(300)) { !$0.isEmpty }
        #expect(events.map(\.event) == [.ignored("bad\u{FFFD}\u{FFFD}.mp3", .undecodableName)])
    }

    @Test func symlinkMovedInIsIgnoredNotFollowed() throws {
        let folder = try T.makeFolder()
        let outside = try T.makeFolder()
        defer { T.remove(folder); T.remove(outside) }
        try T.writeFile(outside + "/real.mp3")
        try FileManager.default.createSymbolicLink(atPath: outside + "/link.mp3", withDestinationPath: outside + "/real.mp3")
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(150))

        try T.rename(outside + "/link.mp3", folder + "/link.mp3")
        let events = try T.collect(watcher, grace: .milliseconds(300)) { !$0.isEmpty }
        #expect(events.map(\.event) == [.ignored("link.mp3", .symlink)])
    }

    @Test func idleWaitTimesOutEmptyWithoutSpinning() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder)

        let cpuBefore = T.threadCPUTime()
        let start = T.clock.now
        let events = try watcher.next(timeout: .seconds(1))
        let elapsed = start.duration(to: T.clock.now)
        let cpu = T.threadCPUTime() - cpuBefore

        #expect(events.isEmpty)
        #expect(elapsed >= .seconds(1))
        #expect(elapsed < .milliseconds(1500))
        #expect(cpu < .milliseconds(50), "spent \(cpu) of CPU while idle")
    }

    @Test func settlingWaitDoesNotSpin() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .seconds(1))
        try T.writeFile(folder + "/wait.mp3")

        let cpuBefore = T.threadCPUTime()
        let events = try T.collect(watcher) { !$0.isEmpty }
        let cpu = T.threadCPUTime() - cpuBefore

        #expect(events.map(\.event) == [.ready("wait.mp3")])
        #expect(cpu < .milliseconds(50), "spent \(cpu) of CPU while settling")
    }

    @Test func zeroTimeoutReturnsImmediately() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder)
        let start = T.clock.now
        #expect(try watcher.next(timeout: .zero).isEmpty)
        #expect(start.duration(to: T.clock.now) < .milliseconds(500))
    }

    @Test(arguments: ["rmdir", "rename"])
    func removingOrRenamingTheFolderReportsFolderGone(how: String) throws {
        let parent = try T.makeFolder()
        defer { T.remove(parent) }
        let folder = parent + "/input"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(150))
        try T.writeFile(folder + "/pending.mp3")

        if how == "rmdir" {
            try FileManager.default.removeItem(atPath: folder)
        } else {
            try T.rename(folder, parent + "/elsewhere")
        }
        let events = try T.collect(watcher) { $0.contains(.folderGone) }.map(\.event)

        #expect(events.last == .folderGone)
        #expect(events.filter { $0 == .folderGone }.count == 1)
        #expect(!events.contains(.ready("pending.mp3")))
        // Finished for good: the next call answers at once.
        let start = T.clock.now
        #expect(try watcher.next(timeout: .seconds(5)) == [.folderGone])
        #expect(start.duration(to: T.clock.now) < .milliseconds(500))
    }

    @Test func interruptWakesABlockedWait() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder)
        let interrupter = watcher.interrupter

        let done = Thread.start {
            Thread.sleep(forTimeInterval: 0.2)
            interrupter.interrupt()
        }
        let start = T.clock.now
        #expect(try watcher.next(timeout: nil).isEmpty)
        #expect(start.duration(to: T.clock.now) < .seconds(2))
        done.wait()

        // An interrupt while nobody waits is not lost; afterwards waits block again.
        interrupter.interrupt()
        interrupter.interrupt()
        let again = T.clock.now
        #expect(try watcher.next(timeout: .seconds(5)).isEmpty)
        #expect(again.duration(to: T.clock.now) < .seconds(1))
        let blocked = T.clock.now
        #expect(try watcher.next(timeout: .milliseconds(200)).isEmpty)
        #expect(blocked.duration(to: T.clock.now) >= .milliseconds(200))
    }

    @Test func initFailsWithErrnoOperationAndPath() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let missing = folder + "/nope"
        let error = try #require(throws: WatcherError.self) { try FolderWatcher(path: missing) }
        #expect(error == WatcherError(errnoCode: ENOENT, operation: "inotify_add_watch", path: missing))
        #expect(error.description.contains(missing))

        try T.writeFile(folder + "/file.mp3")
        let notFolder = try #require(throws: WatcherError.self) { try FolderWatcher(path: folder + "/file.mp3") }
        #expect(notFolder.errnoCode == ENOTDIR)
    }

    @Test func nextAfterCloseThrows() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder)
        watcher.close()
        watcher.close()
        let error = try #require(throws: WatcherError.self) { try watcher.next(timeout: .zero) }
        #expect(error.errnoCode == EBADF)
    }

    @Test func overflowRecordAsksForRescanAndWatchingGoesOn() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(100))

        let overflow = InotifyRecord(wd: -1, mask: UInt32(IN_Q_OVERFLOW))
        #expect(watcher.ingest([overflow, overflow], now: T.clock.now) == [.rescanNeeded])

        try T.writeFile(folder + "/after.mp3")
        #expect(try T.collect(watcher) { !$0.isEmpty }.map(\.event) == [.ready("after.mp3")])
    }
}
