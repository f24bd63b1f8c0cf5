import ArgumentParser
import Foundation
import JobStore

/// `demucsctl status`: what the daemon is doing, read from its database (no daemon round trip,
/// so it answers at once even while a separation keeps both cores busy).
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show whether demucsd runs, the current job with its progress, the queue, and recent results.",
        discussion: "Exit codes: 0 the daemon runs; 1 it is not running; 3 no readable database.")

    @OptionGroup var options: DataOptions

    @Flag(help: "Print JSON (daemon.running, workers, counts.queued/running/done/failed/cancelled, current, ...).")
    var json = false

    /// How often a daemon records its heartbeat; a worker is alive while its last one is
    /// younger than three of these.
    static let heartbeatInterval: Double = 5

    func run() throws {
        let store = try options.openReadOnly()
        let now = Date().timeIntervalSince1970
        let workers = try store.workers()
        // One daemon (SQLite): is its process there and its heartbeat fresh. Shared: is any alive.
        let alive: [String: Bool] = Dictionary(workers.map { worker in
            (worker.info.node, store.isShared ? worker.isAlive(heartbeatInterval: Self.heartbeatInterval)
                                              : daemonIsRunning(worker.info, now: now))
        }, uniquingKeysWith: { a, _ in a })
        let info = workers.first { alive[$0.info.node] == true }?.info ?? workers.first?.info
        let running = alive.values.contains(true)
        let counts = try store.counts()
        let current = try store.running()
        let done = try store.recentDone(limit: 5)
        let failed = try store.recentFailed(limit: 5)

        let hosts = workers.map { worker in
            Host(worker: worker, alive: alive[worker.info.node] ?? false,
                 current: current.filter { $0.holder.map(nodeName) == worker.info.node })
        }
        if json {
            print(try jsonReport(info: info, running: running, hosts: hosts, counts: counts, current: current, done: done,
                                 failed: failed, now: now))
        } else {
            printReport(info: info, running: running, counts: counts, current: current, done: done, failed: failed, now: now)
            if store.isShared { printHosts(hosts, now: now) }
        }
        if !running { throw ExitCode(1) }
    }

    /// A daemon as the report shows it.
    struct Host {
        var worker: WorkerStatus
        var alive: Bool
        var current: [Job]
    }

    private func printHosts(_ hosts: [Host], now: Double) {
        print("hosts: \(hosts.filter(\.alive).count) alive of \(hosts.count)")
        for host in hosts {
            let info = host.worker.info
            var line = "  \(info.node): " + (host.alive ? "alive" : "not alive")
            line += " (pid \(info.pid), version \(info.version), model \(info.model), last heartbeat \(formatDuration(host.worker.secondsSinceHeartbeat)) ago)"
            line += host.current.isEmpty ? ", idle" : ", separating " + host.current.map { "#\($0.id) \($0.inputName)" }.joined(separator: ", ")
            print(line)
        }
    }

    private func eta(_ job: Job, now: Double) -> Double? {
        guard let started = job.startedAt, job.progress > 0.01 else { return nil }
        let elapsed = now - started
        return elapsed / job.progress - elapsed
    }

    private func printReport(info: DaemonInfo?, running: Bool, counts: [JobState: Int], current: [Job],
                             done: [Job], failed: [Job], now: Double) {
        if running, let info {
            print("demucsd: running (pid \(info.pid), up \(formatDuration(now - info.startedAt)), version \(info.version), model \(info.model))")
        } else {
            print("demucsd: not running" + (info.map { " (last seen \(formatDuration(now - $0.heartbeat)) ago)" } ?? ""))
        }
        if let problem = info?.problem, running { print("problem: \(problem)") }
        if current.isEmpty {
            print("current: nothing")
        }
        for job in current {
            let width = 30
            let filled = Int(job.progress * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let etaText = eta(job, now: now).map { "ETA " + formatDuration($0) } ?? "ETA --:--"
            print(String(format: "current: #%lld %@  %@ %3.0f%%  %@", job.id, job.inputName, bar, job.progress * 100, etaText))
        }
        print("queue: \(counts[.queued] ?? 0) waiting; done \(counts[.done] ?? 0), failed \(counts[.failed] ?? 0), cancelled \(counts[.cancelled] ?? 0)")
        if !done.isEmpty {
            print("last completed:")
            for job in done {
                var line = "  #\(job.id) \(job.inputName)"
                if let name = job.outputName { line += " -> output/demucs/\(name)/" }
                if let s = job.startedAt, let f = job.finishedAt {
                    line += " in \(formatDuration(f - s))"
                    if let audio = job.audioSeconds, f > s, job.reusedFrom == nil {
                        line += String(format: " (%@ of audio, %.2fx real time)", formatDuration(audio), audio / (f - s))
                    }
                }
                if let from = job.reusedFrom { line += " (stems reused from #\(from))" }
                print(line)
            }
        }
        if !failed.isEmpty {
            print("last failures:")
            for job in failed { print("  #\(job.id) \(job.inputName): \(job.error ?? "unknown error")") }
            print("  (retry with: demucsctl retry ID \(options.queueArgument))")
        }
        if !running { print("start it with: demucsd --data \(options.data)  (or systemctl start demucsd)") }
    }

    private func jsonReport(info: DaemonInfo?, running: Bool, hosts: [Host], counts: [JobState: Int], current: [Job],
                            done: [Job], failed: [Job], now: Double) throws -> String {
        var daemon: [String: Any] = ["running": running]
        if let info {
            daemon["pid"] = Int(info.pid)
            daemon["started_at"] = info.startedAt
            daemon["uptime_seconds"] = running ? now - info.startedAt : NSNull()
            daemon["version"] = info.version
            daemon["model"] = info.model
            daemon["status"] = info.status
            daemon["problem"] = info.problem ?? NSNull()
            daemon["heartbeat"] = info.heartbeat
        }
        var countsObject: [String: Int] = [:]
        for state in JobState.allCases { countsObject[state.rawValue] = counts[state] ?? 0 }
        let currentObject: Any = current.first.map { job -> [String: Any] in
            ["id": job.id, "file": job.inputName, "progress": job.progress,
             "eta_seconds": eta(job, now: now) ?? NSNull(), "started_at": job.startedAt ?? NSNull()]
        } ?? NSNull()
        func summary(_ job: Job) -> [String: Any] {
            ["id": job.id, "attempts": job.attempts, "worker": job.worker.map(nodeName) ?? NSNull(), "file": job.inputName, "state": job.state.rawValue, "error": job.error ?? NSNull(),
             "output": job.outputName.map { "output/demucs/" + $0 } ?? NSNull(),
             "audio_seconds": job.audioSeconds ?? NSNull(),
             "reused_from": job.reusedFrom ?? NSNull(),
             "seconds": (job.finishedAt.flatMap { f in job.startedAt.map { f - $0 } }) ?? NSNull()]
        }
        let workersObject: [[String: Any]] = hosts.map { host in
            let info = host.worker.info
            return ["name": info.node, "alive": host.alive, "pid": Int(info.pid), "version": info.version,
                    "model": info.model, "started_at": info.startedAt, "heartbeat": info.heartbeat,
                    "heartbeat_age_seconds": host.worker.secondsSinceHeartbeat, "status": info.status,
                    "problem": info.problem ?? NSNull(),
                    "current": host.current.first.map { ["id": $0.id, "file": $0.inputName, "progress": $0.progress] as [String: Any] } ?? NSNull(),
                    "running_jobs": host.current.map(\.id)]
        }
        let object: [String: Any] = [
            "daemon": daemon, "workers": workersObject, "counts": countsObject, "current": currentObject,
            "running_jobs": current.map(summary), "recent_done": done.map(summary), "recent_failed": failed.map(summary),
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
