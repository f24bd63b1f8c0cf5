import Foundation
import PostgresTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Several real `demucsd` processes ("hosts") on one data folder and one real PostgreSQL
/// server, with the small test model: each file is separated once and published once, and a
/// host killed, frozen or cut off from its database costs no job and hands out nothing wrong.
/// Everything is read through `demucsctl --database`, as an operator would.
extension DaemonEndToEnd {
    @Suite(.enabled(if: PostgresTestServer.available, "needs PostgreSQL's server (apt install postgresql)"))
    struct SharedQueue {
        /// A job as `demucsctl jobs --json` prints it.
        struct JobRow: Decodable {
            var id: Int64
            var file: String
            var state: String
            var progress: Double
            var attempts: Int
            var worker: String?
            var error: String?
            var output: String?
        }

        /// Hosts that renew every second and lose a job 8 s after their last renewal (long
        /// enough that a busy CI machine does not cost a renewal), one
        /// thread each (a long file then takes long enough to be interrupted).
        static let config = """
            [jobs]
            settle_seconds = 0.3
            threads = 1
            [database]
            lease_seconds = 8
            heartbeat_seconds = 1
            """

        final class Cluster {
            let server: PostgresTestServer
            let hosts: [DaemonHarness]
            var first: DaemonHarness { hosts[0] }
            var url: String { server.url.description }

            init(hosts count: Int, config: String = SharedQueue.config) throws {
                server = try PostgresTestServer()
                let first = try DaemonHarness(config: config)
                hosts = try [first] + (1..<count).map { _ in try DaemonHarness(config: config, data: first.data) }
            }

            deinit {
                for host in hosts {
                    host.signal(SIGCONT)
                    host.stop(timeout: 5)
                }
                server.stop()
            }

            func node(_ i: Int) -> String { "host\(i)" }
            func index(of node: String?) -> Int? { hosts.indices.first { self.node($0) == node } }

            /// Starts every host and waits until each has registered and sent a heartbeat.
            func start() throws {
                for i in hosts.indices { try hosts[i].start(extraArguments: ["--database", url, "--node", node(i)]) }
                var last = ""
                let ready = waitUntil(timeout: 60) {
                    guard hosts.allSatisfy({ $0.isRunning }) else { return true }
                    let (object, run) = try status()
                    last = run.stdout + run.stderr
                    let workers = object["workers"] as? [[String: Any]] ?? []
                    return hosts.indices.allSatisfy { i in
                        workers.contains { $0["name"] as? String == node(i) && $0["alive"] as? Bool == true
                            && $0["status"] as? String != "starting" }
                    }
                }
                try #require(ready && hosts.allSatisfy { $0.isRunning }, "the hosts did not come up; status:\n\(last)\nlogs:\n\(logs)")
            }

            var logs: String {
                hosts.indices.map { "--- \(node($0)):\n" + hosts[$0].log }.joined(separator: "\n")
            }

            func ctl(_ arguments: [String]) throws -> CommandRun {
                try runCommand(E2EPaths.demucsctl, arguments + ["--database", url])
            }

            func status() throws -> (object: [String: Any], run: CommandRun) {
                let run = try ctl(["status", "--json"])
                let object = (try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8))) as? [String: Any]
                return (object ?? [:], run)
            }

            func jobs() throws -> [JobRow] {
                let run = try ctl(["jobs", "--json", "--limit", "10000"])
                try #require(run.status == 0, "demucsctl jobs failed: \(run.stderr)")
                return try JSONDecoder().decode([JobRow].self, from: Data(run.stdout.utf8)).reversed()
            }

