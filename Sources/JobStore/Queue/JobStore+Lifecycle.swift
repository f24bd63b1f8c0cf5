internal import GRDB

/// State transitions of a job's life. Each one is a single write transaction. A worker's writes
/// are guarded by its ``Claim`` (`WHERE id = ? AND claimSequence = ? AND holder = ? AND state =
/// 'running'`), an operator's by the expected current state, so a transition that lost a race
/// (e.g. `demucsctl cancel` between the worker's last check and `finish`) does nothing instead
/// of resurrecting the job; the return value tells the caller.
extension JobStore {
    /// Records progress of a running job (clamped to 0...1; NaN counts as 0).
    ///
    /// One small UPDATE, cheap enough for a few calls per second.
    ///
    /// - Returns: `false` (nothing changed) when `claim` is no longer current, so a late report
    ///   cannot touch a cancelled, retried or finished job; the worker should stop.
    @discardableResult
    public func updateProgress(_ claim: Claim, progress: Double) throws -> Bool {
        let value = progress.isNaN ? 0 : min(max(progress, 0), 1)
        return try write("update progress of job \(claim.jobID)") { db in
            try db.execute(
                sql: "UPDATE job SET progress = ? WHERE \(Self.currentClaimSQL)",
                arguments: [value] + Self.claimArguments(claim))
            return db.changesCount > 0
        }
    }

    /// What a finished job wrote, for ``finish(_:result:publish:)``.
    public struct JobResult: Sendable, Equatable {
        /// Written files, relative to the output root.
        public var outputs: [String]
        /// Duration of the input, when known.
        public var audioSeconds: Double?
        /// Id of the earlier done job whose stems were copied, or `nil`.
        public var reusedFrom: Int64?
        /// The model actually used (recorded over the one the job was queued with).
        public var model: String?
        /// What else the stems depend on (see ``Job/recipe``); dedup compares it exactly.
        public var recipe: String?

        public init(outputs: [String], audioSeconds: Double?, reusedFrom: Int64? = nil,
                    model: String? = nil, recipe: String? = nil) {
            self.outputs = outputs
            self.audioSeconds = audioSeconds
            self.reusedFrom = reusedFrom
            self.model = model
            self.recipe = recipe
        }
    }

