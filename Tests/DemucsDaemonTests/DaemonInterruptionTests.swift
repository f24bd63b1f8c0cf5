import AudioIO
import Foundation
import JobStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A separation interrupted by kill -9 or by SIGTERM ends done exactly once after a restart, and
/// output/ never shows half a folder.
extension DaemonEndToEnd {
    @Suite struct Interruption {
        /// Long enough that the tiny model on one thread takes several seconds, so the daemon is
        /// surely in the middle of the separation when the signal comes.
        static let longSeconds = 30.0

        /// Drops a long file and waits until its separation has made progress.
        private func startLongJob(_ daemon: DaemonHarness, name: String, seed: UInt64) throws -> Int {
            let frames = try TestAudio.write(daemon.root + "/" + name, seconds: Self.longSeconds, seed: seed)
            try daemon.startAndWaitReady()
            try shell("/bin/cp", [daemon.root + "/" + name, daemon.input + "/" + name])
            try daemon.waitForJobs("\(name) to make progress") { jobs in
                jobs.contains { $0.inputName == name && $0.state == .running && $0.progress > 0 }
            }
            // status --json shows it as the current job.
            let (status, _) = try daemon.statusJSON()
            let current = try #require(status["current"] as? [String: Any], "\(status)")
            #expect(current["file"] as? String == name)
            #expect((current["progress"] as? Double ?? 0) > 0)
            return frames
        }

        @Test func killDashNineMidJobThenRestartCompletesItOnce() throws {
            let daemon = try DaemonHarness(config: DaemonHarness.oneThreadConfig)
            defer { daemon.stop() }
            let frames = try startLongJob(daemon, name: "long.wav", seed: 50)

            daemon.killHard()
            let running = try daemon.jobs(named: "long.wav")
            #expect(running.count == 1)
            #expect(running.first?.state == .running, "the row still says running: nobody recorded anything")
            #expect(running.first.map { $0.progress < 1 } == true, "killed after the job finished; make the input longer")
            try daemon.expectAbsentOrComplete("long", frames: frames)
            #expect(!FileManager.default.fileExists(atPath: daemon.output + "/long"), "no output before the job ended")
            // A stale daemon row with a dead pid: status says not running.
            let status = try daemon.ctl(["status"])
            #expect(status.status == 1)
            #expect(status.stdout.contains("not running"), "\(status.stdout)")

            try daemon.startAndWaitReady()
            let jobs = try daemon.waitUntilDone(["long.wav"], timeout: 120)
            let rows = jobs.filter { $0.inputName == "long.wav" }
            #expect(rows.count == 1, "one job for the file, done once")
            #expect(rows.first?.state == .done)
            #expect(rows.first?.attempts == 2, "the killed attempt counts")
            try daemon.expectCompleteOutput("long", frames: frames)
            #expect(daemon.entries(daemon.staging).isEmpty, "the killed attempt's staging folder was cleared")
            #expect(daemon.log.contains("were running when the daemon last stopped"))
            #expect(daemon.stop() == 0)
        }

        @Test func sigtermMidJobRequeuesItAndExitsCleanly() throws {
            let daemon = try DaemonHarness(config: DaemonHarness.oneThreadConfig)
            defer { daemon.stop() }
            let frames = try startLongJob(daemon, name: "long.flac", seed: 60)

            let sent = Date()
            daemon.signal(SIGTERM)
            let status = daemon.waitForExit(timeout: 10)
            let took = Date().timeIntervalSince(sent)
            #expect(status == 0, "exit status \(String(describing: status)) after \(took) s; log:\n\(daemon.log)")
            #expect(took < 10)

            let stopped = try daemon.jobs(named: "long.flac")
            #expect(stopped.count == 1)
            #expect(stopped.first?.state == .queued, "the interrupted job waits in the queue")
            #expect(stopped.first?.attempts == 0, "a clean stop does not count as an attempt")
            #expect(!FileManager.default.fileExists(atPath: daemon.output + "/long"))
            #expect(daemon.entries(daemon.staging).isEmpty, "a clean stop removes its staging folder")
            let (json, run) = try daemon.statusJSON()
            #expect(run.status == 1)
            #expect((json["daemon"] as? [String: Any])?["running"] as? Bool == false)
            #expect((json["counts"] as? [String: Int])?["queued"] == 1)

            try daemon.startAndWaitReady()
            let jobs = try daemon.waitUntilDone(["long.flac"], timeout: 120)
            #expect(jobs.filter { $0.inputName == "long.flac" }.count == 1)
            #expect(jobs.first { $0.inputName == "long.flac" }?.attempts == 1)
            try daemon.expectCompleteOutput("long", frames: frames)
            #expect(daemon.entries(daemon.staging).isEmpty)
            #expect(daemon.stop() == 0)
        }
    }
}
