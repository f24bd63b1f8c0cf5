import Foundation
import Testing
@testable import JobStore

@Suite("Job life cycle")
struct LifecycleTests {
    @Test("claimNext takes the oldest queued job, marks it running and counts the attempt")
    func claimOrder() throws {
        let temp = try TempFolder()
        let clock = TestClock(start: 100)
        let store = try JobStore(path: temp.databasePath, clock: clock.function)
        let a = try #require(try store.add("a.mp3"))
        let b = try #require(try store.add("b.mp3"))
        let c = try #require(try store.add("c.mp3"))

        clock.set(500)
        let first = try #require(try store.claimNext())
        #expect(first.id == a.id)
        #expect(first.state == .running)
        #expect(first.attempts == 1)
        #expect(first.startedAt == 500)
        #expect(first.progress == 0)
        #expect(try store.claimNext()?.id == b.id)
        #expect(try store.claimNext()?.id == c.id)
        #expect(try store.claimNext() == nil)
        #expect(try store.running().map(\.id) == [a.id, b.id, c.id])
    }

    @Test("progress is recorded for running jobs, clamped, and ignored otherwise")
    func progress() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("a.mp3"))
        let early = Claim(jobID: job.id, sequence: 1, worker: testWorker)
        #expect(try store.updateProgress(early, progress: 0.5) == false)
        #expect(try store.job(id: job.id)?.progress == 0)         // still queued: ignored
        _ = try store.claimNext()
        try store.updateProgress(id: job.id, progress: 0.25)
        #expect(try store.job(id: job.id)?.progress == 0.25)
        try store.updateProgress(id: job.id, progress: 7)
        #expect(try store.job(id: job.id)?.progress == 1)
        try store.updateProgress(id: job.id, progress: -1)
        #expect(try store.job(id: job.id)?.progress == 0)
        try store.updateProgress(id: job.id, progress: .nan)
        #expect(try store.job(id: job.id)?.progress == 0)
    }

    @Test("finish marks a running job done with outputs, duration and reuse source")
    func finish() throws {
        let temp = try TempFolder()
        let clock = TestClock(start: 10)
        let store = try JobStore(path: temp.databasePath, clock: clock.function)
        let original = try #require(try store.add("a.mp3", content: "X"))
        let copy = try #require(try store.add("b.mp3", content: "X"))
        _ = try store.claimNext()
        try store.updateProgress(id: original.id, progress: 0.4)
        clock.set(77)
        #expect(try store.finish(id: original.id, outputs: ["a/vocals.wav", "a/other.wav"], audioSeconds: 212.5))
        let done = try #require(try store.job(id: original.id))
        #expect(done.state == .done)
        #expect(done.progress == 1)
        #expect(done.finishedAt == 77)
        #expect(done.outputs == ["a/vocals.wav", "a/other.wav"])
        #expect(done.audioSeconds == 212.5)
        #expect(done.reusedFrom == nil)

        _ = try store.claimNext()
        #expect(try store.finish(id: copy.id, outputs: ["b/vocals.wav"], audioSeconds: 212.5, reusedFrom: original.id))
        #expect(try store.job(id: copy.id)?.reusedFrom == original.id)

        // Not running any more: nothing changes.
        #expect(try store.finish(id: copy.id, outputs: [], audioSeconds: nil) == false)
        #expect(try store.job(id: copy.id)?.outputs == ["b/vocals.wav"])
        let missing = try #require(throws: JobStoreError.self) {
            try store.finish(Claim(jobID: 999, sequence: 1, worker: testWorker), result: .init(outputs: [], audioSeconds: nil))
        }
        #expect(missing.kind == .jobNotFound)
    }

    @Test("fail re-queues while retries are left, then the job ends failed; the error is kept")
    func failAndRetryLimit() throws {
        let temp = try TempFolder()
        let clock = TestClock(start: 0)
        let store = try JobStore(path: temp.databasePath, clock: clock.function)
        let bad = try #require(try store.add("bad.mp3"))
        let good = try #require(try store.add("good.mp3"))

        #expect(try store.claimNext()?.id == bad.id)
        #expect(try store.fail(id: bad.id, error: "decoder exploded", retries: 2) == .queued)
        var row = try #require(try store.job(id: bad.id))
        #expect(row.state == .queued)
        #expect(row.attempts == 1)
        #expect(row.error == "decoder exploded")
        #expect(row.startedAt == nil)
        // A re-queued failure goes to the back: the other file runs first.
        #expect(try store.claimNext()?.id == good.id)
        #expect(try store.claimNext()?.id == bad.id)
        #expect(try store.fail(id: bad.id, error: "again", retries: 2) == .queued)
        #expect(try store.claimNext()?.id == bad.id)
        clock.set(900)
        #expect(try store.fail(id: bad.id, error: "third time", retries: 2) == .failed)
        row = try #require(try store.job(id: bad.id))
        #expect(row.state == .failed)
        #expect(row.attempts == 3)
        #expect(row.error == "third time")
        #expect(row.finishedAt == 900)
        #expect(try store.claimNext() == nil)

        // fail with a claim that is no longer current changes nothing.
        let stale = Claim(jobID: bad.id, sequence: 3, worker: testWorker)
        #expect(try store.fail(stale, error: "late", retries: 10) == nil)
        #expect(try store.job(id: bad.id)?.error == "third time")
        #expect(throws: JobStoreError.self) {
            try store.fail(Claim(jobID: 12345, sequence: 1, worker: testWorker), error: "x", retries: 0)
        }
    }

    /// Why (7): `retry_limit = 3` meant 3 attempts though the setting says retries, and 0
    /// behaved like 1. Now N retries is N + 1 attempts, 0 a single one.
    @Test("retries N means N + 1 attempts", arguments: [0, 1, 3])
    func retriesMeanRetries(retries: Int) throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("a.mp3"))
        var attempts = 0
        while let claimed = try store.claimNext(), attempts < 10 {
            attempts += 1
            let state = try store.fail(try #require(claimed.claim), error: "no", retries: retries)
            #expect(state == (attempts <= retries ? .queued : .failed))
        }
        #expect(attempts == retries + 1)
        #expect(try store.job(id: job.id)?.attempts == retries + 1)
    }

    @Test("after a crash, requeueInterrupted puts running jobs back, keeping attempts")
    func crashRecovery() throws {
        let temp = try TempFolder()
        var daemon: JobStore? = try JobStore(path: temp.databasePath)
        let job = try #require(try daemon?.add("song.mp3"))
        let other = try #require(try daemon?.add("other.mp3"))
        let claimed = try #require(try daemon?.claimNext())
        #expect(claimed.id == job.id)
        try daemon?.updateProgress(id: job.id, progress: 0.6)
        daemon = nil  // "kill -9": dropped without finish/requeue

        let restarted = try JobStore(path: temp.databasePath)
        #expect(try restarted.job(id: job.id)?.state == .running)
        let recovered = try restarted.requeueInterrupted(retries: 2)
        #expect(recovered == JobStore.InterruptedJobs(requeued: 1, failed: 0))
        let row = try #require(try restarted.job(id: job.id))
        #expect(row.state == .queued)
        #expect(row.attempts == 1)
        #expect(row.progress == 0)
        #expect(row.startedAt == nil)
        // It keeps its place at the head of the queue.
        #expect(try restarted.claimNext()?.id == job.id)
        #expect(try restarted.job(id: other.id)?.state == .queued)
    }

    @Test("a job that keeps killing the daemon ends failed after the retry limit")
    func crashLoopEndsFailed() throws {
        let temp = try TempFolder()
        var store: JobStore? = try JobStore(path: temp.databasePath)
        let job = try #require(try store?.add("poison.mp3"))
        var outcomes: [JobStore.InterruptedJobs] = []
        for _ in 0..<5 {  // bounded: 2 retries = 3 attempts
            store = try JobStore(path: temp.databasePath)
            let result = try #require(try store?.requeueInterrupted(retries: 2))
            outcomes.append(result)
            guard try store?.claimNext() != nil else { break }
            store = nil  // crash while separating
        }
        #expect(outcomes == [
            .init(requeued: 0, failed: 0), .init(requeued: 1, failed: 0),
            .init(requeued: 1, failed: 0), .init(requeued: 0, failed: 1),
        ])
        let row = try #require(try store?.job(id: job.id))
        #expect(row.state == .failed)
        #expect(row.attempts == 3)
        #expect(row.error?.contains("interrupted 3 time(s)") == true)
    }

    @Test("requeue on shutdown gives the attempt back and keeps the queue position")
    func requeueOnShutdown() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let a = try #require(try store.add("a.mp3"))
        try store.add("b.mp3")
        let claim = try #require(try store.claimNext()?.claim)
        try store.updateProgress(id: a.id, progress: 0.3)
        #expect(try store.requeue(claim))
        let row = try #require(try store.job(id: a.id))
        #expect(row.state == .queued)
        #expect(row.attempts == 0)
        #expect(row.progress == 0)
        #expect(row.holder == nil)
        #expect(try store.requeue(claim) == false)  // not current any more
        #expect(try store.claimNext()?.id == a.id)
        #expect(try store.job(id: a.id)?.attempts == 1)
    }

    @Test("cancel applies to queued and running jobs only")
    func cancelTransitions() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let running = try #require(try store.add("running.mp3"))
        let queued = try #require(try store.add("queued.mp3"))
        let done = try #require(try store.add("done.mp3"))
        let failed = try #require(try store.add("failed.mp3"))
        _ = try store.claimNext()  // running
        try store.cancel(id: queued.id)
        _ = try store.claimNext()  // done
        try store.finish(id: done.id, outputs: ["done/vocals.wav"], audioSeconds: 1)
        _ = try store.claimNext()  // failed
        try store.fail(id: failed.id, error: "x", retries: 0)

        let queued2 = try #require(try store.add("queued2.mp3"))
        let claim = try store.currentClaim(running.id)
        #expect(try store.isCurrent(claim))
        #expect(try store.cancel(id: running.id))
        #expect(try store.isCurrent(claim) == false)
        #expect(try store.job(id: running.id)?.finishedAt != nil)
        #expect(try store.cancel(id: queued2.id))
        #expect(try store.claimNext() == nil)

        #expect(try store.cancel(id: running.id) == false)  // already cancelled
        #expect(try store.cancel(id: done.id) == false)
        #expect(try store.cancel(id: failed.id) == false)
        #expect(try store.cancel(id: 4242) == false)
        #expect(try store.job(id: done.id)?.state == .done)
        #expect(try store.job(id: failed.id)?.state == .failed)

        // The worker's late finish/fail/progress cannot undo the cancellation.
        var published = false
        #expect(try store.finish(claim, result: .init(outputs: ["r/vocals.wav"], audioSeconds: 1)) { published = true } == false)
        #expect(!published, "a stale claim publishes nothing")
        #expect(try store.updateProgress(claim, progress: 0.9) == false)
        #expect(try store.fail(claim, error: "boom", retries: 5) == nil)
        #expect(try store.job(id: running.id)?.state == .cancelled)
        #expect(try store.job(id: running.id)?.error == nil)
        // A deleted job is not current for anyone: stop, nothing to record.
        #expect(try store.isCurrent(Claim(jobID: 4242, sequence: 1, worker: testWorker)) == false)
    }

    @Test("retry revives failed and cancelled jobs as fresh, at the end of the queue")
    func retryTransitions() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let failed = try #require(try store.add("failed.mp3"))
        let cancelled = try #require(try store.add("cancelled.mp3"))
        let waiting = try #require(try store.add("waiting.mp3"))
        _ = try store.claimNext()
        #expect(try store.allocateOutputName(for: failed.id, preferred: "failed") == "failed")
        try store.fail(id: failed.id, error: "bad", retries: 0)
        try store.cancel(id: cancelled.id)

        #expect(try store.retry(id: failed.id))
        let row = try #require(try store.job(id: failed.id))
        #expect(row.state == .queued)
        #expect(row.attempts == 0)
        #expect(row.error == nil)
        #expect(row.startedAt == nil && row.finishedAt == nil)
        #expect(row.outputName == "failed")  // keeps its folder
        #expect(try store.retry(id: cancelled.id))
        #expect(try store.queued().map(\.id) == [waiting.id, failed.id, cancelled.id])

        #expect(try store.retry(id: waiting.id) == false)  // queued
        let running = try #require(try store.claimNext())
        try store.finish(id: running.id, outputs: ["w/vocals.wav"], audioSeconds: 1)
        #expect(try store.retry(id: running.id) == false)  // done
        #expect(try store.retry(id: 999) == false)          // missing
        #expect(try store.job(id: running.id)?.state == .done)
    }

    /// Why (4): cancel then retry of a running job let the old worker run on beside the new
    /// claim. The old worker's token is no longer current, it publishes nothing, and the job is
    /// not claimed again before the old worker has released it.
    @Test("cancel then retry of a running job: the old claim is dead, the new one waits for its release")
    func cancelRetryWhileRunning() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("song.wav"))
        let first = try #require(try store.claimNext(worker: "host:1/worker-0")?.claim)
        #expect(first.sequence == 1)

        #expect(try store.cancel(id: job.id))
        #expect(try store.retry(id: job.id))
        #expect(try store.job(id: job.id)?.state == .queued)
        // Still held by the old worker: a second worker gets nothing yet.
        #expect(try store.claimNext(worker: "host:1/worker-1") == nil)
        #expect(try store.isCurrent(first) == false)
        #expect(try store.updateProgress(first, progress: 0.5) == false)

        // The old worker notices at its next segment and releases.
        #expect(try store.release(first))
        let second = try #require(try store.claimNext(worker: "host:1/worker-1"))
        let claim = try #require(second.claim)
        #expect(claim.sequence == 2)
        #expect(second.attempts == 1)

        // A late write of the first worker changes nothing of the second attempt.
        var published: [String] = []
        #expect(try store.finish(first, result: .init(outputs: ["song/old.wav"], audioSeconds: 1)) { published.append("old") } == false)
        #expect(try store.requeue(first) == false)
        #expect(try store.fail(first, error: "late", retries: 3) == nil)
        #expect(try store.job(id: job.id)?.state == .running)
        #expect(try store.job(id: job.id)?.holder == "host:1/worker-1")
        #expect(try store.finish(claim, result: .init(outputs: ["song/vocals.wav"], audioSeconds: 1)) { published.append("new") })
        #expect(published == ["new"])
        let done = try #require(try store.job(id: job.id))
        #expect(done.state == .done && done.outputs == ["song/vocals.wav"] && done.holder == nil)
    }

    @Test("retry of a running job starts it over once its worker has let go")
    func retryWhileRunning() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("song.wav"))
        let first = try #require(try store.claimNext()?.claim)
        #expect(try store.retry(id: job.id))
        #expect(try store.isCurrent(first) == false)
        #expect(try store.claimNext() == nil)
        #expect(try store.requeue(first) == false, "a stale requeue only releases")
        let row = try #require(try store.job(id: job.id))
        #expect(row.state == .queued && row.attempts == 0 && row.holder == nil)
        #expect(try store.claimNext()?.claim?.sequence == 2)
    }

    @Test("a publish step that throws leaves the job running and the error as it was thrown")
    func publishFailureRecordsNothing() throws {
        struct DiskFull: Error {}
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("song.wav"))
        let claim = try #require(try store.claimNext()?.claim)
        #expect(throws: DiskFull.self) {
            try store.finish(claim, result: .init(outputs: ["song/vocals.wav"], audioSeconds: 1)) { throw DiskFull() }
        }
        let row = try #require(try store.job(id: job.id))
        #expect(row.state == .running && row.outputs.isEmpty && row.holder == testWorker)
    }

    @Test("crash recovery releases every claim of the dead daemon")
    func crashRecoveryReleasesClaims() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let a = try #require(try store.add("a.wav"))
        _ = try store.claimNext()
        #expect(try store.cancel(id: a.id))
        #expect(try store.retry(id: a.id))
        #expect(try store.claimNext() == nil, "held by the worker that died")
        #expect(try store.requeueInterrupted(retries: 3) == .init(requeued: 0, failed: 0))
        #expect(try store.claimNext()?.id == a.id)
    }

    @Test("the worker's write of the input it read counts only while its claim is current")
    func adoptInput() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("a.wav", content: "queued bytes"))
        let claim = try #require(try store.claimNext()?.claim)
        #expect(try store.adoptInput(claim, contentHash: hash("read bytes"), size: 99, modified: 5))
        let row = try #require(try store.job(id: job.id))
        #expect(row.contentHash == hash("read bytes") && row.inputSize == 99 && row.inputModified == 5)
        #expect(try store.cancel(id: job.id))
        #expect(try store.adoptInput(claim, contentHash: hash("other"), size: 1, modified: 1) == false)
        #expect(try store.job(id: job.id)?.contentHash == hash("read bytes"))
    }
}
