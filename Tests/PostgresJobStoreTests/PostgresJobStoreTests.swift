import Foundation
import JobStore
import Testing
@testable import PostgresJobStore
import PostgresTestSupport

/// The PostgreSQL queue against a real server (`PostgresTestServer`): URLs, migrations from
/// hosts starting together, claims that never share a job, leases that run out and are
/// rescued, and fenced writes from a holder whose lease was handed on.
@Suite struct PostgresJobStoreTests {
    @Test func databaseURLs() throws {
        let socket = try DatabaseURL("postgresql://demucsd@/jobs?host=/run/postgresql")
        #expect(socket.socketPath == "/run/postgresql/.s.PGSQL.5432")
        #expect(socket.user == "demucsd" && socket.database == "jobs" && socket.host == nil)
        let tcp = try DatabaseURL("postgresql://demucsd:secret@db.example:6543/jobs")
        #expect(tcp.host == "db.example" && tcp.port == 6543 && tcp.password == "secret" && tcp.socketPath == nil)
        #expect(!tcp.description.contains("secret"))
        #expect(try DatabaseURL("postgresql:///jobs").socketPath == "/run/postgresql/.s.PGSQL.5432")
        #expect(throws: DatabaseURL.Invalid.self) { try DatabaseURL("mysql://x@y/z") }
        #expect(throws: DatabaseURL.Invalid.self) { try DatabaseURL("postgresql://x@y/z?sslmode=require") }
        let bad = #expect(throws: DatabaseURL.Invalid.self) { try DatabaseURL("postgres://u:pw@h:99999/d") }
        #expect(bad.map { !"\($0)".contains("pw") } == true, "a password must not appear in an error")
    }
}

/// Runs `body` with `count` stores on `server`'s database, their connection pools running;
/// `leases` gives each its lease (the default for the rest).
func withStores<T: Sendable>(_ count: Int, on server: PostgresTestServer, leases: [Double] = [],
                             _ body: @Sendable ([PostgresJobStore]) async throws -> T) async throws -> T {
    let stores = (0..<count).map { i in
        PostgresJobStore(url: server.url, lease: i < leases.count ? leases[i] : PostgresJobStore.defaultLease)
    }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        for store in stores { group.addTask { await store.run(); return nil } }
        let result = try await body(stores)
        group.cancelAll()
        return result
    }
}

@Suite(.serialized, .enabled(if: PostgresTestServer.available, "needs PostgreSQL's server (apt install postgresql)"))
struct PostgresQueueTests {
    @Test func migrationsApplyOnceWhenHostsStartTogether() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let applied = try await withStores(3, on: server) { stores in
            try await withThrowingTaskGroup(of: [Int].self) { group in
                for store in stores { group.addTask { try await store.migrate() } }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        #expect(applied == Migrations.all.map(\.version), "each migration applied by exactly one host")
        let again = try await withStores(1, on: server) { try await $0[0].migrate() }
        #expect(again == [])
    }

    @Test func hostsClaimingAtOnceNeverShareAJob() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        let claimed = try await withStores(4, on: server) { stores in
            try await stores[0].migrate()
            for i in 0..<40 {
                _ = try await stores[0].enqueue(inputName: "song\(i).wav", size: 1, modified: 0, contentHash: "h\(i)", model: "m")
            }
            return try await withThrowingTaskGroup(of: [Int64].self) { group in
                for (n, store) in stores.enumerated() {
                    group.addTask {
                        var mine: [Int64] = []
                        while let job = try await store.claimNext(worker: "host\(n)") { mine.append(job.id) }
                        return mine
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        let all = claimed.flatMap { $0 }
        #expect(all.count == 40 && Set(all).count == 40, "\(claimed.map { $0.count }) claims")
    }

    /// kill -9 or SIGSTOP of a host: its lease runs out, another host rescues the job and runs
    /// it as attempt 2, and the old holder, waking up, can neither renew nor finish it.
    @Test func anExpiredLeaseIsHandedOnAndTheOldHolderIsFenced() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        try await withStores(2, on: server, leases: [0.5]) { stores in
            let (a, b) = (stores[0], stores[1])
            try await a.migrate()
            let queued = try #require(try await a.enqueue(inputName: "set.flac", size: 10, modified: 1, contentHash: "abc", model: "m"))
            let first = try #require(try await a.claimNext(worker: "hostA:1"))
            let old = try #require(first.claim)
            #expect(first.id == queued.id && first.attempts == 1)
            // A job under a live lease (a minute: no timing of this test can end it) stays.
            _ = try await b.enqueue(inputName: "live.flac", size: 10, modified: 1, contentHash: "def", model: "m")
            let live = try #require(try await b.claimNext(worker: "hostB:2"))
            try await Task.sleep(for: .seconds(1))
            let rescued = try await b.rescueExpired(retries: 3)
            #expect(rescued.map(\.id) == [queued.id], "only the expired lease is rescued")
            #expect(rescued.map(\.state) == [.queued])
            #expect(try await b.isCurrent(try #require(live.claim)))
            #expect(rescued.first?.error?.contains("hostA:1") == true)
            #expect(try await a.renew(old) == false)
            let second = try #require(try await b.claimNext(worker: "hostB:2"))
            #expect(second.id == queued.id && second.attempts == 2)
            let published = Flag()
            let result = JobStore.JobResult(outputs: ["set/vocals.wav"], audioSeconds: 1)
            #expect(try await a.finish(old, result: result, publish: { published.set() }) == false)
            #expect(!published.isSet, "the old holder must publish nothing")
            #expect(try await b.finish(try #require(second.claim), result: result, publish: { published.set() }))
            #expect(published.isSet)
            let done = try #require(try await a.job(id: queued.id))
            #expect(done.state == .done && done.attempts == 2 && done.worker == "hostB:2" && done.outputs == ["set/vocals.wav"])
        }
    }

    @Test func aRescueWithAttemptsSpentFailsTheJobAndARenewedLeaseIsKept() async throws {
        let server = try PostgresTestServer()
        defer { server.stop() }
        try await withStores(2, on: server, leases: [0.5, 60]) { stores in
            let (store, long) = (stores[0], stores[1])
            try await store.migrate()
            _ = try await store.enqueue(inputName: "a.wav", size: 1, modified: 0, contentHash: "a", model: "m")
            _ = try await store.enqueue(inputName: "b.wav", size: 1, modified: 0, contentHash: "b", model: "m")
            let a = try #require(try await store.claimNext(worker: "h:1"))
            let b = try #require(try await store.claimNext(worker: "h:1"))
            #expect(try await long.renew(try #require(b.claim)), "renewed by a host whose lease is a minute")
            try await Task.sleep(for: .seconds(1))
            let rescued = try await store.rescueExpired(retries: 0)
            #expect(rescued.map(\.id) == [a.id] && rescued.first?.state == .failed, "\(rescued)")
            #expect(try await store.isCurrent(try #require(b.claim)))
        }
    }
}

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
