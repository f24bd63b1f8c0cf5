import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real daemon with a decoder that crashes or hangs on some files (the helper's test-build
/// fault, `DEMUCSD_DECODER_TEST_FAULT`, keyed on the file name): those jobs fail with the reason,
/// the daemon keeps serving the queue, and nothing half-written appears in output/.
extension DaemonEndToEnd {
    @Suite struct DecoderIsolation {
        @Test func aDecoderThatCrashesOrHangsFailsItsJobAndTheDaemonServesOn() throws {
            let daemon = try DaemonHarness(config: DaemonHarness.quickConfig + "decoder_stall_seconds = 2\n")
            defer { daemon.stop() }
            try daemon.start(environment: ["DEMUCSD_DECODER_TEST_FAULT": "crash:crash-me"])
            try #require(waitUntil(timeout: 30) { daemon.log.contains("watching") }, "\(daemon.log)")
            var frames: [String: Int] = [:]
            for (name, seed) in [("crash-me.wav", UInt64(31)), ("good.wav", 32)] {
                frames[name] = try TestAudio.write(daemon.root + "/" + name, seconds: 2, seed: seed)
                try shell("/bin/mv", [daemon.root + "/" + name, daemon.input + "/" + name])
            }
            let jobs = try daemon.waitForJobs("the crash to fail and the good file to be done") { jobs in
                jobs.contains { $0.inputName == "crash-me.wav" && $0.state == .failed }
                    && jobs.contains { $0.inputName == "good.wav" && $0.state == .done }
            }
            let crashed = try #require(jobs.first { $0.inputName == "crash-me.wav" })
            #expect(crashed.error?.contains("the decoder crashed on signal 11 (Segmentation fault)") == true, "\(crashed.error ?? "-")")
            #expect(crashed.attempts == 1, "a file the decoder cannot survive is not retried")
            #expect(daemon.isRunning)
            #expect(!FileManager.default.fileExists(atPath: daemon.output + "/crash-me"))
            try daemon.expectCompleteOutput("good", frames: try #require(frames["good.wav"]))
            #expect(daemon.stop() == 0)

            // A hang is stopped after decoder_stall_seconds.
            try daemon.start(environment: ["DEMUCSD_DECODER_TEST_FAULT": "hang:hang-me"])
            try TestAudio.write(daemon.root + "/hang-me.wav", seconds: 2, seed: 33)
            try shell("/bin/mv", [daemon.root + "/hang-me.wav", daemon.input + "/hang-me.wav"])
            let after = try daemon.waitForJobs("the hang to fail") { jobs in
                jobs.contains { $0.inputName == "hang-me.wav" && $0.state == .failed }
            }
            let hung = try #require(after.first { $0.inputName == "hang-me.wav" })
            #expect(hung.error?.contains("the decoder made no progress for 2 s and was stopped") == true, "\(hung.error ?? "-")")
            #expect(daemon.isRunning)
            #expect(daemon.entries(daemon.staging).isEmpty)
        }
    }
}
