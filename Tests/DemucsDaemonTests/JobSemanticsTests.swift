import AudioIO
import Foundation
import GRDB
import JobStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The job semantics of the real `demucsd`, each case one way the daemon used to hand out wrong
/// stems, separate a file twice or lose it: a replaced input and the dedup that pointed at its
/// old folder, a restart in the middle of a copy, cancel + retry of a running job, a database
/// held locked by another process, and a storm of SIGHUPs.
extension DaemonEndToEnd {
    @Suite struct JobSemantics {
        /// Why (1): `a.wav` replaced with new content gets its new stems in folder `a`; a later
        /// `b.wav` with the *original* content must get the original song's stems, not the
        /// stems now in `a`.
        @Test func replacedInputNeverLendsItsNewStemsToTheOldContent() throws {
            // No random shift: separating the same content twice gives the same stems.
            let daemon = try DaemonHarness(config: DaemonHarness.quickConfig + "[separation]\nshifts = 0\n")
            defer { daemon.stop() }
            let original = daemon.root + "/original.wav", replacement = daemon.root + "/replacement.wav"
            let frames = try TestAudio.write(original, seconds: 2, seed: 101)
            try TestAudio.write(replacement, seconds: 2, seed: 202)
            try daemon.startAndWaitReady()

            try shell("/bin/cp", [original, daemon.input + "/a.wav"])
            try daemon.waitUntilDone(["a.wav"])
            let originalVocals = try AudioDecoder.decode(path: daemon.output + "/a/vocals.wav").channels

            // Replace a.wav with another song: its folder gets the new song's stems.
            try shell("/bin/cp", [replacement, daemon.input + "/a.wav"])
            try daemon.waitForJobs("the replaced a.wav to be done") { jobs in
                jobs.filter { $0.inputName == "a.wav" && $0.state == .done }.count == 2
            }
            let replacedVocals = try AudioDecoder.decode(path: daemon.output + "/a/vocals.wav").channels
            let differs = replacedVocals != originalVocals
            #expect(differs, "the replacement is another song")

            // The original content under a new name: its stems are the original song's.
            try shell("/bin/cp", [original, daemon.input + "/b.wav"])
            try daemon.waitUntilDone(["b.wav"])
            try daemon.expectCompleteOutput("b", frames: frames)
            let bVocals = try AudioDecoder.decode(path: daemon.output + "/b/vocals.wav").channels
            let same = bVocals == originalVocals
            #expect(same, "b.wav was given the stems of another song")
            #expect(daemon.stop() == 0)
        }

