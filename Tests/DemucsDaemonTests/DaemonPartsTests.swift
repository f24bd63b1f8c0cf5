import AudioIO
import Foundation
import JobStore
import Testing
@testable import DemucsDaemon
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's small parts on their own: the watchdog's view of its threads, the names waiting
/// for intake, the queue pause and the failure classes.
@Suite struct DaemonPartsTests {
    // MARK: Liveness

    @Test func aBusyThreadWithoutProgressIsStalledAndAnIdleOneNever() {
        let liveness = Liveness()
        let start = Date()
        let worker = liveness.register("worker-0")
        let intake = liveness.register("intake")
        liveness.beat(worker, stage: "separating a.wav", now: start)
        liveness.idle(intake, now: start)
        #expect(liveness.stalled(limit: 120, now: start.addingTimeInterval(100)).isEmpty)
        let stalled = liveness.stalled(limit: 120, now: start.addingTimeInterval(130))
        #expect(stalled == ["worker-0 separating a.wav for 130 s"])
        // A worker waits out a queue pause longer than the stall limit: it is idle, not stuck.
        liveness.idle(worker, now: start)
        #expect(liveness.stalled(limit: 120, now: start.addingTimeInterval(400)).isEmpty)
    }

    @Test func aLoopThatStopsTurningIsStalled() {
        let liveness = Liveness()
        let start = Date()
        let watch = liveness.register("watch")
        liveness.beat(watch, stage: nil, now: start)
        #expect(liveness.stalled(limit: 120, now: start.addingTimeInterval(121)) == ["watch in its loop for 121 s"])
        liveness.beat(watch, stage: nil, now: start.addingTimeInterval(121))
        #expect(liveness.stalled(limit: 120, now: start.addingTimeInterval(122)).isEmpty)
    }

    // MARK: PendingNames

    @Test func namesComeOutInArrivalOrderOnce() {
        let pending = PendingNames()
        pending.add("a.wav")
        pending.add("b.wav")
        pending.add("a.wav")
        #expect(pending.next() == "a.wav")
        #expect(pending.next() == "b.wav")
        #expect(pending.next() == nil)
        pending.done("a.wav")
        pending.done("b.wav")
        #expect(pending.isEmpty)
    }

    @Test func aNameThatArrivesAgainWhileTakenComesOutAgainAfterwards() {
        let pending = PendingNames()
        pending.add("a.wav")
        #expect(pending.next() == "a.wav")
        pending.add("a.wav")  // replaced while intake was reading it
        #expect(pending.next() == nil, "not twice at once")
        pending.done("a.wav")
        #expect(pending.next() == "a.wav")
        pending.done("a.wav")
        // …and it is not stuck afterwards: a later arrival is taken too.
        pending.add("a.wav")
        #expect(pending.next() == "a.wav")
    }

    @Test func aPostponedNameWaitsItsTimeAndARemovedOneIsForgotten() {
        let pending = PendingNames()
        pending.add("a.wav")
        pending.add("b.wav")
        #expect(pending.next() == "a.wav")
        pending.postpone("a.wav", seconds: 60)
        #expect(pending.next() == "b.wav")
        #expect(pending.next() == nil)
        #expect(pending.next(now: Date().addingTimeInterval(61)) == "a.wav")
        pending.add("c.wav")
        pending.remove("c.wav")
        #expect(pending.next() == nil)
    }

    // MARK: QueuePause

    @Test func thePauseDoublesUpToItsLongestAndEndsOnSuccess() {
        let pause = QueuePause(shortest: 5, longest: 30)
        let now = Date()
        #expect(pause.current(now: now) == nil)
        #expect(pause.pause(cause: "disk full", now: now) == 5)
        #expect(pause.pause(cause: "disk full", now: now) == 10)
        #expect(pause.pause(cause: "disk full", now: now) == 20)
        #expect(pause.pause(cause: "disk full", now: now) == 30)
        #expect(pause.pause(cause: "disk full", now: now) == 30)
        let current = pause.current(now: now.addingTimeInterval(10))
        #expect(current?.cause == "disk full")
        #expect(current?.remaining == 20)
        #expect(pause.current(now: now.addingTimeInterval(31)) == nil)
        pause.clear()
        #expect(pause.current(now: now) == nil)
        #expect(pause.pause(cause: "read-only", now: now) == 5)
    }

