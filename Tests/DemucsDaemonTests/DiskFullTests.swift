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
        /// Writes `path` until `room` bytes are left free, or the disk is full (a job may be
        /// writing its spools meanwhile).
        static func fill(_ disk: SmallFilesystem, leaving room: Int, at path: String) throws {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            defer { close(fd) }
            let block = [UInt8](repeating: 0, count: 64 << 10)
            while disk.freeBytes > room {
                let n = min(block.count, disk.freeBytes - room)
                guard block.withUnsafeBytes({ write(fd, $0.baseAddress, n) }) == n else { return }
            }
        }

        /// Drops a 4 s WAV (705 kB) onto a disk left with `room` bytes beside it; returns the
        /// failed job's error once the daemon has failed it.
        static func failOnSmallDisk(room: Int, expecting pattern: String) throws {
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
            try Self.fill(disk, leaving: inputBytes + room, at: daemon.data + "/filler")
            try shell("/bin/cp", [source, daemon.input + "/big.wav"])
            let jobs = try daemon.waitForJobs("big.wav to fail") { jobs in
                jobs.contains { $0.inputName == "big.wav" && $0.state == .failed }
            }
            let job = jobs.first { $0.inputName == "big.wav" }
            let error = job?.error ?? ""
            #expect(error.range(of: pattern, options: .regularExpression) != nil, "\(error)")
            #expect(job?.attempts == 1)
            #expect(daemon.entries(daemon.output) == [])
            #expect(daemon.entries(daemon.staging) == [])
            #expect(daemon.isRunning)
            #expect(daemon.stop() == 0)
        }

        /// The decoded mix (1.4 MB of float32) fits, its stems, their spools and their files do not.
        @Test(.enabled(if: SmallFilesystem.canMount, "mounting a tmpfs needs root or CAP_SYS_ADMIN"))
        func aJobWhoseStemsCannotFitFailsSayingWhatItNeeds() throws {
            try Self.failOnSmallDisk(room: 3 << 20,
                                     expecting: #"the job needs [0-9.]+ MB \(stems and their float32 spools\), [0-9.]+ MB free"#)
        }

        /// Not even the decoded mix fits: the job fails as too large for the disk, instead of
        /// pausing the queue as if something else had filled it.
        @Test(.enabled(if: SmallFilesystem.canMount, "mounting a tmpfs needs root or CAP_SYS_ADMIN"))
        func aJobWhoseDecodedMixCannotFitFailsSayingWhatItNeeds() throws {
            try Self.failOnSmallDisk(room: 768 << 10,
                                     expecting: #"the job needs over [0-9.]+ MB \(its decoded mix alone did not fit\), [0-9.]+ MB free"#)
        }

        @Test(.enabled(if: SmallFilesystem.canMount, "mounting a tmpfs needs root or CAP_SYS_ADMIN"))
        func aDiskThatFillsDuringAJobPausesTheQueueAndTheJobCompletesWhenSpaceReturns() throws {
            let daemon = try DaemonHarness(config: DaemonHarness.oneThreadConfig + "retry_limit = 1\n")
            // Room for the job: its spools (mix + 4 stems, 53 MB) and stems (WAV + MP3, 26 MB).
            let disk = try SmallFilesystem(at: daemon.data, bytes: 128 << 20)
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