        /// Why (2): the start-up scan enqueued files without the settle rule, so a song still
        /// being copied in when the daemon started was separated half-written (and then again
        /// when the copy finished). It must wait for the writer, and run once, whole.
        @Test func restartDuringASlowCopySeparatesTheWholeFileOnce() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            let source = daemon.root + "/song.wav"
            let frames = try TestAudio.write(source, seconds: 3, seed: 303)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: source))
            try FileManager.default.createDirectory(atPath: daemon.input, withIntermediateDirectories: true)

            // The copy starts while the daemon is down and goes on for ~4 s after it starts.
            let fd = open(daemon.input + "/song.wav", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            try #require(fd >= 0)
            let chunks = 20
            let chunkSize = (bytes.count + chunks - 1) / chunks
            func writeChunk(_ k: Int) {
                let range = (k * chunkSize)..<min(bytes.count, (k + 1) * chunkSize)
                let written = bytes[range].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                #expect(written == range.count)
            }
            writeChunk(0)
            try daemon.startAndWaitReady()
            for k in 1..<chunks {
                Thread.sleep(forTimeInterval: 0.2)
                writeChunk(k)
                let early = try daemon.jobs(named: "song.wav")
                #expect(early.isEmpty, "a job was queued while the file was still being written: \(early.map(\.state))")
            }
            close(fd)

            let jobs = try daemon.waitUntilDone(["song.wav"])
            Thread.sleep(forTimeInterval: 1)
            let rows = try daemon.jobs(named: "song.wav")
            #expect(rows.count == 1, "one job for the file: \(rows.map { "\($0.state) \($0.inputSize)" })")
            #expect(jobs.first { $0.inputName == "song.wav" }?.inputSize == Int64(bytes.count))
            try daemon.expectCompleteOutput("song", frames: frames)
            #expect(daemon.stop() == 0)
        }

        /// Why (4): cancel then retry of a running job let the old worker run on to the end
        /// (and publish) beside the retried job: nothing told it its work was void. An operator
        /// cancels and retries at once (both in one transaction here, so the worker cannot
        /// check in between): the old attempt must stop at its next segment, publish nothing,
        /// and the retried job start over at once.
        @Test func cancelThenRetryOfARunningJobStopsTheOldAttempt() throws {
            let daemon = try DaemonHarness(config: DaemonHarness.oneThreadConfig)
            defer { daemon.stop() }
            let frames = try TestAudio.write(daemon.root + "/long.wav", seconds: 60, seed: 404)
            try daemon.startAndWaitReady()
            try shell("/bin/cp", [daemon.root + "/long.wav", daemon.input + "/long.wav"])
            let running = try daemon.waitForJobs("long.wav to make progress") { jobs in
                jobs.contains { $0.inputName == "long.wav" && $0.state == .running && $0.progress > 0.05 }
            }
            let id = try #require(running.first { $0.inputName == "long.wav" }).id

            // What `demucsctl cancel ID` and `demucsctl retry ID` write, back to back.
            let operator_ = try DatabaseQueue(path: daemon.database)
            try operator_.inTransaction(.immediate) { db in
                try db.execute(sql: "UPDATE job SET state = 'cancelled', finishedAt = 1 WHERE id = ?", arguments: [id])
                try db.execute(sql: """
                    UPDATE job SET state = 'queued', attempts = 0, error = NULL, progress = 0, startedAt = NULL,
                                   finishedAt = NULL WHERE id = ? AND state = 'cancelled'
                    """, arguments: [id])
                return .commit
            }
            try operator_.close()
            // The old attempt stops within a segment; the retry runs again from the start long
            // before the old attempt could have finished the minute of audio.
            try daemon.waitForJobs("the retried job to run again from the start", timeout: 4) { jobs in
                jobs.contains { $0.id == id && $0.state == .running }
            }
            let done = try daemon.waitUntilDone(["long.wav"], timeout: 180)
            #expect(done.filter { $0.inputName == "long.wav" }.count == 1)
            try daemon.expectCompleteOutput("long", frames: frames)
            #expect(!daemon.log.contains("while its stems were being written"), "the old attempt published: \(daemon.log)")
            #expect(daemon.log.contains("published nothing"), "the old attempt did not say it stopped: \(daemon.log)")
            #expect(daemon.entries(daemon.staging).isEmpty)
            #expect(daemon.stop() == 0)
        }

        /// Why (5): an enqueue that met a busy database dropped the file until the next restart.
        /// Another process holds the write lock for longer than the busy timeout while a file
        /// arrives: the job is queued once the lock is gone, nothing is lost.
        @Test func aLockedDatabaseLosesNothing() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            let frames = try TestAudio.write(daemon.root + "/locked.wav", seconds: 2, seed: 505)
            try daemon.startAndWaitReady()

            let holder = try DatabaseQueue(path: daemon.database)
            let released = DispatchSemaphore(value: 0)
            let holding = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                try? holder.inTransaction(.exclusive) { _ in
                    holding.signal()
                    // Longer than the daemon's 5 s busy timeout.
                    Thread.sleep(forTimeInterval: JobStore.busyTimeout + 3)
                    return .commit
                }
                released.signal()
            }
            holding.wait()
            try shell("/bin/cp", [daemon.root + "/locked.wav", daemon.input + "/locked.wav"])
            released.wait()
            try holder.close()

            try daemon.waitUntilDone(["locked.wav"], timeout: 60)
            #expect(try daemon.jobs(named: "locked.wav").count == 1)
            try daemon.expectCompleteOutput("locked", frames: frames)
            #expect(daemon.isRunning)
            #expect(daemon.stop() == 0)
        }

        /// A storm of SIGHUPs while jobs run: the daemon stays up, every file is done once.
        @Test func sighupStormDuringJobs() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            var frames: [String: Int] = [:]
            for k in 0..<3 {
                frames["h\(k)"] = try TestAudio.write(daemon.root + "/h\(k).wav", seconds: 4, seed: 600 + UInt64(k))
            }
            try daemon.startAndWaitReady()
            for k in 0..<3 { try shell("/bin/cp", [daemon.root + "/h\(k).wav", daemon.input + "/h\(k).wav"]) }
            for _ in 0..<40 {
                daemon.signal(SIGHUP)
                Thread.sleep(forTimeInterval: 0.05)
            }
            #expect(daemon.isRunning, "SIGHUP storm killed the daemon; log:\n\(daemon.log)")
            let jobs = try daemon.waitUntilDone(["h0.wav", "h1.wav", "h2.wav"], timeout: 120)
            #expect(jobs.count == 3, "\(jobs.map { "\($0.inputName) \($0.state)" })")
            for (name, n) in frames { try daemon.expectCompleteOutput(name, frames: n) }
            #expect(daemon.stop() == 0)
        }

        /// systemd may send SIGHUP (`systemctl reload`) the moment READY=1 arrives: the daemon
        /// reloads (RELOADING=1, then READY=1 again) instead of dying of the default action.
        @Test func sighupRightAfterReadyIsAReload() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            let socket = daemon.root + "/notify.sock"
            let receiver = try DatagramReceiver(address: socket, timeout: 30)
            try daemon.start(environment: ["NOTIFY_SOCKET": socket])
            var message = ""
            while !message.hasPrefix("READY=1") { message = try receiver.receive() }
            daemon.signal(SIGHUP)
            while !message.hasPrefix("RELOADING=1") { message = try receiver.receive() }
            while !message.hasPrefix("READY=1") { message = try receiver.receive() }
            #expect(daemon.isRunning, "log:\n\(daemon.log)")
            #expect(daemon.stop() == 0)
        }
    }
}
