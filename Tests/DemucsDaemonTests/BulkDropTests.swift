import AudioIO
import Foundation
import JobStore
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension DaemonEndToEnd {
    /// Why (2) for a bulk drop: the rescan after an inotify overflow enqueued every file in the
    /// folder at once, so files still being written were separated half-written.
    @Suite struct BulkDrop {
        /// 500 files are written by a writer that reopens them chunk after chunk, round robin,
        /// while the daemon is frozen (SIGSTOP): more close events than the kernel queues
        /// (`max_queued_events`), so the watch overflows. The last 20 files are still open and
        /// unfinished when the daemon thaws, and are finished after the rescan. Every file is
        /// separated once, whole.
        @Test func aBulkDropThatOverflowsTheWatchIsSeparatedOnceEachAndWhole() throws {
            let daemon = try DaemonHarness(config: DaemonHarness.quickConfig + "[output]\nmp3 = false\n")
            defer { daemon.stop() }
            let count = 500, slow = 20
            let names = (0..<count).map { String(format: "bulk-%03d.wav", $0) }
            // Four songs under 500 names: four separations, the rest reuse their stems, so the
            // test costs seconds of CPU, not minutes. A half-written file is other content, so
            // separating one would still show (a fifth hash, a short stem, a second job).
            var songs: [Data] = []
            var frames = 0
            for k in 0..<4 {
                let path = daemon.root + "/source.wav"
                frames = try TestAudio.write(path, seconds: 0.25, seed: 10_000 + UInt64(k))
                songs.append(try Data(contentsOf: URL(fileURLWithPath: path)))
            }
            let contents = (0..<count).map { songs[$0 % songs.count] }
            let queueLimit = Int((try? String(contentsOfFile: "/proc/sys/fs/inotify/max_queued_events", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 16384
            let rounds = queueLimit / count + 4
            try daemon.startAndWaitReady()

            daemon.signal(SIGSTOP)
            var thawed = false
            defer { if !thawed { daemon.signal(SIGCONT) } }
            // Round r writes the r-th chunk of every file, each through its own open + close.
            func chunk(_ k: Int, _ r: Int) -> Data {
                let size = contents[k].count
                return contents[k].subdata(in: (size * r / rounds)..<(size * (r + 1) / rounds))
            }
            for r in 0..<(rounds - 1) {
                for k in 0..<count {
                    let fd = open(daemon.input + "/" + names[k], O_WRONLY | O_CREAT | O_APPEND, 0o644)
                    try #require(fd >= 0)
                    let piece = chunk(k, r)
                    _ = piece.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    close(fd)
                }
            }
            // The last round: most files are finished; the slow ones stay open, unfinished.
            var unfinished: [Int32] = []
            for k in 0..<count {
                let fd = open(daemon.input + "/" + names[k], O_WRONLY | O_APPEND)
                try #require(fd >= 0)
                if k < count - slow {
                    _ = chunk(k, rounds - 1).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    close(fd)
                } else {
                    unfinished.append(fd)
                }
            }
            daemon.signal(SIGCONT)
            thawed = true
            // Well past the settle time: a rescan that ignored the open writers would have
            // queued the slow files by now.
            Thread.sleep(forTimeInterval: 2)
            for (i, fd) in unfinished.enumerated() {
                _ = chunk(count - slow + i, rounds - 1).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
            }

            let jobs = try daemon.waitForJobs("all \(count) files to be done", timeout: 600) { jobs in
                jobs.filter { $0.state == .done }.count >= count
            }
            #expect(daemon.log.contains("inotify queue overflowed"), "the drop did not overflow the watch; the test proves nothing")
            #expect(jobs.count == count, "each file once: \(jobs.count) jobs for \(count) files")
            #expect(Set(jobs.map(\.inputName)) == Set(names))
            #expect(jobs.allSatisfy { $0.attempts == 1 })
            #expect(jobs.filter { $0.reusedFrom == nil }.count == songs.count, "one separation per song")
            let stems = ["bass", "drums", "other", "vocals"].map { "\($0).wav" }
            for name in names {
                let folder = daemon.output + "/" + String(name.dropLast(".wav".count))
                #expect(daemon.entries(folder) == stems, "\(folder)")
                let vocals = try AudioDecoder.decode(path: folder + "/vocals.wav")
                #expect(vocals.frameCount == frames, "\(name) was separated half-written")
            }
            #expect(daemon.isRunning)
            #expect(daemon.stop() == 0)
        }
    }
}
