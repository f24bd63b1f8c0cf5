import AudioIO
import Foundation
import JobStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real `demucsd` on a temporary data folder with the tiny fixture model: files arriving in
/// the ways users drop them, awkward names, files dropped while it was down, identical content.
extension DaemonEndToEnd {
    @Suite struct Intake {
        /// `cp`, `mv` from a sibling folder (a rename on the same filesystem) and a writer that
        /// takes seconds: each gives exactly one job, complete stems and an empty staging folder.
        @Test func filesArrivingByCopyMoveAndSlowWriterAreSeparatedOnce() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            let elsewhere = daemon.root + "/elsewhere"
            try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
            // The copied file is real music as an MP3 where the shared test audio is present.
            let copied = FileManager.default.fileExists(atPath: E2EPaths.testMP3) ? "copied.mp3" : "copied.wav"
            let copiedFrames: Int
            if copied == "copied.mp3" {
                try FileManager.default.copyItem(atPath: E2EPaths.testMP3, toPath: elsewhere + "/copied.mp3")
                copiedFrames = try AudioDecoder.load(path: E2EPaths.testMP3, sampleRate: 44_100, channels: 2).frameCount
            } else {
                copiedFrames = try TestAudio.write(elsewhere + "/copied.wav", seconds: 2, seed: 1)
            }
            let movedFrames = try TestAudio.write(elsewhere + "/moved.flac", seconds: 2, seed: 2)
            let slowFrames = try TestAudio.write(elsewhere + "/slow.wav", seconds: 2, seed: 3)
            try daemon.startAndWaitReady()

            try shell("/bin/cp", [elsewhere + "/" + copied, daemon.input + "/" + copied])
            try shell("/bin/mv", [elsewhere + "/moved.flac", daemon.input + "/moved.flac"])

            // A slow writer: one open, chunks over about 3 s (ten times the settle time), one close.
            let bytes = try Data(contentsOf: URL(fileURLWithPath: elsewhere + "/slow.wav"))
            let fd = open(daemon.input + "/slow.wav", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            try #require(fd >= 0)
            let chunks = 10
            let chunkSize = (bytes.count + chunks - 1) / chunks
            for k in 0..<chunks {
                let range = (k * chunkSize)..<min(bytes.count, (k + 1) * chunkSize)
                let written = bytes[range].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                #expect(written == range.count)
                Thread.sleep(forTimeInterval: 0.3)
            }
            close(fd)

            let jobs = try daemon.waitUntilDone([copied, "moved.flac", "slow.wav"])
            #expect(jobs.count == 3, "one job per file: \(jobs.map(\.inputName))")
            try daemon.expectCompleteOutput("copied", frames: copiedFrames)
            try daemon.expectCompleteOutput("moved", frames: movedFrames)
            try daemon.expectCompleteOutput("slow", frames: slowFrames)
            #expect(daemon.entries(daemon.staging).isEmpty)

            // Nothing is queued again a little later (a second settle, a late event).
            Thread.sleep(forTimeInterval: 1)
            let later = try daemon.jobs()
            #expect(later.count == 3)
            #expect(later.allSatisfy { $0.state == .done && $0.attempts == 1 })
            #expect(daemon.stop() == 0)
        }

