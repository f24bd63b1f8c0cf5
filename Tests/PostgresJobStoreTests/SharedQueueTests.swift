import Foundation
import JobStore
import Testing
@testable import PostgresJobStore
import PostgresTestSupport

/// Runs `body` on a thread of its own, as the daemon's workers call the queue: the blocking
/// bridge must not hold one of the cooperative pool's few threads.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// The synchronous queue (`PostgresJobQueue`, what the daemon and demucsctl use) with several
/// "hosts" (one queue each, each its own connection pool) on one real server.
@Suite(.serialized, .enabled(if: PostgresTestServer.available, "needs PostgreSQL's server (apt install postgresql)"))
struct SharedQueueTests {
    static func hosts(_ count: Int, on server: PostgresTestServer, lease: Double = 60) throws -> [PostgresJobQueue] {
        try (0..<count).map { _ in try PostgresJobQueue(url: server.url, lease: lease, answerTimeout: 10, migrate: true) }
    }

    @Test func hostsEnqueueingTheSameFilesMakeOneJobEach() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let queues = try await onThread { try Self.hosts(3, on: server) }
        defer { for q in queues { try? q.close() } }
        let made = try await withThrowingTaskGroup(of: Int.self) { group in
            for queue in queues {
                group.addTask {
                    try await onThread {
                        var count = 0
                        for i in 0..<20 where try queue.enqueue(inputName: "song \(i).mp3", size: 1, modified: 0,
                                                                 contentHash: "hash\(i)", model: "m") != nil {
                            count += 1
                        }
                        return count
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        let total = try await onThread { try queues[0].counts() }
        #expect(made == 20 && total[.queued] == 20, "\(made) enqueues made a job; counts \(total)")
        // A copy under another name is a job of its own; a replaced file updates its waiting job.
        let copy = try await onThread { try queues[1].enqueue(inputName: "copy.mp3", size: 1, modified: 0, contentHash: "hash0", model: "m") }
        #expect(copy != nil)
        let replaced = try await onThread { try queues[2].enqueue(inputName: "song 1.mp3", size: 2, modified: 5, contentHash: "new", model: "m") }
        #expect(replaced?.contentHash == "new" && replaced?.inputSize == 2)
        #expect(try await onThread { try queues[0].counts()[.queued] } == 21)
    }

    @Test func outputNamesFollowTheSongTwoRuleAcrossHosts() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let queues = try await onThread { try Self.hosts(2, on: server) }
        defer { for q in queues { try? q.close() } }
        let mp3 = try #require(try await onThread { try queues[0].enqueue(inputName: "song.mp3", size: 1, modified: 0, contentHash: "a", model: "m") })
        let flac = try #require(try await onThread { try queues[1].enqueue(inputName: "song.flac", size: 1, modified: 0, contentHash: "b", model: "m") })
        async let first = onThread { try queues[0].allocateOutputName(for: mp3.id, preferred: "song", existsOnDisk: { _ in false }) }
        async let second = onThread { try queues[1].allocateOutputName(for: flac.id, preferred: "song", existsOnDisk: { _ in false }) }
        let names = try await [first, second]
        #expect(Set(names) == ["song", "song (2)"], "\(names)")
        // Asked again, a job keeps its name; a folder made by hand is passed over.
        #expect(try await onThread { try queues[1].allocateOutputName(for: mp3.id, preferred: "song", existsOnDisk: { _ in true }) } == names[0])
        let other = try #require(try await onThread { try queues[0].enqueue(inputName: "live.wav", size: 1, modified: 0, contentHash: "c", model: "m") })
        #expect(try await onThread { try queues[0].allocateOutputName(for: other.id, preferred: "live", existsOnDisk: { $0 == "live" }) } == "live (2)")
    }

    /// Cancel and retry from another host end a running claim at once: its holder can neither
    /// write nor publish, and a retried job can be claimed by anyone right away.
    @Test func cancelAndRetryFromAnyHostEndTheRunningClaim() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let queues = try await onThread { try Self.hosts(2, on: server) }
        defer { for q in queues { try? q.close() } }
        let (a, b) = (queues[0], queues[1])
        try await onThread {
            let job = try #require(try a.enqueue(inputName: "x.wav", size: 1, modified: 0, contentHash: "x", model: "m"))
            let first = try #require(try a.claimNext(worker: "hostA/worker-0", model: nil)?.claim)
            #expect(try b.cancel(id: job.id))
            #expect(try a.isCurrent(first) == false && a.renew(first) == false)
            #expect(try a.updateProgress(first, progress: 0.5) == false)
            var published = false
            #expect(try a.finish(first, result: JobStore.JobResult(outputs: ["x/vocals.wav"], audioSeconds: 1), publish: { published = true }) == false)
            #expect(!published)
            #expect(try b.job(id: job.id)?.state == .cancelled)

            #expect(try b.retry(id: job.id))
            let again = try #require(try b.claimNext(worker: "hostB/worker-0", model: nil))
            #expect(again.id == job.id && again.attempts == 1 && again.claimSequence == 2)
            #expect(try b.retry(id: job.id), "a running job is retried")
            #expect(try a.fail(try #require(again.claim), error: "boom", retries: 3) == nil, "the retried claim is fenced")
            let third = try #require(try a.claimNext(worker: "hostA/worker-0", model: nil))
            #expect(third.id == job.id && third.claimSequence == 3)
            #expect(try a.finish(try #require(third.claim), result: JobStore.JobResult(outputs: ["x/vocals.wav"], audioSeconds: 1), publish: { published = true }))
            #expect(published)
            #expect(try b.job(id: job.id)?.state == .done)
        }
    }

    @Test func aFailedAttemptIsQueuedAgainUntilTheRetriesAreSpent() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let queue = try await onThread { try Self.hosts(1, on: server)[0] }
        defer { try? queue.close() }
        try await onThread {
            let job = try #require(try queue.enqueue(inputName: "bad.wav", size: 1, modified: 0, contentHash: "b", model: "m"))
            for attempt in 1...3 {
                let claim = try #require(try queue.claimNext(worker: "h/worker-0", model: nil)?.claim)
                let state = try queue.fail(claim, error: "attempt \(attempt) failed", retries: 2)
                #expect(state == (attempt < 3 ? .queued : .failed), "attempt \(attempt)")
            }
            let failed = try #require(try queue.job(id: job.id))
            #expect(failed.state == .failed && failed.attempts == 3 && failed.error == "attempt 3 failed" && failed.holder == nil)
            // A clean shutdown gives the attempt back.
            _ = try queue.retry(id: job.id)
            let claim = try #require(try queue.claimNext(worker: "h/worker-0", model: nil)?.claim)
            #expect(try queue.requeue(claim, reason: "stopping"))
            let back = try #require(try queue.job(id: job.id))
            #expect(back.state == .queued && back.attempts == 0 && back.error == "stopping")
            #expect(try queue.recentFailed(limit: 5).isEmpty && queue.jobs(state: .queued, limit: 5).map(\.id) == [job.id])
        }
    }