    // MARK: FailurePolicy

    @Test func failuresAreClassedByTypeAndErrno() {
        #expect(FailurePolicy.classify(PermanentFailure("too long")) == .permanent)
        #expect(FailurePolicy.classify(InputChanged(description: "grew")) == .inputChanged)
        #expect(FailurePolicy.classify(POSIXError(.ENOSPC)) == .machine(cause: "no space left on the output disk"))
        #expect(FailurePolicy.classify(POSIXError(.EXDEV)) == .machine(cause: "staging and output are on different filesystems (EXDEV)"))
        #expect(FailurePolicy.classify(POSIXError(.EIO)) == .machine(cause: "an I/O error on the disk (EIO)"))
        #expect(FailurePolicy.classify(CocoaError(.fileWriteOutOfSpace)) == .machine(cause: "no space left on the output disk"))
        #expect(FailurePolicy.classify(NSError(domain: NSPOSIXErrorDomain, code: Int(EROFS)))
                == .machine(cause: "the data folder is on a read-only filesystem"))
        #expect(FailurePolicy.classify(POSIXError(.EINVAL)) == .retryable)
        #expect(FailurePolicy.classify(JobStoreError(.busy, operation: "claim a job", path: "jobs.sqlite", reason: "database is locked")) == .machine(cause: "the job database is locked by another process"))
        #expect(FailurePolicy.classify(AudioIOError(.corruptFile, .decode, path: "a.mp3", reason: "bad frame")) == .permanent)
        #expect(FailurePolicy.classify(AudioIOError(.noSpace, .encode, path: "vocals.wav", reason: "disk full"))
                == .machine(cause: "no space left on the output disk"))
        struct Unknown: Error {}
        #expect(FailurePolicy.classify(Unknown()) == .retryable)
    }

    @Test func aMachineFaultIsMadeOnlyFromAMachineErrno() {
        #expect(MachineFault(errno: ENOSPC, "writing vocals.wav")?.description == "no space left on the output disk: writing vocals.wav")
        #expect(MachineFault(errno: ENOENT, "opening a.wav") == nil)
    }

    // MARK: ReloadCheck

    @Test func settingsAReloadCannotChangeAreNamed() {
        var config = DaemonConfig()
        let old = WorkSettings(config: config)
        config.jobs.workers = old.workers + 1
        config.jobs.settleSeconds = old.settleSeconds + 1
        config.data = "/elsewhere"
        let new = WorkSettings(config: config)
        #expect(ReloadCheck.unchangeable(from: old, to: new) == [
            "jobs.workers (\(old.workers) stays)", "jobs.settle_seconds (\(old.settleSeconds) stays)",
            "data (\(old.config.data) stays)",
        ])
        #expect(ReloadCheck.unchangeable(from: old, to: old).isEmpty)
    }

    // MARK: OutputBudget

    @Test func theStemBudgetCountsEveryFormat() {
        // 10 s of stereo at 44.1 kHz: 1,764,000 bytes per 16-bit WAV, 400,000 per 320 kbit/s MP3 (+10%).
        let frames = 441_000
        let wav16 = EncodeOptions(format: .wav, bitsPerSample: 16)
        let float = EncodeOptions(format: .wav, asFloat: true)
        let mp3 = EncodeOptions(format: .mp3, mp3Bitrate: 320)
        let flac24 = EncodeOptions(format: .flac, bitsPerSample: 24)
        func budget(_ formats: [EncodeOptions], stems: Int = 4) -> Int64 {
            OutputBudget.bytes(frames: frames, sampleRate: 44_100, channels: 2, stems: stems,
                               formats: formats.map { ("x", $0) })
        }
        let slack: Int64 = 1 << 20
        #expect(budget([wav16]) == 4 * (1_764_000 + 4096) + slack)
        #expect(budget([float]) == 4 * (3_528_000 + 4096) + slack)
        #expect(budget([flac24], stems: 2) == 2 * (2_646_000 + 4096) + slack)
        #expect(budget([wav16, mp3]) == 4 * (1_764_000 + 4096 + 440_000 + 4096) + slack)
    }
}
