import Foundation
import JobStore
import PostgresNIO

/// Claim, lease, renewal and rescue.
extension PostgresJobStore {
    /// `head` with the condition of every write for a claim appended: "this claim is the
    /// job's current one and the job is running" (id, claim_sequence and holder as in the
    /// token, state 'running'), then `tail`.
    static func whereCurrent(_ claim: Claim, _ head: PostgresQuery, _ tail: String = "") throws -> PostgresQuery {
        var query = head
        let n = query.binds.count
        query.sql += " WHERE id = $\(n + 1) AND claim_sequence = $\(n + 2) AND holder = $\(n + 3) AND state = 'running'" + tail
        try query.binds.append(claim.jobID)
        try query.binds.append(claim.sequence)
        try query.binds.append(claim.worker)
        return query
    }

    /// Runs a write for a claim; whether it changed the row (the claim was current).
    func changed(_ query: PostgresQuery, on connection: PostgresConnection? = nil) async throws -> Bool {
        var query = query
        query.sql += " RETURNING id"
        let rows: PostgresRowSequence
        if let connection {
            rows = try await connection.query(query, logger: logger)
        } else {
            rows = try await client.query(query, logger: logger)
        }
        return try await rows.collect().count > 0
    }

    /// Takes the oldest queued job nobody holds, in one statement: the row is locked by
    /// `FOR UPDATE SKIP LOCKED`, so hosts claiming at once each get another job (or none), never
    /// the same one. Sets it running, counts the attempt and the claim, names `worker` as
    /// holder and gives it a lease of ``lease`` seconds from the database's now.
    public func claimNext(worker: String, model: String? = nil) async throws -> Job? {
        guard !worker.isEmpty else { throw PostgresJobStoreError("empty worker name") }
        return try await jobs("""
            UPDATE job SET state = 'running', attempts = attempts + 1, claim_sequence = claim_sequence + 1,
                           holder = \(worker), worker = \(worker), model = coalesce(\(model), model),
                           started_at = now(), progress = 0, finished_at = NULL,
                           lease_until = now() + make_interval(secs => \(lease))
            WHERE id = (SELECT id FROM job WHERE state = 'queued' AND holder IS NULL
                        ORDER BY queued_at, id FOR UPDATE SKIP LOCKED LIMIT 1)
            RETURNING \(unescaped: Self.jobColumns)
            """).first
    }

    /// Extends the lease of a current claim to ``lease`` seconds from now; `false` when the
    /// claim is no longer current (rescued, cancelled, retried): the worker must stop.
    public func renew(_ claim: Claim) async throws -> Bool {
        try await changed(Self.whereCurrent(claim, "UPDATE job SET lease_until = now() + make_interval(secs => \(lease))"))
    }

    public func isCurrent(_ claim: Claim) async throws -> Bool {
        let query = try Self.whereCurrent(claim, "SELECT id FROM job")
        return try await client.query(query, logger: logger).collect().count == 1
    }

    /// Gives up a claim that is no longer current; `false` when another claim holds the job.
    public func release(_ claim: Claim) async throws -> Bool {
        try await changed("""
            UPDATE job SET holder = NULL, lease_until = CASE WHEN state = 'running' THEN lease_until END
            WHERE id = \(claim.jobID) AND claim_sequence = \(claim.sequence) AND holder = \(claim.worker)
            """)
    }

    public func adoptInput(_ claim: Claim, contentHash: String, size: Int64, modified: Double) async throws -> Bool {
        guard !contentHash.isEmpty else { throw PostgresJobStoreError("empty content hash") }
        return try await changed(Self.whereCurrent(claim, """
            UPDATE job SET content_hash = \(contentHash), input_size = \(size), input_modified = \(modified)
            """))
    }

    public func updateProgress(_ claim: Claim, progress: Double) async throws -> Bool {
        let value = progress.isNaN ? 0 : min(max(progress, 0), 1)
        return try await changed(Self.whereCurrent(claim, "UPDATE job SET progress = \(value)"))
    }

    /// Jobs whose lease ran out (their host died or froze) go back to the queue, or fail when
    /// their attempts are spent (`retries` retries after the first attempt, as `retry_limit`).
    /// Any host may run this; a job rescued twice at once is rescued once (row locks).
    /// - Returns: the jobs as they now are.
    public func rescueExpired(retries: Int) async throws -> [Job] {
        let retries = max(retries, 0)
        return try await client.withTransaction(logger: logger) { connection in
            let rescued = try await self.jobs("""
                UPDATE job SET
                    state = CASE WHEN attempts > \(retries) THEN 'failed' ELSE 'queued' END,
                    error = 'the lease of ' || holder || ' ran out (its host stopped or froze)'
                            || CASE WHEN attempts > \(retries) THEN '; no retries left' ELSE '' END,
                    finished_at = CASE WHEN attempts > \(retries) THEN now() END,
                    started_at = NULL,
                    holder = NULL, lease_until = NULL, progress = 0
                WHERE state = 'running' AND lease_until < now()
                RETURNING \(unescaped: Self.jobColumns)
                """, on: connection)
            if rescued.contains(where: { $0.state == .queued }) { try await self.notify(on: connection) }
            return rescued
        }
    }

    /// A daemon's start: the running jobs held by this very node (`NODE/worker-N`), left by its
    /// previous life (a crash, kill -9, power loss, with the same `--node`), go back to the
    /// queue at once — or fail when their retries are spent — instead of waiting for their
    /// lease; then the jobs of any host whose lease ran out.
    public func recoverAtStart(node: String, retries: Int) async throws -> JobStore.InterruptedJobs {
        let retries = max(retries, 0)
        let prefix = node + "/"
        let own = try await client.withTransaction(logger: logger) { connection in
            let jobs = try await self.jobs("""
                UPDATE job SET
                    state = CASE WHEN attempts > \(retries) THEN 'failed' ELSE 'queued' END,
                    error = CASE WHEN attempts > \(retries)
                            THEN 'interrupted ' || attempts || ' time(s): the daemon stopped while separating this file '
                                 || '(crash, kill or power loss)' || coalesce('; last error: ' || error, '')
                            ELSE error END,
                    finished_at = CASE WHEN attempts > \(retries) THEN now() END,
                    started_at = NULL, holder = NULL, lease_until = NULL, progress = 0
                WHERE state = 'running' AND starts_with(holder, \(prefix))
                RETURNING \(unescaped: Self.jobColumns)
                """, on: connection)
            try await connection.query("""
                UPDATE job SET holder = NULL WHERE state <> 'running' AND starts_with(holder, \(prefix))
                """, logger: self.logger)
            if jobs.contains(where: { $0.state == .queued }) { try await self.notify(on: connection) }
            return jobs
        }
        let expired = try await rescueExpired(retries: retries)
        let all = own + expired
        return JobStore.InterruptedJobs(requeued: all.filter { $0.state == .queued }.count,
                                        failed: all.filter { $0.state == .failed }.count)
    }
}
