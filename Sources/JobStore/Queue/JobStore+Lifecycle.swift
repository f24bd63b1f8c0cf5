internal import GRDB

/// State transitions of a job's life. Each one is a single write transaction whose UPDATE is
/// guarded by the expected current state (`WHERE id = ? AND state = 'running'`), so a transition
/// that lost a race (e.g. `demucsctl cancel` between the worker's last check and `finish`) does
/// nothing instead of resurrecting the job; the return value tells the caller.
extension JobStore {
    /// Takes the next job off the queue, atomically.
    ///
    /// In one `BEGIN IMMEDIATE` transaction: picks the queued job with the smallest
    /// `(queuedAt, id)`, sets it running, increments `attempts`, sets `startedAt` to now, resets
    /// progress to 0 and clears `finishedAt`. Because the write lock is held from the SELECT to
    /// the UPDATE, two workers (threads or processes) can never claim the same job.
    ///
    /// - Returns: the claimed job as it now is, or `nil` when nothing is queued.
    public func claimNext() throws -> Job? {
        let time = now()
        return try write("claim next job") { db in
            guard let id = try Int64.fetchOne(db, sql: """
                SELECT id FROM job WHERE state = 'queued' ORDER BY queuedAt, id LIMIT 1
                """) else { return nil }
            try db.execute(sql: """
                UPDATE job SET state = 'running', attempts = attempts + 1, startedAt = ?,
                               progress = 0, finishedAt = NULL
                WHERE id = ? AND state = 'queued'
                """, arguments: [time, id])
            return try Job.fetchOne(db, id: id)
        }
    }

    /// Records progress of a running job (clamped to 0...1; NaN counts as 0).
    ///
    /// One small UPDATE, cheap enough for a few calls per second. Ignored unless the job is
    /// running, so a late progress report cannot touch a cancelled or finished job.
    public func updateProgress(id: Int64, progress: Double) throws {
        let value = progress.isNaN ? 0 : min(max(progress, 0), 1)
        try write("update progress of job \(id)") { db in
            try db.execute(
                sql: "UPDATE job SET progress = ? WHERE id = ? AND state = 'running'",
                arguments: [value, id])
        }
    }

    /// Marks a running job done: progress 1, `finishedAt` now, the written files, and the job
    /// whose stems were reused (if any).
    ///
    /// - Parameters:
    ///   - outputs: written files, relative to the output root.
    ///   - audioSeconds: duration of the input, when known.
    ///   - reusedFrom: id of the earlier done job whose stems were copied, or `nil`.
    /// - Returns: `false` when the job was no longer running (cancelled meanwhile): nothing was
    ///   changed, and the caller decides what to do with the files it wrote.
    /// - Throws: ``JobStoreError/Kind/jobNotFound`` when there is no such job.
    @discardableResult
    public func finish(id: Int64, outputs: [String], audioSeconds: Double?, reusedFrom: Int64? = nil) throws -> Bool {
        let operation = "finish job \(id)"
        let outputsJSON: String
        do {
            outputsJSON = try Job.encodeOutputs(outputs)
        } catch {
            throw JobStoreError(.invalidArgument, operation: operation, path: path, reason: "cannot encode outputs: \(error)")
        }
        let time = now()
        return try write(operation) { db in
            try db.execute(sql: """
                UPDATE job SET state = 'done', progress = 1, finishedAt = ?, outputs = ?,
                               audioSeconds = ?, reusedFrom = ?, error = NULL
                WHERE id = ? AND state = 'running'
                """, arguments: [time, outputsJSON, audioSeconds, reusedFrom, id])
            return try changedOrMissing(db, id: id, operation: operation)
        }
    }

