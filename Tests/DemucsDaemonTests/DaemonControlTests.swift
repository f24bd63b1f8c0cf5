import AudioIO
import Foundation
import JobStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `demucsctl cancel` and `retry` against a working daemon: the state moves, the exit code says
/// whether it did.
extension DaemonEndToEnd {
    @Suite struct Control {
        @Test func cancelAndRetryThroughDemucsctl() throws {
            let daemon = try DaemonHarness(config: DaemonHarness.oneThreadConfig + "workers = 1\n")
            defer { daemon.stop() }
            try TestAudio.write(daemon.root + "/long.wav", seconds: 30, seed: 90)
            let shortFrames = try TestAudio.write(daemon.root + "/short.wav", seconds: 1, seed: 91)
            try daemon.startAndWaitReady()

            // The long file occupies the one worker; the short one waits behind it.
            try shell("/bin/cp", [daemon.root + "/long.wav", daemon.input + "/long.wav"])
            try daemon.waitForJobs("long.wav to run") { $0.contains { $0.inputName == "long.wav" && $0.state == .running } }
            try shell("/bin/cp", [daemon.root + "/short.wav", daemon.input + "/short.wav"])
            var jobs = try daemon.waitForJobs("short.wav to be queued") { $0.contains { $0.inputName == "short.wav" } }
            let long = try #require(jobs.first { $0.inputName == "long.wav" })
            let short = try #require(jobs.first { $0.inputName == "short.wav" })
            try #require(short.state == .queued, "short.wav is \(short.state): the long job ended too soon")

            // Cancel the queued job: exit 0, state cancelled; a second cancel has nothing to do.
            var run = try daemon.ctl(["cancel", String(short.id)])
            #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
            #expect(run.stdout.contains("cancelled"))
            #expect(try daemon.jobs(named: "short.wav").map(\.state) == [.cancelled])
            run = try daemon.ctl(["cancel", String(short.id)])
            #expect(run.status == 1)
            #expect(run.stderr.contains("cancelled"), "\(run.stderr)")
            // Unknown ids.
            #expect(try daemon.ctl(["cancel", "9999"]).status == 1)
            #expect(try daemon.ctl(["retry", "9999"]).status == 1)

            // Cancel the running job: it stops at its next segment and frees the worker.
            run = try daemon.ctl(["cancel", String(long.id)])
            #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
            #expect(run.stdout.contains("next segment"))
            try daemon.waitForJobs("the worker to let go of long.wav", timeout: 30) { _ in
                daemon.log.contains("job cancelled or retried while running: long.wav")
            }
            #expect(try daemon.jobs(named: "long.wav").map(\.state) == [.cancelled])
            #expect(!FileManager.default.fileExists(atPath: daemon.output + "/long"), "a cancelled job publishes nothing")
            #expect(daemon.entries(daemon.staging).isEmpty)
            Thread.sleep(forTimeInterval: 0.5)
            #expect(try daemon.jobs(named: "short.wav").map(\.state) == [.cancelled], "a cancelled job is not taken")
            #expect(!daemon.log.contains("job started: short.wav"))

            // Retry the cancelled short job: queued again, then done.
            run = try daemon.ctl(["retry", String(short.id)])
            #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
            #expect(run.stdout.contains("queued again"))
            // The daemon hears of it without an event: from its heartbeat, within seconds (not
            // when an idle worker's long wait happens to end).
            jobs = try daemon.waitUntilDone(["short.wav"], timeout: 20)
            #expect(jobs.filter { $0.inputName == "short.wav" }.count == 1, "retry reuses the job, it makes no new one")
            try daemon.expectCompleteOutput("short", frames: shortFrames)
            run = try daemon.ctl(["retry", String(short.id)])
            #expect(run.status == 1, "a done job cannot be retried")
            #expect(try daemon.ctl(["cancel", String(short.id)]).status == 1, "a done job cannot be cancelled")

            // A corrupt file fails; retry queues it again (exit 0) and it fails again.
            var random = SystemRandomNumberGenerator()
            try Data((0..<32_768).map { _ in UInt8.random(in: 0...255, using: &random) })
                .write(to: URL(fileURLWithPath: daemon.input + "/broken.wav"))
            jobs = try daemon.waitForJobs("broken.wav to fail") { $0.contains { $0.inputName == "broken.wav" && $0.state == .failed } }
            let broken = try #require(jobs.first { $0.inputName == "broken.wav" })
            let firstFailure = try #require(broken.finishedAt)
            run = try daemon.ctl(["retry", String(broken.id)])
            #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
            jobs = try daemon.waitForJobs("broken.wav to fail again", timeout: 20) { jobs in
                jobs.contains { $0.id == broken.id && $0.state == .failed && ($0.finishedAt ?? 0) > firstFailure }
            }
            let again = try #require(jobs.first { $0.id == broken.id })
            #expect(again.attempts == 1, "retry starts the attempts afresh")
            #expect(again.error?.contains("cannot decode") == true, "\(again.error ?? "")")
            #expect(jobs.filter { $0.inputName == "broken.wav" }.count == 1)

            let (status, _) = try daemon.statusJSON()
            let counts = try #require(status["counts"] as? [String: Int])
            #expect(counts["cancelled"] == 1)
            #expect(counts["done"] == 1)
            #expect(counts["failed"] == 1)
            #expect(counts["queued"] == 0)
            #expect(daemon.stop() == 0)
        }
    }
}
