import ArgumentParser
import Foundation
import JobStore
import Logging
import PostgresJobStore
#if canImport(Glibc)
import Glibc
#endif

/// Options shared by the commands that read the daemon's database.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The daemon's data folder (holds input/, output/ and state/jobs.sqlite).", valueName: "DIR"))
    var data: String = ProcessInfo.processInfo.environment["DEMUCSD_DATA"] ?? "./data"

    @Option(help: ArgumentHelp("The shared queue's PostgreSQL URL, as given to demucsd --database (default: $DEMUCSD_DATABASE; without it, the SQLite file in --data).", valueName: "URL"))
    var database: String? = ProcessInfo.processInfo.environment["DEMUCSD_DATABASE"].flatMap { $0.isEmpty ? nil : $0 }

    var databasePath: String { URL(fileURLWithPath: data).standardizedFileURL.path + "/state/jobs.sqlite" }

    /// How to name the queue in messages and hints (`--data DIR` or `--database URL`).
    var queueArgument: String {
        if let database, let url = try? DatabaseURL(database) { return "--database '\(url)'" }
        return "--data \(data)"
    }

    /// Opens the queue for reading; a missing one is a clear error with exit code 3.
    func openReadOnly() throws -> any JobQueue {
        if let shared = try openShared() { return shared }
        guard FileManager.default.fileExists(atPath: databasePath) else {
            printError("no job database at \(databasePath): start demucsd with --data \(data) first, or pass --data DIR")
            throw ExitCode(3)
        }
        do {
            return try JobStore.openReadOnly(path: databasePath)
        } catch {
            printError("cannot read \(databasePath): \(error) (operators need to be in the service's group, see docs/SYSTEMD.md)")
            throw ExitCode(3)
        }
    }

    func openReadWrite() throws -> any JobQueue {
        if let shared = try openShared() { return shared }
        guard FileManager.default.fileExists(atPath: databasePath) else {
            printError("no job database at \(databasePath): start demucsd with --data \(data) first, or pass --data DIR")
            throw ExitCode(3)
        }
        do {
            return try JobStore.openReadWrite(path: databasePath)
        } catch {
            printError("cannot open \(databasePath) for writing: \(error) (run as the service user or root)")
            throw ExitCode(3)
        }
    }

    /// The PostgreSQL queue of `--database`, or nil without it. Exit code 3 when it cannot be
    /// reached or has no demucsd schema.
    private func openShared() throws -> (any JobQueue)? {
        guard let database else { return nil }
        let url: DatabaseURL
        do {
            url = try DatabaseURL(database)
        } catch {
            printError("\(error)")
            throw ExitCode(3)
        }
        do {
            return try PostgresJobQueue(url: url, answerTimeout: 10, migrate: false, logger: Logger(label: "demucsctl"))
        } catch {
            printError("cannot open the job queue at \(url): \(error)")
            throw ExitCode(3)
        }
    }
}

/// Whether the daemon that last wrote its info is alive: its process exists and its heartbeat
/// (written every few seconds) is recent.
func daemonIsRunning(_ info: DaemonInfo?, now: Double = Date().timeIntervalSince1970) -> Bool {
    guard let info, info.pid > 0 else { return false }
    let alive = kill(info.pid, 0) == 0 || errno == EPERM
    return alive && now - info.heartbeat < 60
}

/// The node part of a worker identity `NODE/worker-N`.
func nodeName(_ worker: String) -> String {
    guard let slash = worker.lastIndex(of: "/") else { return worker }
    return String(worker[..<slash])
}

func formatDuration(_ seconds: Double) -> String {
    let s = max(0, Int(seconds.rounded()))
    if s >= 3600 { return String(format: "%dh %02dm", s / 3600, (s % 3600) / 60) }
    return String(format: "%d:%02d", s / 60, s % 60)
}

/// `demucsctl jobs`: lists jobs, newest first.
struct Jobs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the daemon's jobs (newest first).")

    @OptionGroup var options: DataOptions

    @Option(help: "Only jobs in this state: queued, running, done, failed, cancelled.")
    var state: JobState?

    @Option(help: "At most this many jobs.")
    var limit: Int = 50

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let store = try options.openReadOnly()
        let jobs = try store.jobs(state: state, limit: limit)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(jobs.map(JobSummary.init)), as: UTF8.self))
            return
        }
        if jobs.isEmpty {
            print(state.map { "no \($0.rawValue) jobs" } ?? "no jobs yet: drop audio files into \(options.data)/input")
            return
        }
        print("   ID  STATE      PROGRESS  FILE")
        for job in jobs {
            let progress = job.state == .running ? String(format: "%7.0f%%", job.progress * 100) : "        "
            print(String(format: "%5lld  %-9@ %@  %@", job.id, job.state.rawValue, progress, job.inputName))
            if let error = job.error, job.state == .failed || job.state == .queued {
                print("       \(job.state == .queued ? "last error" : "error"): \(error)")
            }
        }
    }
}

/// The JSON shape of a job for `jobs --json` and `status --json`.
struct JobSummary: Encodable {
    var id: Int64
    var file: String
    var state: String
    var progress: Double
    var attempts: Int
    /// The node (daemon) that runs or ran the job's latest attempt.
    var worker: String?
    var error: String?
    var output: String?
    var audio_seconds: Double?
    var started_at: Double?
    var finished_at: Double?

    init(_ job: Job) {
        id = job.id
        file = job.inputName
        state = job.state.rawValue
        progress = job.progress
        attempts = job.attempts
        worker = job.worker.map(nodeName)
        error = job.error
        output = job.outputName.map { "output/demucs/" + $0 }
        audio_seconds = job.audioSeconds
        started_at = job.startedAt
        finished_at = job.finishedAt
    }
}

extension JobState: ExpressibleByArgument {}

/// Runs `action` on job `id` through a writable store, with the messages and exit codes that
/// `retry` and `cancel` share: 1 for an unknown job or a state the action does not apply to.
private func changeJob(_ options: DataOptions, id: Int64, allowed: String,
                       _ action: (any JobQueue) throws -> Bool, done: (Job) -> String) throws {
    let store = try options.openReadWrite()
    guard let job = try store.job(id: id) else {
        printError("no job \(id); list them with demucsctl jobs")
        throw ExitCode(1)
    }
    guard try action(store) else {
        printError("job \(id) is \(job.state.rawValue); only \(allowed) jobs can be changed this way")
        throw ExitCode(1)
    }
    print(done(job))
}

/// `demucsctl retry ID`: queues a failed or cancelled job again, or starts a running one over.
struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Queue a failed or cancelled job again, or start a running one over (its attempt stops at its next segment).")
    @OptionGroup var options: DataOptions
    @Argument(help: "Job id (see demucsctl jobs).") var id: Int64

    func run() throws {
        try changeJob(options, id: id, allowed: "failed, cancelled or running", { try $0.retry(id: id) },
                      done: { job in
                          job.state == .running
                              ? "job \(id) (\(job.inputName)) queued again; the running attempt stops at its next segment"
                              : "job \(id) (\(job.inputName)) queued again"
                      })
    }
}

/// `demucsctl cancel ID`: cancels a queued job, or a running one at its next segment.
struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a queued or running job (a running one stops at its next segment).")
    @OptionGroup var options: DataOptions
    @Argument(help: "Job id (see demucsctl jobs).") var id: Int64

    func run() throws {
        try changeJob(options, id: id, allowed: "queued or running", { try $0.cancel(id: id) },
                      done: { "job \(id) (\($0.inputName)) cancelled" + ($0.state == .running ? "; it stops at its next segment" : "") })
    }
}