    /// Records a failed attempt of a running job.
    ///
    /// If `attempts < retryLimit` the job goes back to the queue (to its end: `queuedAt` = now, so
    /// one bad file cannot keep the worker busy) with progress 0; otherwise it ends `failed` with
    /// `finishedAt` now. The error text is stored either way so `demucsctl jobs` shows why a job
    /// is being retried. Since `attempts` counts claims, `retryLimit` is the total number of
    /// attempts (1 = never retry).
    ///
    /// - Returns: the job's state afterwards. When the job was not running (e.g. cancelled while
    ///   the attempt was failing), nothing changes and its current state is returned.
    /// - Throws: ``JobStoreError/Kind/jobNotFound`` when there is no such job.
    @discardableResult
    public func fail(id: Int64, error: String, retryLimit: Int) throws -> JobState {
        let operation = "record failure of job \(id)"
        let time = now()
        return try write(operation) { db in
            guard let job = try Job.fetchOne(db, id: id) else {
                throw JobStoreError(.jobNotFound, operation: operation, path: path, reason: "no job with id \(id)")
            }
            guard job.state == .running else { return job.state }
            if job.attempts < retryLimit {
                try db.execute(sql: """
                    UPDATE job SET state = 'queued', error = ?, progress = 0, queuedAt = ?, startedAt = NULL
                    WHERE id = ?
                    """, arguments: [error, time, id])
                return .queued
            }
            try db.execute(sql: """
                UPDATE job SET state = 'failed', error = ?, finishedAt = ? WHERE id = ?
                """, arguments: [error, time, id])
            return .failed
        }
    }

    /// Puts a running job back in the queue without counting the attempt, for a clean shutdown
    /// (SIGTERM) that interrupted it: the file is not at fault, so `attempts` is decremented
    /// (never below 0). `queuedAt` is kept, so the job is first again after restart.
    ///
    /// - Returns: `false` when the job was not running (nothing changed).
    @discardableResult
    public func requeue(id: Int64) throws -> Bool {
        try write("requeue job \(id)") { db in
            try db.execute(sql: """
                UPDATE job SET state = 'queued', attempts = max(attempts - 1, 0), progress = 0,
                               startedAt = NULL
                WHERE id = ? AND state = 'running'
                """, arguments: [id])
            return db.changesCount > 0
        }
    }

    /// Result of ``requeueInterrupted(retryLimit:)``.
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

    /// Crash recovery, to call once at daemon start before the worker runs: any job still
    /// `running` was left so by a crash, kill -9 or power loss (a clean shutdown uses
    /// ``requeue(id:)``).
    ///
    /// Such jobs go back to the queue with progress 0, keeping their `queuedAt` (they resume
    /// first) and their `attempts` (the interrupted attempt counts). A job whose attempts already
    /// reached `retryLimit` is marked failed instead, with an error saying so: a file that
    /// crashes the daemon every time (out of memory, a decoder bug) must not crash-loop it
    /// forever. Pass `Int.max` to always re-queue.
    @discardableResult
    public func requeueInterrupted(retryLimit: Int = Int.max) throws -> InterruptedJobs {
        let time = now()
        return try write("requeue interrupted jobs") { db in
            try db.execute(sql: """
                UPDATE job SET state = 'failed', finishedAt = ?,
                    error = 'interrupted ' || attempts || ' time(s): the daemon stopped while separating this file '
                            || '(crash, kill or power loss)' || coalesce('; last error: ' || error, '')
                WHERE state = 'running' AND attempts >= ?
                """, arguments: [time, retryLimit])
            let failed = db.changesCount
            try db.execute(sql: """
                UPDATE job SET state = 'queued', progress = 0, startedAt = NULL WHERE state = 'running'
                """)
            return InterruptedJobs(requeued: db.changesCount, failed: failed)
        }
    }

    /// Cancels a queued or running job (`demucsctl cancel`). A running job is stopped by its
    /// worker, which polls ``isCancelled(id:)`` between segments; the row is final at once.
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

    /// Puts a failed or cancelled job back in the queue (`demucsctl retry`) as if new: attempts
    /// 0, no error, progress 0, no start/finish time, at the end of the queue. Its `outputName`
    /// is kept so the retry writes into the same folder.
    ///
    /// - Returns: `false` when the job does not exist or is queued, running or done.
    @discardableResult
    public func retry(id: Int64) throws -> Bool {
        let time = now()
        return try write("retry job \(id)") { db in
            try db.execute(sql: """
                UPDATE job SET state = 'queued', attempts = 0, error = NULL, progress = 0,
                               queuedAt = ?, startedAt = NULL, finishedAt = NULL
                WHERE id = ? AND state IN ('failed', 'cancelled')
                """, arguments: [time, id])
            return db.changesCount > 0
        }
    }

    /// Whether the worker should stop working on the job: it was cancelled, or its row is gone
    /// (nothing left to record results into). Cheap indexed read; call it between segments.
    public func isCancelled(id: Int64) throws -> Bool {
        try read("check cancellation of job \(id)") { db in
            let state = try String.fetchOne(db, sql: "SELECT state FROM job WHERE id = ?", arguments: [id])
            return state == nil || state == JobState.cancelled.rawValue
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
