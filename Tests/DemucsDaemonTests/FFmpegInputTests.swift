import AudioIO
import Foundation
import JobStore
import Testing

extension DaemonEndToEnd {
    /// Inputs only ffmpeg reads, dropped into the watch folder of the real daemon.
    @Suite(.enabled(if: FFmpegDecoder.onPath() != nil, "ffmpeg is not installed (tools/install-deps.sh installs it)"))
    struct FFmpegInput {
        static func encode(_ source: String, _ arguments: [String], _ target: String) throws {
            try shell(FFmpegDecoder.onPath()!.executable,
                      ["-nostdin", "-loglevel", "error", "-y", "-i", source] + arguments + [target])
        }

        @Test func m4aWebmAndMp4GetTheirStemsAndBrokenM4aFilesFailWithAReason() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            let source = daemon.root + "/source.wav"
            try TestAudio.write(source, seconds: 2, seed: 808)
            let made = [("song.m4a", ["-c:a", "aac"]), ("clip.webm", ["-c:a", "libopus"]), ("video.mp4", ["-c:a", "aac"])]
            var frames: [String: Int] = [:]
            for (name, codec) in made {
                try Self.encode(source, codec, daemon.root + "/" + name)
                frames[name] = try AudioDecoder.load(path: daemon.root + "/" + name, sampleRate: 44100, channels: 2).frameCount
            }
            try Data("not audio at all\n".utf8).write(to: URL(fileURLWithPath: daemon.root + "/notes.m4a"))
            let whole = try Data(contentsOf: URL(fileURLWithPath: daemon.root + "/song.m4a"))
            try whole.prefix(whole.count / 3).write(to: URL(fileURLWithPath: daemon.root + "/cut.m4a"))
            try daemon.startAndWaitReady()
            for name in made.map(\.0) + ["notes.m4a", "cut.m4a"] {
                try shell("/bin/cp", [daemon.root + "/" + name, daemon.input + "/" + name])
            }
            try daemon.waitUntilDone(made.map(\.0), timeout: 120)
            for (name, _) in made {
                try daemon.expectCompleteOutput(String(name.split(separator: ".")[0]), frames: frames[name]!)
            }
            // Not audio, and an .m4a cut short (its index at the end is gone): each fails at
            // once with ffmpeg's reason, and nothing of theirs appears in output/.
            let jobs = try daemon.waitForJobs("notes.m4a and cut.m4a to fail") { jobs in
                ["notes.m4a", "cut.m4a"].allSatisfy { name in jobs.contains { $0.inputName == name && $0.state == .failed } }
            }
            for name in ["notes.m4a", "cut.m4a"] {
                let failed = jobs.first { $0.inputName == name }
                #expect(failed?.error?.contains("ffmpeg") == true, "\(name): \(failed?.error ?? "-")")
                #expect(failed?.attempts == 1, "\(name): a file that cannot be decoded fails at once")
                #expect(!FileManager.default.fileExists(atPath: daemon.output + "/" + String(name.dropLast(4))))
            }
            #expect(daemon.isRunning)
            #expect(daemon.stop() == 0)
        }

        /// A machine without ffmpeg on PATH (the daemon's own `PATH` here): the job fails with a
        /// reason that says how to install it, and the daemon carries on.
        @Test func withoutFFmpegAnM4aFailsSayingHowToInstallIt() throws {
            let daemon = try DaemonHarness()
            defer { daemon.stop() }
            let source = daemon.root + "/source.wav"
            try TestAudio.write(source, seconds: 1, seed: 809)
            try Self.encode(source, ["-c:a", "aac"], daemon.root + "/song.m4a")
            try daemon.start(environment: ["PATH": daemon.root + "/no-such-folder"])
            try #require(waitUntil(timeout: 30) { daemon.log.contains("started") }, "\(daemon.log)")
            try FileManager.default.createDirectory(atPath: daemon.input, withIntermediateDirectories: true)
            try shell("/bin/cp", [daemon.root + "/song.m4a", daemon.input + "/song.m4a"])
            let job = try daemon.waitForJobs("song.m4a to fail") { jobs in
                jobs.contains { $0.inputName == "song.m4a" && $0.state == .failed }
            }.first { $0.inputName == "song.m4a" }
            #expect(job?.error?.contains("apt install ffmpeg") == true, "\(job?.error ?? "-")")
            #expect(daemon.isRunning)
            #expect(daemon.stop() == 0)
        }
    }
}
