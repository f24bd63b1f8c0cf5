import AudioIO
import Foundation
import JobStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Nothing a user drops into input/ stops the daemon, and a missing model only keeps the jobs
/// waiting.
extension DaemonEndToEnd {
    @Suite struct BadInput {
        @Test func badInputsFailWithAReasonAndTheDaemonCarriesOn() throws {
            let daemon = try DaemonHarness(config: "[jobs]\nsettle_seconds = 0.3\nmax_file_size_mb = 1\n")
            defer { daemon.stop() }
            try daemon.startAndWaitReady()
            let input = daemon.input

            var random = SystemRandomNumberGenerator()
            func randomBytes(_ count: Int) -> Data { Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }) }

            try randomBytes(64 * 1024).write(to: URL(fileURLWithPath: input + "/corrupt.wav"))
            #expect(FileManager.default.createFile(atPath: input + "/empty.flac", contents: Data()))
            try "These are the lyrics, not a song.\n".write(toFile: input + "/lyrics.mp3", atomically: false, encoding: .utf8)
            #expect(symlink("/etc/hostname", input + "/link.wav") == 0)
            try FileManager.default.createDirectory(atPath: input + "/x.wav", withIntermediateDirectories: false)
            try randomBytes(2 * 1024 * 1024).write(to: URL(fileURLWithPath: input + "/big.wav"))
            try "remember the milk\n".write(toFile: input + "/notes.txt", atomically: false, encoding: .utf8)
            // An unreadable file cannot be made as root (root reads everything): only checked
            // when the tests run as another user.
            let asRoot = getuid() == 0
            if !asRoot {
                try TestAudio.write(daemon.root + "/secret.wav", seconds: 1, seed: 70)
                try shell("/bin/cp", [daemon.root + "/secret.wav", input + "/secret.wav"])
                chmod(input + "/secret.wav", 0)
            }

            let expected: [(name: String, reason: [String])] = [
                ("corrupt.wav", ["cannot decode"]),
                ("empty.flac", ["empty"]),
                ("lyrics.mp3", ["cannot decode", "not a recognised"]),
                ("link.wav", ["symbolic link"]),
                ("x.wav", ["folder"]),
                ("big.wav", ["2 MB", "1 MB", "max_file_size_mb"]),
            ] + (asRoot ? [] : [("secret.wav", ["cannot read"])])
            let jobs = try daemon.waitForJobs("every bad input to fail") { jobs in
                expected.allSatisfy { item in jobs.contains { $0.inputName == item.name && $0.state == .failed } }
            }
            for item in expected {
                let rows = jobs.filter { $0.inputName == item.name }
                #expect(rows.count == 1, "\(item.name): \(rows.count) jobs")
                let error = rows.first?.error ?? ""
                for word in item.reason {
                    #expect(error.contains(word), "\(item.name): \(error)")
                }
            }
            #expect(jobs.allSatisfy { $0.inputName != "notes.txt" }, "a name that is not audio is ignored")
            #expect(daemon.isRunning)

            // A good file after all that is processed as usual.
            let frames = try TestAudio.write(daemon.root + "/good.wav", seconds: 1, seed: 71)
            try shell("/bin/cp", [daemon.root + "/good.wav", input + "/good.wav"])
            let after = try daemon.waitUntilDone(["good.wav"])
            try daemon.expectCompleteOutput("good", frames: frames)
            #expect(after.count == expected.count + 1)
            #expect(daemon.entries(daemon.output) == ["good"], "failed inputs leave nothing in output/")
            #expect(daemon.entries(daemon.staging).isEmpty)
            #expect(FileManager.default.fileExists(atPath: input + "/notes.txt"), "ignored files are left alone")

            let (status, run) = try daemon.statusJSON()
            #expect(run.status == 0)
            #expect((status["daemon"] as? [String: Any])?["running"] as? Bool == true)
            let counts = try #require(status["counts"] as? [String: Int])
            #expect(counts["failed"] == expected.count)
            #expect(counts["done"] == 1)
            // The failures are listed with their reasons by `demucsctl jobs --state failed`.
            let failed = try daemon.ctl(["jobs", "--state", "failed"])
            #expect(failed.status == 0)
            #expect(failed.stdout.contains("symbolic link"))
            #expect(daemon.stop() == 0)
        }

        /// Without the model the daemon stays up, says what is missing and keeps the jobs queued;
        /// once the files are installed, SIGHUP makes it load them at once.
        @Test func missingModelKeepsJobsQueuedUntilInstalled() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            let repo = daemon.root + "/models"
            try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
            daemon.repo = repo
            try daemon.startAndWaitReady()

            var problem = ""
            let reported = waitUntil(timeout: 30) {
                let (json, run) = try daemon.statusJSON()
                let info = json["daemon"] as? [String: Any]
                problem = info?["problem"] as? String ?? ""
                return run.status == 0 && info?["running"] as? Bool == true && !problem.isEmpty
            }
            #expect(reported, "status --json never reported the problem; log:\n\(daemon.log)")
            #expect(problem.contains("tiny4"), "\(problem)")
            #expect(problem.contains("model"), "\(problem)")

            let frames = try TestAudio.write(daemon.root + "/song.wav", seconds: 1, seed: 80)
            try shell("/bin/cp", [daemon.root + "/song.wav", daemon.input + "/song.wav"])
            try daemon.waitForJobs("song.wav to be queued") { $0.contains { $0.inputName == "song.wav" } }
            Thread.sleep(forTimeInterval: 2)
            #expect(daemon.isRunning, "the daemon must not exit without its model; log:\n\(daemon.log)")
            #expect(try daemon.jobs(named: "song.wav").map(\.state) == [.queued])

            // Install the model as an operator would (the yaml names its weights' signature).
            let yaml = try String(contentsOfFile: E2EPaths.models + "/tiny4.yaml", encoding: .utf8)
            let signature = try #require(yaml.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).last.map(String.init))
            #expect(signature == "7e1a4c02")
            try FileManager.default.copyItem(atPath: E2EPaths.models + "/\(signature).safetensors",
                                             toPath: repo + "/\(signature).safetensors")
            try FileManager.default.copyItem(atPath: E2EPaths.models + "/tiny4.yaml", toPath: repo + "/tiny4.yaml")
            let hangup = Date()
            daemon.signal(SIGHUP)
            // Well before the daemon's own 60 s retry.
            try daemon.waitUntilDone(["song.wav"], timeout: 30)
            #expect(Date().timeIntervalSince(hangup) < 30)
            try daemon.expectCompleteOutput("song", frames: frames)
            let cleared = waitUntil(timeout: 15) {
                let (json, _) = try daemon.statusJSON()
                return (json["daemon"] as? [String: Any])?["problem"] is NSNull
            }
            #expect(cleared, "the problem is cleared once the model is loaded")
            #expect(daemon.stop() == 0)
        }
    }
}
