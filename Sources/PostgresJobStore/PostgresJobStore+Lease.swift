import Foundation
import JobStore
import PostgresNIO

/// Claim, lease, heartbeat, rescue and the fenced end of an attempt.
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

    /// Takes the oldest queued job nobody holds, in one statement: the row is locked by
    /// `FOR UPDATE SKIP LOCKED`, so hosts claiming at once each get another job (or none), never
    /// the same one. Sets it running, counts the attempt and the claim, names `worker` as
    /// holder and gives it a lease of `lease` seconds from the database's now.
    public func claimNext(worker: String, model: String? = nil, lease: Double) async throws -> Job? {
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

    /// Extends the lease of a current claim to `lease` seconds from now; `false` when the
    /// claim is no longer current (rescued, cancelled, retried): the worker must stop.
    public func renew(_ claim: Claim, lease: Double) async throws -> Bool {
        let query = try Self.whereCurrent(claim, "UPDATE job SET lease_until = now() + make_interval(secs => \(lease))",
                                          " RETURNING id")
        return try await client.query(query, logger: logger).collect().count == 1
    }

    public func isCurrent(_ claim: Claim) async throws -> Bool {
        let query = try Self.whereCurrent(claim, "SELECT id FROM job")
        return try await client.query(query, logger: logger).collect().count == 1
    }

    /// Jobs whose lease ran out (their host died or froze) go back to the queue, or fail when
    /// their attempts are spent (`retries` retries after the first attempt, as `retry_limit`).
    /// Any host may run this; a job rescued twice at once is rescued once (row locks).
    /// - Returns: the jobs as they now are.
    public func rescueExpired(retries: Int) async throws -> [Job] {
        try await jobs("""
            UPDATE job SET
                state = CASE WHEN attempts > \(retries) THEN 'failed' ELSE 'queued' END,
                error = 'the lease of ' || holder || ' ran out (its host stopped or froze)',
                finished_at = CASE WHEN attempts > \(retries) THEN now() END,
                queued_at = CASE WHEN attempts > \(retries) THEN queued_at ELSE now() END,
                holder = NULL, lease_until = NULL, progress = 0
            WHERE state = 'running' AND lease_until < now()
            RETURNING \(unescaped: Self.jobColumns)
            """)
    }

    /// Marks the job done for a current claim; `publish` runs inside the transaction, with
    /// the row locked, after the claim was found current and before the commit: a claim that
    /// is no longer current publishes nothing and changes nothing (`false`).
    public func finish(_ claim: Claim, outputName: String, outputs: [String], audioSeconds: Double?,
                       publish: @Sendable () throws -> Void = {}) async throws -> Bool {
        let outputsJSON = String(decoding: try JSONEncoder().encode(outputs), as: UTF8.self)
        return try await client.withTransaction(logger: logger) { connection in
            let lock = try Self.whereCurrent(claim, "SELECT id FROM job", " FOR UPDATE")
            guard try await connection.query(lock, logger: self.logger).collect().count == 1 else { return false }
            try publish()
            let update = try Self.whereCurrent(claim, """
                UPDATE job SET state = 'done', holder = NULL, lease_until = NULL, progress = 1, error = NULL,
                               output_name = \(outputName), outputs = \(outputsJSON)::jsonb,
                               audio_seconds = \(audioSeconds), finished_at = now()
                """)
            try await connection.query(update, logger: self.logger)
            return true
        }
    }
}
