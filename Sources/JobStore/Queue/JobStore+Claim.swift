internal import GRDB

/// Taking a job and holding it: the claim, the check a worker makes between segments, and the
/// release of a claim that is no longer current.
extension JobStore {
    /// The SQL condition "this claim is the job's current one and the job is running", with its
    /// three arguments in ``claimArguments(_:)`` order.
    static let currentClaimSQL = "id = ? AND claimSequence = ? AND holder = ? AND state = 'running'"

    static func claimArguments(_ claim: Claim) -> StatementArguments {
        [claim.jobID, claim.sequence, claim.worker]
    }

    /// Takes the next job off the queue for `worker`, atomically.
    ///
    /// In one `BEGIN IMMEDIATE` transaction: picks the queued job with the smallest
    /// `(queuedAt, id)` that nobody holds (a job cancelled or retried while running stays held by
    /// its old worker until that worker has stopped and released it), sets it running, counts
    /// the attempt and the claim, records `worker` as holder, sets `startedAt` to now, resets
    /// progress and clears `finishedAt`. Because the write lock is held from the SELECT to the
    /// UPDATE, two workers (threads or processes) can never claim the same job.
    ///
    /// - Parameters:
    ///   - worker: the claiming worker's identity (`host:pid/worker-N`); not empty.
    ///   - model: the model the worker will separate with, recorded on the row so `status`
    ///     shows the model actually used (the job may have been queued under another one).
    /// - Returns: the claimed job as it now is (its ``Job/claim`` is the token), or `nil` when
    ///   nothing is queued.
    public func claimNext(worker: String, model: String? = nil) throws -> Job? {
        let operation = "claim next job"
        guard !worker.isEmpty else {
            throw JobStoreError(.invalidArgument, operation: operation, path: path, reason: "empty worker name")
        }
        let time = now()
        return try write(operation) { db in
            guard let id = try Int64.fetchOne(db, sql: """
                SELECT id FROM job WHERE state = 'queued' AND holder IS NULL ORDER BY queuedAt, id LIMIT 1
                """) else { return nil }
            try db.execute(sql: """
                UPDATE job SET state = 'running', attempts = attempts + 1, claimSequence = claimSequence + 1,
                               holder = ?, worker = ?, model = coalesce(?, model), startedAt = ?,
                               progress = 0, finishedAt = NULL
                WHERE id = ? AND state = 'queued' AND holder IS NULL
                """, arguments: [worker, worker, model, time, id])
            return try Job.fetchOne(db, id: id)
        }
    }

    /// Whether `claim` is still the job's current claim and the job still running. `false`
    /// when it was cancelled, retried, handed on or deleted: the worker must stop, publish
    /// nothing and ``release(_:)`` the claim. Cheap indexed read; call it between segments.
    public func isCurrent(_ claim: Claim) throws -> Bool {
        try read("check claim of job \(claim.jobID)") { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM job WHERE \(Self.currentClaimSQL))",
                              arguments: Self.claimArguments(claim)) ?? false
        }
    }

    /// Gives up a claim that is no longer current (the worker noticed a cancel or retry and
    /// stopped), so that a retried job can be claimed again. Does nothing when another claim
    /// holds the job. The row's state is left as the cancel or retry set it.
    ///
    /// - Returns: whether the claim was still held (and is now released).
    @discardableResult
    public func release(_ claim: Claim) throws -> Bool {
        try write("release \(claim)") { db in
            try db.execute(sql: """
                UPDATE job SET holder = NULL WHERE id = ? AND claimSequence = ? AND holder = ?
                """, arguments: Self.claimArguments(claim))
            return db.changesCount > 0
        }
    }

    /// Records the input as the worker actually read it at the start of the attempt (its hash
    /// from the bytes that are decoded, its size and modification time). A file replaced while
    /// its job waited is then separated, and its stems reused, under the hash of what was read.
    ///
    /// - Returns: `false` (nothing changed) when the claim is no longer current.
    @discardableResult
    public func adoptInput(_ claim: Claim, contentHash: String, size: Int64, modified: Double) throws -> Bool {
        let operation = "record the input read by \(claim)"
        guard !contentHash.isEmpty else {
            throw JobStoreError(.invalidArgument, operation: operation, path: path, reason: "empty content hash")
        }
        return try write(operation) { db in
            try db.execute(sql: """
                UPDATE job SET contentHash = ?, inputSize = ?, inputModified = ? WHERE \(Self.currentClaimSQL)
                """, arguments: [contentHash, size, modified] + Self.claimArguments(claim))
            return db.changesCount > 0
        }
    }
}