    /// A daemon restarted under the same node name takes its own running jobs back at once;
    /// another node's running job keeps its lease.
    @Test func recoveryAtStartTakesBackOnlyTheNodesOwnJobs() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let queue = try await onThread { try Self.hosts(1, on: server)[0] }
        defer { try? queue.close() }
        try await onThread {
            for name in ["a.wav", "b.wav"] {
                _ = try queue.enqueue(inputName: name, size: 1, modified: 0, contentHash: name, model: "m")
            }
            let mine = try #require(try queue.claimNext(worker: "box-1/worker-0", model: nil))
            let theirs = try #require(try queue.claimNext(worker: "box-10/worker-0", model: nil))
            let recovered = try queue.recoverAtStart(node: "box-1", retries: 3)
            #expect(recovered == JobStore.InterruptedJobs(requeued: 1, failed: 0))
            #expect(try queue.job(id: mine.id)?.state == .queued)
            #expect(try queue.job(id: theirs.id)?.state == .running)
            #expect(try queue.isCurrent(try #require(theirs.claim)))
        }
    }

    @Test func workersAreListedWithTheirHeartbeatAgeOnTheServersClock() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let queue = try await onThread { try Self.hosts(1, on: server)[0] }
        defer { try? queue.close() }
        try await onThread {
            for node in ["h1:10", "h2:20"] {
                // A start time far from the server's now: liveness must not depend on it.
                try queue.register(DaemonInfo(pid: 10, startedAt: 1000, version: "v", model: "m", heartbeat: 0,
                                              status: "starting", node: node))
            }
            try queue.heartbeat(node: "h1:10", status: "idle", problem: "model missing")
            let workers = try queue.workers()
            #expect(workers.map(\.info.node) == ["h1:10", "h2:20"])
            #expect(workers.allSatisfy { $0.secondsSinceHeartbeat < 5 && $0.isAlive(heartbeatInterval: 5) })
            #expect(workers[0].info.status == "idle" && workers[0].info.problem == "model missing")
            #expect(workers[1].info.startedAt == 1000)
            try queue.unregister(node: "h2:20")
            #expect(try queue.workers().map(\.info.node) == ["h1:10"])
        }
    }

    /// `pg_ctl restart` cuts every connection: calls fail as unreachable (a machine fault the
    /// daemon waits out) until the server is back, then work again, and nothing was lost.
    @Test func theQueueCarriesOnAfterTheServerRestarts() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let queue = try await onThread { try Self.hosts(1, on: server)[0] }
        defer { try? queue.close() }
        let job = try #require(try await onThread { try queue.enqueue(inputName: "a.wav", size: 1, modified: 0, contentHash: "a", model: "m") })
        let claim = try #require(try await onThread { try queue.claimNext(worker: "h/worker-0", model: nil)?.claim })
        try server.restart()
        let outcome = try await onThread { () -> (Bool, [JobStoreError.Kind]) in
            var kinds: [JobStoreError.Kind] = []
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                do {
                    return (try queue.renew(claim), kinds)
                } catch let error as JobStoreError {
                    kinds.append(error.kind)
                    Thread.sleep(forTimeInterval: 0.2)
                }
            }
            return (false, kinds)
        }
        #expect(outcome.0, "the claim is renewed once the server is back")
        #expect(outcome.1.allSatisfy { $0 == .unreachable }, "\(outcome.1)")
        #expect(try await onThread { try queue.job(id: job.id)?.state } == .running)
    }

    /// Every thread of the cooperative pool busy (as when other work computes on it): the queue
    /// still answers, since its calls run on threads of their own.
    @Test func theQueueAnswersWhileTheCooperativePoolIsBusy() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let queue = try await onThread { try Self.hosts(1, on: server)[0] }
        defer { try? queue.close() }
        let width = ProcessInfo.processInfo.activeProcessorCount * 2
        let busy = (0..<width).map { _ in Task.detached { blockThisThread(seconds: 4) } }
        // Timed on the calling thread: the test's own task resumes only once the pool is free.
        let (job, took) = try await onThread {
            let started = Date()
            let job = try queue.enqueue(inputName: "a.wav", size: 1, modified: 0, contentHash: "a", model: "m")
            return (job, Date().timeIntervalSince(started))
        }
        for task in busy { await task.value }
        #expect(job != nil)
        #expect(took < 3, "the enqueue took \(took) s")
    }

    @Test func aServerThatIsDownIsReportedWithinTheTimeout() async throws {
        let server = try PostgresTestServer()
        let queue = try await onThread { try PostgresJobQueue(url: server.url, answerTimeout: 2, migrate: true) }
        defer { try? queue.close() }
        server.stop()
        let started = Date()
        let error = await #expect(throws: JobStoreError.self) { try await onThread { try queue.counts() } }
        #expect(error?.kind == .unreachable, "\(String(describing: error))")
        #expect(Date().timeIntervalSince(started) < 5)
    }
}

/// Holds the calling thread (a thread of the cooperative pool, here) without yielding it.
func blockThisThread(seconds: Double) {
    usleep(UInt32(seconds * 1_000_000))
}
