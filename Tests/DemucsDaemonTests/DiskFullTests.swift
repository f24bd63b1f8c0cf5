import AudioIO
import Foundation
import JobStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A small tmpfs mounted for one test; unmounted when it goes away.
final class SmallFilesystem {
    let path: String

    /// Mounts a tmpfs of `bytes` on `path` (created if missing).
    init(at path: String, bytes: Int) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let run = try runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", path])
        guard run.status == 0 else { throw POSIXError(.EPERM) }
        self.path = path
    }

    private var mounted = true

    func unmount() {
        guard mounted else { return }
        mounted = false
        _ = try? runCommand("/bin/umount", ["-l", path])
    }

    deinit { unmount() }

    var freeBytes: Int {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return 0 }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    /// Whether this process may mount a tmpfs (root, or the capability, outside a locked-down
    /// container).
    static let canMount: Bool = {
        var template = Array((NSTemporaryDirectory() + "/demucsd-mount-probe-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { return false }
        let folder = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        return (try? SmallFilesystem(at: folder, bytes: 1 << 20)) != nil
    }()
}

extension DaemonEndToEnd {
    /// Why (5) for the disk: a full disk used to burn `retry_limit` separations per job and
    /// then fail it. Two cases: a job whose stems cannot fit in what is free fails at once,
    /// saying what it needs and what is free; a disk that fills while a job runs is a fault of
    /// the machine: the job waits without an attempt counted, the queue pauses and says why,
    /// nothing half-written appears in `output/`, and the job completes once space returns.
    @Suite(.serialized) struct DiskFull {
        static func fill(_ disk: SmallFilesystem, leaving room: Int, at path: String) throws {
            try Data(count: max(disk.freeBytes - room, 0)).write(to: URL(fileURLWithPath: path))
        }

        @Test(.enabled(if: SmallFilesystem.canMount, "mounting a tmpfs needs root or CAP_SYS_ADMIN"))
        func aJobWhoseStemsCannotFitFailsSayingWhatItNeeds() throws {
            let daemon = try DaemonHarness()
            let disk = try SmallFilesystem(at: daemon.data, bytes: 16 << 20)
            defer {
                daemon.stop()
                disk.unmount()
            }
            let source = daemon.root + "/big.wav"
            try TestAudio.write(source, seconds: 4, seed: 706)
            let inputBytes = try #require(try FileManager.default.attributesOfItem(atPath: source)[.size] as? Int)
            try daemon.startAndWaitReady()
            try Self.fill(disk, leaving: inputBytes + (768 << 10), at: daemon.data + "/filler")
            try shell("/bin/cp", [source, daemon.input + "/big.wav"])
            let jobs = try daemon.waitForJobs("big.wav to fail") { jobs in
                jobs.contains { $0.inputName == "big.wav" && $0.state == .failed }
            }
            let job = jobs.first { $0.inputName == "big.wav" }
            let error = job?.error ?? ""
            #expect(error.range(of: #"stems need [0-9.]+ MB, [0-9.]+ MB free"#, options: .regularExpression) != nil, "\(error)")
            #expect(job?.attempts == 1)
            #expect(daemon.entries(daemon.output) == [])
            #expect(daemon.entries(daemon.staging) == [])
            #expect(daemon.isRunning)
            #expect(daemon.stop() == 0)
        }

        @Test(.enabled(if: SmallFilesystem.canMount, "mounting a tmpfs needs root or CAP_SYS_ADMIN"))
        func aDiskThatFillsDuringAJobPausesTheQueueAndTheJobCompletesWhenSpaceReturns() throws {
            let daemon = try DaemonHarness(config: DaemonHarness.oneThreadConfig + "retry_limit = 1\n")
            let disk = try SmallFilesystem(at: daemon.data, bytes: 64 << 20)
            defer {
                daemon.stop()
                disk.unmount()
            }
            let source = daemon.root + "/full.wav"
            let frames = try TestAudio.write(source, seconds: 30, seed: 707)
            try daemon.startAndWaitReady()
            try shell("/bin/cp", [source, daemon.input + "/full.wav"])

            // Once the separation is under way (the space check passed), something else fills
            // the disk: the stems cannot be written.
            let filler = daemon.data + "/filler"
            try daemon.waitForJobs("full.wav to be separating") { jobs in
                jobs.contains { $0.inputName == "full.wav" && $0.state == .running && $0.progress > 0 }
            }
            try Self.fill(disk, leaving: 768 << 10, at: filler)

            let paused = waitUntil(timeout: 60) {
                let problem = (try daemon.statusJSON().object["daemon"] as? [String: Any])?["problem"] as? String
                return problem?.contains("no space left") ?? false
            }
            #expect(paused, "status never said the queue is paused for the full disk; log:\n\(daemon.log)")
            #expect(daemon.log.contains("queue paused for"))
            let waiting = try daemon.jobs(named: "full.wav")
            #expect(waiting.count == 1)
            #expect(waiting.first?.state == .queued || waiting.first?.state == .running,
                    "\(waiting.map { "\($0.state) \($0.error ?? "-")" })")
            #expect(waiting.first?.attempts == 0, "a full disk costs no attempt")
            #expect(daemon.entries(daemon.output) == [], "nothing may appear half-written in output/")
            #expect(daemon.isRunning)

            // Space returns: the job completes at the end of the pause, once.
            try FileManager.default.removeItem(atPath: filler)
            try daemon.waitUntilDone(["full.wav"], timeout: 120)
            #expect(try daemon.jobs(named: "full.wav").count == 1)
            try daemon.expectCompleteOutput("full", frames: frames)
            #expect(daemon.entries(daemon.staging) == [])
            #expect(daemon.stop() == 0)
        }
    }
}