        /// Spaces, Unicode, both quote characters and a leading dash go through the watcher, the
        /// database, the decoder and the output folder name unharmed.
        @Test func awkwardNamesAreProcessed() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            try daemon.startAndWaitReady()
            let names = ["Café – naïve ü.flac", "it's a song.wav", "say \"hi\".wav", "-song.flac", "  two  spaces .wav"]
            var frames: [String: Int] = [:]
            for (i, name) in names.enumerated() {
                frames[name] = try TestAudio.write(daemon.root + "/source-\(i)" + (name.hasSuffix(".flac") ? ".flac" : ".wav"),
                                                   seconds: 1, seed: 10 + UInt64(i))
                // `cp --` so the leading dash is a name, as a careful user would type it.
                try shell("/bin/cp", ["--", daemon.root + "/source-\(i)" + (name.hasSuffix(".flac") ? ".flac" : ".wav"),
                                      daemon.input + "/" + name])
            }
            try daemon.waitUntilDone(names)
            for name in names {
                let folder = String(name[..<name.lastIndex(of: ".")!])
                try daemon.expectCompleteOutput(folder, frames: frames[name]!)
            }
            // demucsctl jobs --json hands the names back byte for byte.
            let run = try daemon.ctl(["jobs", "--json"])
            #expect(run.status == 0)
            let listed = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[String: Any]])
            let files = listed.compactMap { $0["file"] as? String }
            #expect(Set(files.map { Array($0.utf8) }) == Set(names.map { Array($0.utf8) }))
            #expect(listed.allSatisfy { ($0["state"] as? String) == "done" })
            #expect(daemon.entries(daemon.staging).isEmpty)
        }

        /// Files already in input/ when the daemon starts, and files dropped while it is stopped,
        /// are found by the start-up scan; a file already done is not separated again.
        @Test func filesDroppedWhileStoppedAreProcessedAfterStart() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            try FileManager.default.createDirectory(atPath: daemon.input, withIntermediateDirectories: true)
            let firstFrames = try TestAudio.write(daemon.input + "/before-first-start.wav", seconds: 1, seed: 20)
            try daemon.startAndWaitReady()
            try daemon.waitUntilDone(["before-first-start.wav"])
            // An idle daemon stops at once (its watch wait is interrupted, not waited out).
            let stopping = Date()
            #expect(daemon.stop() == 0)
            #expect(Date().timeIntervalSince(stopping) < 3)

            let secondFrames = try TestAudio.write(daemon.root + "/later.wav", seconds: 1, seed: 21)
            try shell("/bin/cp", [daemon.root + "/later.wav", daemon.input + "/dropped-while-stopped.wav"])
            Thread.sleep(forTimeInterval: 0.5)
            #expect(!FileManager.default.fileExists(atPath: daemon.output + "/dropped-while-stopped"))

            try daemon.startAndWaitReady()
            try daemon.waitUntilDone(["dropped-while-stopped.wav"])
            try daemon.expectCompleteOutput("before-first-start", frames: firstFrames)
            try daemon.expectCompleteOutput("dropped-while-stopped", frames: secondFrames)
            Thread.sleep(forTimeInterval: 0.5)
            #expect(try daemon.jobs(named: "before-first-start.wav").count == 1, "the scan must not queue a done file again")
            #expect(try daemon.jobs().count == 2)
        }

        /// The same content under two names: two done jobs, the second with the first's stems.
        @Test func identicalContentReusesStems() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            let frames = try TestAudio.write(daemon.root + "/song.wav", seconds: 2, seed: 30)
            try daemon.startAndWaitReady()
            try shell("/bin/cp", [daemon.root + "/song.wav", daemon.input + "/original.wav"])
            try daemon.waitUntilDone(["original.wav"])
            try shell("/bin/cp", [daemon.root + "/song.wav", daemon.input + "/copy of original.wav"])
            let jobs = try daemon.waitUntilDone(["original.wav", "copy of original.wav"])

            let original = try #require(jobs.first { $0.inputName == "original.wav" })
            let copy = try #require(jobs.first { $0.inputName == "copy of original.wav" })
            #expect(original.reusedFrom == nil)
            #expect(copy.reusedFrom == original.id)
            #expect(copy.contentHash == original.contentHash)
            // `demucsctl status --json` says so too.
            let recent = try daemon.statusJSON().object["recent_done"] as? [[String: Any]] ?? []
            let copyEntry = recent.first { $0["file"] as? String == "copy of original.wav" }
            #expect((copyEntry?["reused_from"] as? NSNumber)?.int64Value == original.id)
            try daemon.expectCompleteOutput("original", frames: frames)
            try daemon.expectCompleteOutput("copy of original", frames: frames)
            for stem in ["drums", "bass", "other", "vocals"] {
                let a = try Data(contentsOf: URL(fileURLWithPath: "\(daemon.output)/original/\(stem).wav"))
                let b = try Data(contentsOf: URL(fileURLWithPath: "\(daemon.output)/copy of original/\(stem).wav"))
                #expect(a == b, "\(stem).wav")
            }
            let (status, _) = try daemon.statusJSON()
            let done = try #require(status["recent_done"] as? [[String: Any]])
            #expect(Set(done.compactMap { $0["file"] as? String }) == ["original.wav", "copy of original.wav"])
            #expect(daemon.entries(daemon.staging).isEmpty)

            // New content dropped under two names at once: the one worker takes them in turn,
            // and the second reuses the stems of the first.
            let newFrames = try TestAudio.write(daemon.root + "/other.wav", seconds: 1, seed: 31)
            try shell("/bin/cp", [daemon.root + "/other.wav", daemon.input + "/twin a.wav"])
            try shell("/bin/cp", [daemon.root + "/other.wav", daemon.input + "/twin b.wav"])
            let twins = try daemon.waitUntilDone(["twin a.wav", "twin b.wav"]).filter { $0.inputName.hasPrefix("twin") }
            #expect(twins.count == 2)
            #expect(twins.filter { $0.reusedFrom == nil }.count == 1)
            #expect(twins.contains { $0.reusedFrom != nil && $0.reusedFrom == twins.first { $0.reusedFrom == nil }?.id })
            try daemon.expectCompleteOutput("twin a", frames: newFrames)
            try daemon.expectCompleteOutput("twin b", frames: newFrames)
        }
    }

    /// `demucsctl status` against a working and a stopped daemon, and the daemon's refusal of a
    /// bad configuration.
    @Suite struct StatusAndConfig {
        /// status reads the database only, so it answers at once while both cores separate.
        @Test func statusAnswersQuicklyDuringASeparationAndSaysWhenStopped() throws {
            let daemon = try DaemonHarness(config: DaemonHarness.oneThreadConfig)
            defer { daemon.stop() }
            try TestAudio.write(daemon.root + "/long.wav", seconds: 20, seed: 40)
            try daemon.startAndWaitReady()
            try shell("/bin/cp", [daemon.root + "/long.wav", daemon.input + "/long.wav"])
            try daemon.waitForJobs("the separation to make progress") { jobs in
                jobs.contains { $0.state == .running && $0.progress > 0 }
            }
            var slowest = 0.0
            for _ in 0..<3 {
                let run = try daemon.ctl(["status"])
                #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
                #expect(run.stdout.contains("demucsd: running"))
                #expect(run.stdout.contains("long.wav"))
                slowest = max(slowest, run.seconds)
            }
            #expect(slowest < 1, "demucsctl status took \(slowest) s during a separation")

            let (json, run) = try daemon.statusJSON()
            #expect(run.status == 0)
            #expect(run.seconds < 1, "status --json took \(run.seconds) s")
            let info = try #require(json["daemon"] as? [String: Any])
            #expect(info["running"] as? Bool == true)
            #expect((info["pid"] as? Int).map(Int32.init) == daemon.pid)
            let current = try #require(json["current"] as? [String: Any], "\(json)")
            #expect(current["file"] as? String == "long.wav")
            #expect((current["progress"] as? Double ?? 0) > 0)
            let counts = try #require(json["counts"] as? [String: Int])
            #expect(counts["running"] == 1)

            #expect(daemon.stop() == 0)
            let stopped = try daemon.ctl(["status"])
            #expect(stopped.status == 1)
            #expect(stopped.stdout.contains("not running"), "\(stopped.stdout)")
            let (stoppedJSON, stoppedRun) = try daemon.statusJSON()
            #expect(stoppedRun.status == 1)
            #expect((stoppedJSON["daemon"] as? [String: Any])?["running"] as? Bool == false)
            #expect(stoppedJSON["current"] is NSNull)
            #expect((stoppedJSON["counts"] as? [String: Int])?["queued"] == 1, "the interrupted job waits for the next start")
        }

        @Test(arguments: [
            ("[output]\nmp3_bitrate = 1000\n", "mp3_bitrate"),
            ("[jobs]\nsettle_second = 1\n", "settle_second"),
            ("[jobs]\nworkers = \"two\"\n", "workers"),
        ])
        func invalidConfigurationExits78NamingTheKey(config: String, key: String) throws {
            let daemon = try DaemonHarness(config: config)
            defer { daemon.stop() }
            try daemon.start()
            let status = daemon.waitForExit(timeout: 30)
            #expect(status == 78, "exit status \(String(describing: status)); log:\n\(daemon.log)")
            #expect(daemon.log.contains(key), "\(daemon.log)")
            #expect(!FileManager.default.fileExists(atPath: daemon.database), "nothing is created with a bad configuration")
        }
    }
}
