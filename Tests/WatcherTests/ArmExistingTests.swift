import Foundation
import Glibc
import Testing
@testable import Watcher

private typealias T = WatcherTestSupport

/// Files already in the folder (start-up, overflow rescans) go through the same completeness
/// rule as new arrivals: a settle period, and no process holding them open for writing.
@Suite struct ArmExistingTests {
    @Test func existingFilesAreReadyOnlyAfterTheSettlePeriod() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        try T.writeFile(folder + "/a.wav")
        try FileManager.default.createDirectory(atPath: folder + "/sub", withIntermediateDirectories: false)
        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(300))
        let started = ContinuousClock.now
        let immediate = try watcher.armExisting()
        #expect(immediate == [.ignored("sub", .directory)])
        let events = try T.collect(watcher, limit: .seconds(5)) { $0.contains(.ready("a.wav")) }
        #expect(T.readyNames(events) == ["a.wav"])
        #expect(ContinuousClock.now - started >= .milliseconds(300))
        // Armed again while nothing changed: still one report per settle.
        #expect(try watcher.armExisting().count == 1)
    }

    /// Why (2) of the job-semantics issue: a copy under way when the daemon starts (or during
    /// an overflow rescan) is not complete, even if it pauses for longer than the settle time.
    @Test func aFileOpenForWritingByAnotherProcessIsNotReady() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        try T.writeFile(folder + "/held.wav")
        // Another process opens it for appending and sits on it without writing.
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/bin/sh")
        writer.arguments = ["-c", "exec 3>>\"$0\"; sleep 1.5", folder + "/held.wav"]
        try writer.run()
        let identity = try #require(FileSnapshot.lstat(folder: Array(folder.utf8), name: FileName("held.wav"))?.identity)
        #expect(T.waitFor(seconds: 1) { OpenWriters.openForWriting([identity]) == [identity] })

        let watcher = try FolderWatcher(path: folder, settle: .milliseconds(200))
        _ = try watcher.armExisting()
        let whileHeld = try T.collect(watcher, for: .milliseconds(800))
        #expect(T.readyNames(whileHeld).isEmpty, "reported ready while a writer had it open")
        writer.waitUntilExit()
        let after = try T.collect(watcher, limit: .seconds(5)) { $0.contains(.ready("held.wav")) }
        #expect(T.readyNames(after) == ["held.wav"])
        #expect(OpenWriters.openForWriting([identity]).isEmpty)
    }

    @Test func readersDoNotCountAsWriters() throws {
        let folder = try T.makeFolder()
        defer { T.remove(folder) }
        try T.writeFile(folder + "/read.wav")
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/bin/sh")
        reader.arguments = ["-c", "exec 3<\"$0\"; sleep 1", folder + "/read.wav"]
        try reader.run()
        defer { reader.waitUntilExit() }
        Thread.sleep(forTimeInterval: 0.2)
        let identity = try #require(FileSnapshot.lstat(folder: Array(folder.utf8), name: FileName("read.wav"))?.identity)
        #expect(OpenWriters.openForWriting([identity]).isEmpty)
    }
}

extension WatcherTestSupport {
    /// Polls `condition` every 20 ms for up to `seconds`.
    static func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }
}
