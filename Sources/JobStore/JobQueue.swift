/// The job queue as the daemon and `demucsctl` use it, whatever holds it: ``JobStore`` (one
/// SQLite file, one host: the default) or the PostgreSQL store (several hosts sharing one queue).
///
/// Every method is synchronous: the daemon's workers are plain threads that block while the
/// database answers, and `demucsctl` is a short-lived command. The semantics are those
/// documented on ``JobStore``'s methods of the same name; what differs between the back ends is
/// said here.
///
/// - Claims and fencing: ``claimNext(worker:model:)`` returns the job with its ``Claim``; every
///   later write of the attempt names it and changes nothing when it is no longer current.
/// - Leases: on a shared queue a claim lasts as long as its holder renews it
///   (``renew(_:)``); a claim whose lease ran out is handed on by ``rescueExpired(retries:)``,
///   which every host runs. On SQLite a claim lasts as long as the daemon that made it, and
///   crash recovery is ``recoverAtStart(node:retries:)``.
/// - Workers: every daemon registers itself under its node name; ``workers()`` lists them.
public protocol JobQueue: AnyObject, Sendable {
    /// Where the queue lives, for messages: a file path, or a database URL without password.
    var location: String { get }
    /// Whether several daemons may share this queue (and so the data folder).
    var isShared: Bool { get }

    // MARK: Intake

    func enqueue(inputName: String, size: Int64, modified: Double, contentHash: String, model: String) throws -> Job?
    func recordRejected(inputName: String, size: Int64, modified: Double, reason: String, model: String) throws -> Job?
    func latestJob(inputName: String) throws -> Job?

    // MARK: An attempt

    func claimNext(worker: String, model: String?) throws -> Job?
    func isCurrent(_ claim: Claim) throws -> Bool
    /// Extends the claim's lease (a shared queue); `false` when the claim is no longer
    /// current. On SQLite the same as ``isCurrent(_:)``: a claim there needs no renewal.
    func renew(_ claim: Claim) throws -> Bool
    func release(_ claim: Claim) throws -> Bool
    func adoptInput(_ claim: Claim, contentHash: String, size: Int64, modified: Double) throws -> Bool
    func updateProgress(_ claim: Claim, progress: Double) throws -> Bool
    func finish(_ claim: Claim, result: JobStore.JobResult, publish: () throws -> Void) throws -> Bool
    func fail(_ claim: Claim, error: String, retries: Int) throws -> JobState?
    func requeue(_ claim: Claim, reason: String?) throws -> Bool
    func allocateOutputName(for id: Int64, preferred: String, existsOnDisk: (String) -> Bool) throws -> String
    func reusableJobs(withHash contentHash: String, model: String, recipe: String, limit: Int) throws -> [Job]

    // MARK: Recovery

    /// At a daemon's start, before its workers run: the claims its previous life left.
    /// SQLite: every running job (one host owns the queue; see
    /// ``JobStore/requeueInterrupted(retries:)``). Shared: the running jobs held under this
    /// very node name (a restart with a fixed `--node`), then whatever lease ran out.
    func recoverAtStart(node: String, retries: Int) throws -> JobStore.InterruptedJobs
    /// Jobs whose lease ran out go back to the queue, or fail when their retries are spent;
    /// returns them as they now are. Nothing to do on SQLite (no leases): returns `[]`.
    func rescueExpired(retries: Int) throws -> [Job]

    // MARK: Operators

    func cancel(id: Int64) throws -> Bool
    func retry(id: Int64) throws -> Bool

    // MARK: Reading

    func counts() throws -> [JobState: Int]
    func running() throws -> [Job]
    func jobs(state: JobState?, limit: Int) throws -> [Job]
    func recentDone(limit: Int) throws -> [Job]
    func recentFailed(limit: Int) throws -> [Job]
    func job(id: Int64) throws -> Job?

    // MARK: Daemons

    /// Records (or replaces) the daemon `info.node` as started.
    func register(_ info: DaemonInfo) throws
    /// Heartbeat and status line of `node`; `problem` set or cleared.
    func heartbeat(node: String, status: String, problem: String?) throws
    /// Removes `node` (a clean shutdown).
    func unregister(node: String) throws
    /// Every registered daemon, alive or not, by node name.
    func workers() throws -> [WorkerStatus]
    /// Calls `wake` whenever another process may have queued a job (PostgreSQL's LISTEN/NOTIFY),
    /// until ``close()``. SQLite has no such signal: nothing happens, and the daemon's
    /// periodic look at the queue finds the job.
    func listen(_ wake: @escaping @Sendable () -> Void)

    func close() throws
}

extension JobQueue {
    /// ``requeue(_:reason:)`` without a reason (a clean shutdown).
    @discardableResult
    public func requeue(_ claim: Claim) throws -> Bool { try requeue(claim, reason: nil) }

    /// ``reusableJobs(withHash:model:recipe:limit:)``, the ten newest.
    public func reusableJobs(withHash contentHash: String, model: String, recipe: String) throws -> [Job] {
        try reusableJobs(withHash: contentHash, model: model, recipe: recipe, limit: 10)
    }
}
