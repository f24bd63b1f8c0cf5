import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `[watch] poll_seconds`: the daemon finds its files by scanning alone, as it must on NFS or
/// SMB, where inotify never hears of another host's writes.
extension DaemonEndToEnd {
    @Suite struct PollingWatch {
        /// inotify instances process `pid` holds (`anon_inode:inotify` among its descriptors).
        static func inotifyInstances(of pid: Int32) -> Int {
            let folder = "/proc/\(pid)/fd"
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            return fds.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/" + $0)) == "anon_inode:inotify" }.count
        }

        @Test func aPollingDaemonHoldsNoInotifyAndStillFindsItsFiles() throws {
            let daemon = try DaemonHarness(config: DaemonHarness.quickConfig + "[watch]\npoll_seconds = 0.5\n")
            defer { daemon.stop() }
            try daemon.startAndWaitReady()
            #expect(Self.inotifyInstances(of: daemon.pid) == 0, "a polling daemon sees files by its scans only")
            #expect(daemon.log.contains("a scan every 0.5 s ([watch] poll_seconds)"), "\(daemon.log)")
            let frames = try TestAudio.write(daemon.root + "/polled.wav", seconds: 2, seed: 21)
            try shell("/bin/mv", [daemon.root + "/polled.wav", daemon.input + "/polled.wav"])
            try daemon.waitUntilDone(["polled.wav"])
            try daemon.expectCompleteOutput("polled", frames: frames)
            #expect(try daemon.jobs().count == 1)
            #expect(daemon.stop() == 0)

            // The same daemon without the setting watches through inotify.
            try "[jobs]\nsettle_seconds = 0.3\n".write(toFile: try #require(daemon.configPath), atomically: true, encoding: .utf8)
            try daemon.startAndWaitReady()
            #expect(Self.inotifyInstances(of: daemon.pid) == 1)
            #expect(daemon.log.contains("/input: inotify"), "\(daemon.log)")
        }
    }
}