    /// Marks a running job done — and publishes its stems, exactly when the row says done.
    ///
    /// In one write transaction: checks that `claim` is current; runs `publish` (the rename of
    /// the staging folder into `output/`) while the write lock is held, so no cancel or retry
    /// can slip between the check and the rename; sets state done, progress 1, `finishedAt`,
    /// the result, and releases the claim; marks every other done job that had the same
    /// output folder as superseded (its files were just replaced, so they are no longer
    /// reusable). When `publish` throws, nothing is recorded and the error is rethrown as is.
    ///
    /// - Returns: `false` when the claim was no longer current: `publish` was not called and
    ///   nothing changed.
    /// - Throws: ``JobStoreError/Kind/jobNotFound`` when there is no such job; whatever
    ///   `publish` throws.
    @discardableResult
    public func finish(_ claim: Claim, result: JobResult, publish: () throws -> Void = {}) throws -> Bool {
        let operation = "finish job \(claim.jobID)"
        let outputsJSON: String
        do {
            outputsJSON = try Job.encodeOutputs(result.outputs)
        } catch {
            throw JobStoreError(.invalidArgument, operation: operation, path: path, reason: "cannot encode outputs: \(error)")
        }
        let time = now()
        let published = PublishError()
        do {
            return try write(operation) { db in
                guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM job WHERE \(Self.currentClaimSQL))",
                                        arguments: Self.claimArguments(claim)) == true else {
                    guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM job WHERE id = ?)",
                                            arguments: [claim.jobID]) == true else {
                        throw JobStoreError(.jobNotFound, operation: operation, path: path, reason: "no job with id \(claim.jobID)")
                    }
                    return false
                }
                do {
                    try publish()
                } catch {
                    published.error = error
                    throw error
                }
                try db.execute(sql: """
                    UPDATE job SET state = 'done', progress = 1, finishedAt = ?, outputs = ?,
                                   audioSeconds = ?, reusedFrom = ?, model = coalesce(?, model), recipe = ?,
                                   error = NULL, holder = NULL, superseded = 0
                    WHERE \(Self.currentClaimSQL)
                    """, arguments: [time, outputsJSON, result.audioSeconds, result.reusedFrom, result.model,
                                     result.recipe] + Self.claimArguments(claim))
                try db.execute(sql: """
                    UPDATE job SET superseded = 1
                    WHERE state = 'done' AND id <> ?
                      AND outputName = (SELECT outputName FROM job WHERE id = ?)
                    """, arguments: [claim.jobID, claim.jobID])
                return true
            }
        } catch {
            if let error = published.error { throw error }
            throw error
        }
    }

    /// Holds an error thrown by a publish step inside the transaction, so it reaches the caller
    /// as itself rather than wrapped in a database error.
    private final class PublishError: @unchecked Sendable {
        var error: (any Error)?
    }

    /// Records a failed attempt of a running job.
    ///
    /// `retries` is how many times a failed job is tried again: with `retries = 3` a job runs
    /// at most 4 times, with 0 once. While attempts are left (`attempts <= retries`) the job goes
    /// back to the queue (to its end: `queuedAt` = now, so one bad file cannot keep the worker
    /// busy) with progress 0; otherwise it ends `failed` with `finishedAt` now. Either way the
    /// claim is released and the error text stored, so `demucsctl jobs` shows why a job is being
    /// retried. A permanent failure (a file that cannot be decoded) passes `retries: 0`.
    ///
    /// - Returns: the job's state afterwards, or `nil` when the claim was no longer current
    ///   (cancelled or retried meanwhile): the row is left as it is, and the claim released.
    /// - Throws: ``JobStoreError/Kind/jobNotFound`` when there is no such job.
    @discardableResult
    public func fail(_ claim: Claim, error: String, retries: Int) throws -> JobState? {
        let operation = "record failure of job \(claim.jobID)"
        let time = now()
        return try write(operation) { db in
            guard let job = try Job.fetchOne(db, id: claim.jobID) else {
                throw JobStoreError(.jobNotFound, operation: operation, path: path, reason: "no job with id \(claim.jobID)")
            }
            guard job.state == .running, job.claim == claim else {
                if job.claim == claim {
                    try db.execute(sql: "UPDATE job SET holder = NULL WHERE id = ?", arguments: [claim.jobID])
                }
                return nil
            }
            if job.attempts <= max(retries, 0) {
                try db.execute(sql: """
                    UPDATE job SET state = 'queued', error = ?, progress = 0, queuedAt = ?, startedAt = NULL,
                                   holder = NULL
                    WHERE id = ?
                    """, arguments: [error, time, claim.jobID])
                return .queued
            }
            try db.execute(sql: """
                UPDATE job SET state = 'failed', error = ?, finishedAt = ?, holder = NULL WHERE id = ?
                """, arguments: [error, time, claim.jobID])
            return .failed
        }
    }

    /// Puts a running job back in the queue without counting the attempt: a clean shutdown
    /// (SIGTERM) interrupted it, or the machine (not the file) made it fail — a full disk, a
    /// busy database. `attempts` is decremented (never below 0), `queuedAt` kept, so the job is
    /// first again; `reason`, when given, is stored as its error so status shows why it waits.
    ///
    /// - Returns: `false` when the claim was no longer current (nothing changed but the
    ///   release of the claim).
    @discardableResult
    public func requeue(_ claim: Claim, reason: String? = nil) throws -> Bool {
        try write("requeue job \(claim.jobID)") { db in
            try db.execute(sql: """
                UPDATE job SET state = 'queued', attempts = max(attempts - 1, 0), progress = 0,
                               startedAt = NULL, holder = NULL, error = coalesce(?, error)
                WHERE \(Self.currentClaimSQL)
                """, arguments: [reason] + Self.claimArguments(claim))
            if db.changesCount > 0 { return true }
            try db.execute(sql: "UPDATE job SET holder = NULL WHERE id = ? AND claimSequence = ? AND holder = ?",
                           arguments: Self.claimArguments(claim))
            return false
        }
    }

    /// Result of ``requeueInterrupted(retries:)``.
    public struct InterruptedJobs: Sendable, Equatable {
        /// Jobs put back in the queue.
        public var requeued: Int
        /// Jobs that had already used up their attempts and were marked failed.
        public var failed: Int
        /// All jobs that were found running.
        public var total: Int { requeued + failed }
        public init(requeued: Int, failed: Int) {
            self.requeued = requeued
            self.failed = failed
        }
    }

    /// Crash recovery, to call once at daemon start before any worker runs. On SQLite one host
    /// owns the queue and a claim lasts as long as the daemon that made it, so at start-up every
    /// claim is stale: a job still `running` was left so by a crash, kill -9 or power loss (a
    /// clean shutdown uses ``requeue(_:reason:)``), and a cancelled or retried job may still name
    /// the dead worker as holder.
    ///
    /// Running jobs go back to the queue with progress 0, keeping their `queuedAt` (they resume
    /// first) and their `attempts` (the interrupted attempt counts). A job that has no retries
    /// left (`attempts > retries`) is marked failed instead, with an error saying so: a file that
    /// crashes the daemon every time (out of memory, a decoder bug) must not crash-loop it
    /// forever. Every claim is released. Pass `Int.max` to always re-queue.
    @discardableResult
    public func requeueInterrupted(retries: Int = Int.max) throws -> InterruptedJobs {
        let time = now()
        return try write("requeue interrupted jobs") { db in
            try db.execute(sql: """
                UPDATE job SET state = 'failed', finishedAt = ?, holder = NULL,
                    error = 'interrupted ' || attempts || ' time(s): the daemon stopped while separating this file '
                            || '(crash, kill or power loss)' || coalesce('; last error: ' || error, '')
                WHERE state = 'running' AND attempts > ?
                """, arguments: [time, max(retries, 0)])
            let failed = db.changesCount
            try db.execute(sql: """
                UPDATE job SET state = 'queued', progress = 0, startedAt = NULL, holder = NULL WHERE state = 'running'
                """)
            let requeued = db.changesCount
            try db.execute(sql: "UPDATE job SET holder = NULL WHERE holder IS NOT NULL")
            return InterruptedJobs(requeued: requeued, failed: failed)
        }
    }

    /// Cancels a queued or running job (`demucsctl cancel`). The row is final at once; a running
    /// job's worker finds its claim no longer current at its next segment (``isCurrent(_:)``),
    /// stops, publishes nothing and releases the claim.
    ///
    /// - Returns: `false` when the job does not exist or is already done, failed or cancelled.
    @discardableResult
    public func cancel(id: Int64) throws -> Bool {
        let time = now()
        return try write("cancel job \(id)") { db in
            try db.execute(sql: """
                UPDATE job SET state = 'cancelled', finishedAt = ?
                WHERE id = ? AND state IN ('queued', 'running')
                """, arguments: [time, id])
            return db.changesCount > 0
        }
    }

    /// Puts a failed, cancelled or running job back in the queue (`demucsctl retry`) as if new:
    /// attempts 0, no error, progress 0, no start/finish time, at the end of the queue. Its
    /// `outputName` is kept so the retry writes into the same folder. A running job starts
    /// over: its worker's claim is no longer current, and the job is claimed again only after
    /// that worker has stopped and released it (or, after a crash, at the next start-up).
    ///
    /// - Returns: `false` when the job does not exist or is queued or done.
    @discardableResult
    public func retry(id: Int64) throws -> Bool {
        let time = now()
        return try write("retry job \(id)") { db in
            try db.execute(sql: """
                UPDATE job SET state = 'queued', attempts = 0, error = NULL, progress = 0,
                               queuedAt = ?, startedAt = NULL, finishedAt = NULL
                WHERE id = ? AND state IN ('failed', 'cancelled', 'running')
                """, arguments: [time, id])
            return db.changesCount > 0
        }
    }

    /// After a guarded UPDATE: `true` if it changed the row, `false` if the row exists in
    /// another state, throws if there is no such row.
    func changedOrMissing(_ db: Database, id: Int64, operation: String) throws -> Bool {
        if db.changesCount > 0 { return true }
        let exists = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM job WHERE id = ?)", arguments: [id]) ?? false
        if !exists {
            throw JobStoreError(.jobNotFound, operation: operation, path: path, reason: "no job with id \(id)")
        }
        return false
    }
}
