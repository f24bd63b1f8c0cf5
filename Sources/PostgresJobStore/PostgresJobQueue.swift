import Dispatch
import Foundation
import JobStore
import Logging
import PostgresNIO

/// The PostgreSQL store as a ``JobQueue``, the synchronous interface of the daemon's threads and
/// of `demucsctl`: each call runs the store's async method in a task and blocks the calling
/// thread until it ends. Call it from plain threads (the daemon's workers, a command's main
/// thread), never from a task of the cooperative pool, whose threads it would block.
///
/// Opening starts the connection pool (PostgresNIO's `PostgresClient`) in a task of its own;
/// ``close()`` ends it. A call that gets no answer within ``answerTimeout`` (the server or the
/// network is down; the pool keeps trying to connect) fails with
/// ``JobStoreError/Kind/unreachable``, which the daemon treats as a machine fault: it waits
/// and tries again, losing nothing. The two calls that run a caller's closure inside their
/// transaction (``finish(_:result:publish:)``, ``allocateOutputName(for:preferred:existsOnDisk:)``)
/// wait for their end however long it takes, since the closure must not outlive the call.
public final class PostgresJobQueue: JobQueue {
    public let store: PostgresJobStore
    public let answerTimeout: Double
    private let pool: Task<Void, Never>
    private let listener = Listener()
    /// Where the pool and every call run (see ``ThreadExecutor``). Its threads live as long as
    /// the process: a daemon or command opens one queue.
    private let executor: ThreadExecutor

    public var location: String { store.url.description }
    public var isShared: Bool { true }

    /// Connects to the database at `url`; with `migrate` (the daemon) applies the migrations
    /// this build has, otherwise (`demucsctl`) checks that the schema is there.
    public init(url: DatabaseURL, lease: Double = PostgresJobStore.defaultLease, answerTimeout: Double = 30,
                migrate: Bool, logger: Logger = Logger(label: "demucsd.postgres")) throws {
        let store = PostgresJobStore(url: url, lease: lease, logger: logger)
        self.store = store
        self.answerTimeout = answerTimeout
        let executor = ThreadExecutor(name: "postgres")
        self.executor = executor
        pool = Task(executorPreference: executor) { await store.run() }
        do {
            if migrate {
                _ = try wait("migrate the database") { try await store.migrate() }
            } else {
                let versions = try wait("read the schema version") { try await store.appliedMigrations() }
                guard versions.contains(Migrations.all.last!.version) else {
                    throw JobStoreError(.incompatibleSchema, operation: "open the job database", path: url.description,
                                        reason: "the database has no demucsd schema of this version yet: start demucsd with --database once")
                }
            }
        } catch {
            pool.cancel()
            throw error
        }
    }

    // MARK: The bridge

    private final class Outcome<T>: @unchecked Sendable {
        var result: Result<T, any Error>?
    }

    /// Runs `body` and waits for it (at most ``answerTimeout`` when `bounded`).
    func wait<T>(_ operation: String, bounded: Bool = true, _ body: @escaping @Sendable () async throws -> T) throws -> T {
        let outcome = Outcome<T>()
        let done = DispatchSemaphore(value: 0)
        let task = Task(executorPreference: executor) {
            do { outcome.result = .success(try await body()) } catch { outcome.result = .failure(error) }
            done.signal()
        }
        if bounded {
            if done.wait(timeout: .now() + answerTimeout) == .timedOut {
                task.cancel()
                throw JobStoreError(.unreachable, operation: operation, path: location,
                                    reason: "the database did not answer within \(Int(answerTimeout)) s")
            }
        } else {
            done.wait()
        }
        switch outcome.result! {
        case .success(let value): return value
        case .failure(let error): throw Self.storeError(error, operation: operation, path: location)
        }
    }