            @discardableResult
            func waitForJobs(_ what: String, timeout: Double = 90, sourceLocation: SourceLocation = #_sourceLocation,
                             _ condition: ([JobRow]) -> Bool) throws -> [JobRow] {
                var last: [JobRow] = []
                let ok = waitUntil(timeout: timeout, step: 0.2) {
                    last = try jobs()
                    return condition(last)
                }
                let summary = last.map { "#\($0.id) \($0.file) \($0.state) attempts=\($0.attempts) worker=\($0.worker ?? "-") error=\($0.error ?? "-")" }
                try #require(ok, "timed out after \(timeout) s waiting for \(what); jobs:\n\(summary.joined(separator: "\n"))\n\(logs)",
                             sourceLocation: sourceLocation)
                return last
            }

            /// Drops a file made on the fly into the shared input folder (written beside it, then
            /// moved in, as a download would).
            @discardableResult
            func drop(_ name: String, seconds: Double, seed: UInt64) throws -> Int {
                let frames = try TestAudio.write(first.root + "/" + name, seconds: seconds, seed: seed)
                try shell("/bin/mv", [first.root + "/" + name, first.input + "/" + name])
                return frames
            }

            /// How many times any host logged that it published `name`.
            func publications(of name: String) -> Int {
                hosts.map { $0.log.components(separatedBy: "job done: \(name) ->").count - 1 }.reduce(0, +)
            }

            /// Drops a long file and waits until a host separates it; returns that host's index.
            func startLongJob(_ name: String, seed: UInt64) throws -> (host: Int, frames: Int) {
                let frames = try drop(name, seconds: 30, seed: seed)
                let rows = try waitForJobs("\(name) to make progress") { jobs in
                    jobs.contains { $0.file == name && $0.state == "running" && $0.progress > 0 }
                }
                let row = try #require(rows.first { $0.file == name })
                return (try #require(index(of: row.worker), "worker \(row.worker ?? "-")"), frames)
            }
        }

        @Test func filesDroppedOnceAreSeparatedOnceAndPublishedOnce() throws {
            let cluster = try Cluster(hosts: 3)
            try cluster.start()
            var frames: [String: Int] = [:]
            for i in 0..<6 { frames["song \(i).wav"] = try cluster.drop("song \(i).wav", seconds: 3, seed: 100 + UInt64(i)) }
            let jobs = try cluster.waitForJobs("every song to be done") { jobs in
                jobs.count >= 6 && jobs.allSatisfy { $0.state == "done" }
            }
            #expect(jobs.count == 6, "one job per file: \(jobs.map(\.file))")
            for (name, count) in frames {
                let rows = jobs.filter { $0.file == name }
                #expect(rows.count == 1 && rows.first?.attempts == 1, "\(name): \(rows.map { ($0.state, $0.attempts) })")
                #expect(cluster.index(of: rows.first?.worker) != nil, "\(name) names the host that ran it")
                #expect(cluster.publications(of: name) == 1, "\(name) published once")
                try cluster.first.expectCompleteOutput(String(name.dropLast(4)), frames: count)
            }
            #expect(cluster.first.entries(cluster.first.staging).isEmpty)
            let (status, _) = try cluster.status()
            let workers = try #require(status["workers"] as? [[String: Any]])
            #expect(workers.compactMap { $0["name"] as? String }.sorted() == ["host0", "host1", "host2"])
            #expect(workers.allSatisfy { $0["alive"] as? Bool == true })
            #expect((status["counts"] as? [String: Int])?["done"] == 6)
            for host in cluster.hosts { #expect(host.stop() == 0, "\(host.log)") }
            let left = try cluster.status().object["workers"] as? [[String: Any]] ?? []
            #expect(left.isEmpty, "hosts that stop cleanly leave the workers table: \(left)")
        }

        /// kill -9 of the host running a job: another host takes it over once the lease ran
        /// out, runs it as attempt 2 and publishes it once; status shows the dead host.
        @Test func aKilledHostsJobIsDoneByAnotherHost() throws {
            let cluster = try Cluster(hosts: 3)
            try cluster.start()
            let (victim, frames) = try cluster.startLongJob("long.wav", seed: 7)
            let killed = Date()
            cluster.hosts[victim].killHard()
            let rows = try cluster.waitForJobs("long.wav to be done by another host", timeout: 120) { jobs in
                jobs.contains { $0.file == "long.wav" && $0.state == "done" }
            }
            let row = try #require(rows.first { $0.file == "long.wav" })
            #expect(rows.filter { $0.file == "long.wav" }.count == 1)
            #expect(row.attempts == 2, "the killed attempt counts")
            #expect(row.worker != cluster.node(victim))
            #expect(cluster.publications(of: "long.wav") == 1)
            try cluster.first.expectCompleteOutput("long", frames: frames)
            #expect(cluster.first.entries(cluster.first.staging).isEmpty, "the dead host's staging folder was removed")
            let rescued = cluster.hosts.indices.filter { $0 != victim }.contains { cluster.hosts[$0].log.contains("ran out") }
            #expect(rescued, "a living host logged the rescue")
            // Alive means a heartbeat within three 5 s intervals.
            var workers: [[String: Any]] = []
            let seen = waitUntil(timeout: max(1, 30 - Date().timeIntervalSince(killed))) {
                workers = try cluster.status().object["workers"] as? [[String: Any]] ?? []
                return workers.contains { $0["name"] as? String == cluster.node(victim) && $0["alive"] as? Bool == false }
            }
            #expect(seen, "the killed host is listed as not alive: \(workers)")
            #expect(workers.filter { $0["alive"] as? Bool == true }.count == 2)
        }

        /// A host frozen (SIGSTOP) past its lease loses its job to another host; woken up, it
        /// changes nothing of that job and publishes nothing.
        @Test func aFrozenHostThatWakesUpChangesNothing() throws {
            let cluster = try Cluster(hosts: 3)
            try cluster.start()
            let (frozen, frames) = try cluster.startLongJob("set.flac", seed: 8)
            cluster.hosts[frozen].signal(SIGSTOP)
            let taken = try cluster.waitForJobs("set.flac to be taken over", timeout: 60) { jobs in
                jobs.contains { $0.file == "set.flac" && $0.worker != cluster.node(frozen) && $0.attempts == 2 }
            }
            let other = try #require(taken.first { $0.file == "set.flac" }?.worker)
            cluster.hosts[frozen].signal(SIGCONT)
            let rows = try cluster.waitForJobs("set.flac to be done", timeout: 120) { jobs in
                jobs.contains { $0.file == "set.flac" && $0.state == "done" }
            }
            let woke = waitUntil(timeout: 30) { cluster.hosts[frozen].log.contains("published nothing") }
            #expect(woke, "the woken host stopped its attempt:\n\(cluster.hosts[frozen].log)")
            let after = try cluster.jobs().filter { $0.file == "set.flac" }
            #expect(after.count == 1 && after.first?.state == "done" && after.first?.worker == other,
                    "\(after.map { ($0.state, $0.worker ?? "-") }) (was \(rows.filter { $0.file == "set.flac" }.map(\.state)))")
            #expect(cluster.publications(of: "set.flac") == 1)
            try cluster.first.expectCompleteOutput("set", frames: frames)
            #expect(cluster.hosts[frozen].isRunning, "the woken host serves on")
        }

        /// The database restarted mid-job: the hosts reconnect and the job ends done in its
        /// first attempt; a file dropped meanwhile is queued once the database is back.
        @Test func aDatabaseRestartCostsNoJob() throws {
            let cluster = try Cluster(hosts: 3)
            try cluster.start()
            let (_, frames) = try cluster.startLongJob("long.wav", seed: 9)
            try cluster.server.restart()
            let small = try cluster.drop("after.wav", seconds: 2, seed: 10)
            let rows = try cluster.waitForJobs("both files to be done", timeout: 120) { jobs in
                ["long.wav", "after.wav"].allSatisfy { name in jobs.contains { $0.file == name && $0.state == "done" } }
            }
            #expect(rows.count == 2)
            #expect(rows.first { $0.file == "long.wav" }?.attempts == 1, "the running attempt survived the restart")
            try cluster.first.expectCompleteOutput("long", frames: frames)
            try cluster.first.expectCompleteOutput("after", frames: small)
            #expect(cluster.hosts.allSatisfy { $0.isRunning })
        }

        /// `demucsctl cancel` and `retry` through the database, from no host in particular: the
        /// running host stops and publishes nothing; the retried job is done once.
        @Test func cancelAndRetryWorkFromAnywhere() throws {
            let cluster = try Cluster(hosts: 3)
            try cluster.start()
            let (runner, frames) = try cluster.startLongJob("long.wav", seed: 11)
            let id = try #require(try cluster.jobs().first { $0.file == "long.wav" }?.id)
            let cancel = try cluster.ctl(["cancel", "\(id)"])
            #expect(cancel.status == 0, "\(cancel.stdout) \(cancel.stderr)")
            let stopped = waitUntil(timeout: 30) { cluster.hosts[runner].log.contains("published nothing") }
            #expect(stopped, "the running host stopped the attempt")
            #expect(try cluster.jobs().first { $0.id == id }?.state == "cancelled")
            #expect(!FileManager.default.fileExists(atPath: cluster.first.output + "/long"))
            let retry = try cluster.ctl(["retry", "\(id)"])
            #expect(retry.status == 0, "\(retry.stdout) \(retry.stderr)")
            let rows = try cluster.waitForJobs("long.wav to be done", timeout: 120) { jobs in
                jobs.contains { $0.id == id && $0.state == "done" }
            }
            #expect(rows.first { $0.id == id }?.attempts == 1, "a retry starts the count again")
            #expect(cluster.publications(of: "long.wav") == 1)
            try cluster.first.expectCompleteOutput("long", frames: frames)
        }
    }
}