    /// Any error as a ``JobStoreError`` naming the operation: connection failures are
    /// ``JobStoreError/Kind/unreachable``, the server's refusals ``JobStoreError/Kind/database``.
    static func storeError(_ error: any Error, operation: String, path: String) -> JobStoreError {
        if let error = error as? JobStoreError { return error }
        if let error = error as? PSQLError {
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed,
                 .queryCancelled:
                return JobStoreError(.unreachable, operation: operation, path: path,
                                     reason: "the database cannot be reached (\(error.code))")
            case .server:
                let state = error.serverInfo?[.sqlState] ?? ""
                let message = error.serverInfo?[.message] ?? "\(error)"
                // Class 08: connection exceptions; 57P0x: the server is shutting down or starting.
                let kind: JobStoreError.Kind = state.hasPrefix("08") || state.hasPrefix("57P") ? .unreachable : .database
                return JobStoreError(kind, operation: operation, path: path, sql: error.query?.sql,
                                     reason: "\(message) (SQLSTATE \(state))")
            default:
                return JobStoreError(.database, operation: operation, path: path, reason: "\(error.code): \(error)")
            }
        }
        if error is CancellationError {
            return JobStoreError(.unreachable, operation: operation, path: path, reason: "the request was cancelled")
        }
        return JobStoreError(.database, operation: operation, path: path, reason: "\(error)")
    }

    /// Holds a caller's closure for a call that does not return before the closure is done;
    /// ``giveBack()`` drops it before the call returns, while the task that ran it may still
    /// hold the box (a non-escaping closure must not outlive the call).
    private final class Borrowed<F>: @unchecked Sendable {
        private(set) var body: F?
        init(_ body: F) { self.body = body }
        func giveBack() { body = nil }
    }

    // MARK: JobQueue

    public func enqueue(inputName: String, size: Int64, modified: Double, contentHash: String, model: String) throws -> Job? {
        try wait("enqueue \(inputName)") { [store] in
            try await store.enqueue(inputName: inputName, size: size, modified: modified, contentHash: contentHash, model: model)
        }
    }

    public func recordRejected(inputName: String, size: Int64, modified: Double, reason: String, model: String) throws -> Job? {
        try wait("record rejected input \(inputName)") { [store] in
            try await store.recordRejected(inputName: inputName, size: size, modified: modified, reason: reason, model: model)
        }
    }

    public func latestJob(inputName: String) throws -> Job? {
        try wait("read latest job of \(inputName)") { [store] in try await store.latestJob(inputName: inputName) }
    }

    public func claimNext(worker: String, model: String?) throws -> Job? {
        try wait("claim next job") { [store] in try await store.claimNext(worker: worker, model: model) }
    }

    public func isCurrent(_ claim: Claim) throws -> Bool {
        try wait("check \(claim)") { [store] in try await store.isCurrent(claim) }
    }

    public func renew(_ claim: Claim) throws -> Bool {
        try wait("renew the lease of \(claim)") { [store] in try await store.renew(claim) }
    }

    @discardableResult
    public func release(_ claim: Claim) throws -> Bool {
        try wait("release \(claim)") { [store] in try await store.release(claim) }
    }

    public func adoptInput(_ claim: Claim, contentHash: String, size: Int64, modified: Double) throws -> Bool {
        try wait("record the input read by \(claim)") { [store] in
            try await store.adoptInput(claim, contentHash: contentHash, size: size, modified: modified)
        }
    }

    @discardableResult
    public func updateProgress(_ claim: Claim, progress: Double) throws -> Bool {
        try wait("update progress of job \(claim.jobID)") { [store] in try await store.updateProgress(claim, progress: progress) }
    }

    public func finish(_ claim: Claim, result: JobStore.JobResult, publish: () throws -> Void) throws -> Bool {
        try withoutActuallyEscaping(publish) { publish in
            let borrowed = Borrowed(publish)
            defer { borrowed.giveBack() }
            return try wait("finish job \(claim.jobID)", bounded: false) { [store] in
                try await store.finish(claim, result: result, publish: { try borrowed.body!() })
            }
        }
    }

    public func fail(_ claim: Claim, error: String, retries: Int) throws -> JobState? {
        try wait("record failure of job \(claim.jobID)") { [store] in try await store.fail(claim, error: error, retries: retries) }
    }

    @discardableResult
    public func requeue(_ claim: Claim, reason: String?) throws -> Bool {
        try wait("requeue job \(claim.jobID)") { [store] in try await store.requeue(claim, reason: reason) }
    }

    public func allocateOutputName(for id: Int64, preferred: String, existsOnDisk: (String) -> Bool) throws -> String {
        try withoutActuallyEscaping(existsOnDisk) { existsOnDisk in
            let borrowed = Borrowed(existsOnDisk)
            defer { borrowed.giveBack() }
            return try wait("allocate output folder name for job \(id)", bounded: false) { [store] in
                try await store.allocateOutputName(for: id, preferred: preferred, existsOnDisk: { borrowed.body!($0) })
            }
        }
    }

    public func reusableJobs(withHash contentHash: String, model: String, recipe: String, limit: Int) throws -> [Job] {
        try wait("find done jobs with hash \(contentHash)") { [store] in
            try await store.reusableJobs(withHash: contentHash, model: model, recipe: recipe, limit: limit)
        }
    }

    public func recoverAtStart(node: String, retries: Int) throws -> JobStore.InterruptedJobs {
        try wait("recover the jobs of \(node)") { [store] in try await store.recoverAtStart(node: node, retries: retries) }
    }

    public func rescueExpired(retries: Int) throws -> [Job] {
        try wait("rescue jobs whose lease ran out") { [store] in try await store.rescueExpired(retries: retries) }
    }

    @discardableResult
    public func cancel(id: Int64) throws -> Bool {
        try wait("cancel job \(id)") { [store] in try await store.cancel(id: id) }
    }

    @discardableResult
    public func retry(id: Int64) throws -> Bool {
        try wait("retry job \(id)") { [store] in try await store.retry(id: id) }
    }

    public func counts() throws -> [JobState: Int] {
        try wait("count jobs") { [store] in try await store.counts() }
    }

    public func running() throws -> [Job] {
        try wait("list running jobs") { [store] in try await store.running() }
    }

    public func jobs(state: JobState?, limit: Int) throws -> [Job] {
        try wait("list jobs") { [store] in try await store.jobs(state: state, limit: limit) }
    }

    public func recentDone(limit: Int) throws -> [Job] {
        try wait("list done jobs") { [store] in try await store.recentFinished(.done, limit: limit) }
    }

    public func recentFailed(limit: Int) throws -> [Job] {
        try wait("list failed jobs") { [store] in try await store.recentFinished(.failed, limit: limit) }
    }

    public func job(id: Int64) throws -> Job? {
        try wait("read job \(id)") { [store] in try await store.job(id: id) }
    }

    public func register(_ info: DaemonInfo) throws {
        try wait("register \(info.node)") { [store] in try await store.register(info) }
    }

    public func heartbeat(node: String, status: String, problem: String?) throws {
        try wait("record the heartbeat of \(node)") { [store] in
            try await store.heartbeat(node: node, status: status, problem: problem)
        }
    }

    public func unregister(node: String) throws {
        try wait("unregister \(node)") { [store] in try await store.unregister(node: node) }
    }

    public func workers() throws -> [WorkerStatus] {
        try wait("list workers") { [store] in try await store.workers() }
    }

    public func listen(_ wake: @escaping @Sendable () -> Void) {
        listener.start(store: store, executor: executor, wake: wake)
    }

    public func close() throws {
        listener.stop()
        pool.cancel()
    }
}
