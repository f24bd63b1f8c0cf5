import Foundation
import JobStore
import PostgresNIO

/// The end of an attempt (done, failed, given back) for a claim, and the operators' cancel and
/// retry: the semantics of the SQLite store's methods of the same names, with every write of
/// a worker fenced by its claim.
extension PostgresJobStore {
    /// Marks the job done for a current claim; `publish` runs inside the transaction, with
    /// the row locked (`FOR UPDATE`), after the claim was found current and before the commit:
    /// a claim that is no longer current publishes nothing and changes nothing (`false`), and
    /// no rescue, cancel or retry can slip between the check and the rename.
    public func finish(_ claim: Claim, result: JobStore.JobResult,
                       publish: @Sendable () throws -> Void = {}) async throws -> Bool {
        let outputsJSON = String(decoding: try JSONEncoder().encode(result.outputs), as: UTF8.self)
        return try await client.withTransaction(logger: logger) { connection in
            let lock = try Self.whereCurrent(claim, "SELECT id FROM job", " FOR UPDATE")
            guard try await connection.query(lock, logger: self.logger).collect().count == 1 else {
                guard try await connection.query("SELECT id FROM job WHERE id = \(claim.jobID)", logger: self.logger)
                    .collect().count == 1 else {
                    throw JobStoreError(.jobNotFound, operation: "finish job \(claim.jobID)", path: self.url.description,
                                        reason: "no job with id \(claim.jobID)")
                }
                return false
            }
            try publish()
            let update = try Self.whereCurrent(claim, """
                UPDATE job SET state = 'done', holder = NULL, lease_until = NULL, progress = 1, error = NULL,
                               outputs = \(outputsJSON)::jsonb, audio_seconds = \(result.audioSeconds),
                               reused_from = \(result.reusedFrom), model = coalesce(\(result.model), model),
                               recipe = \(result.recipe), superseded = false, finished_at = now()
                """)
            try await connection.query(update, logger: self.logger)
            try await connection.query("""
                UPDATE job SET superseded = true
                WHERE state = 'done' AND id <> \(claim.jobID)
                  AND output_name = (SELECT output_name FROM job WHERE id = \(claim.jobID))
                """, logger: self.logger)
            return true
        }
    }

    /// A failed attempt: back to the queue's end while attempts are left (`attempts <=
    /// retries`), else failed. `nil` when the claim was no longer current (then only released).
    public func fail(_ claim: Claim, error: String, retries: Int) async throws -> JobState? {
        let retries = max(retries, 0)
        return try await client.withTransaction(logger: logger) { connection in
            guard let job = try await self.jobs(
                "SELECT \(unescaped: Self.jobColumns) FROM job WHERE id = \(claim.jobID) FOR UPDATE", on: connection).first else {
                throw JobStoreError(.jobNotFound, operation: "record failure of job \(claim.jobID)", path: self.url.description,
                                    reason: "no job with id \(claim.jobID)")
            }
            guard job.state == .running, job.claim == claim else {
                if job.claim == claim {
                    try await connection.query("""
                        UPDATE job SET holder = NULL, lease_until = CASE WHEN state = 'running' THEN lease_until END
                        WHERE id = \(claim.jobID)
                        """, logger: self.logger)
                }
                return nil
            }
            if job.attempts <= retries {
                try await connection.query("""
                    UPDATE job SET state = 'queued', error = \(error), progress = 0, queued_at = now(), started_at = NULL,
                                   holder = NULL, lease_until = NULL
                    WHERE id = \(claim.jobID)
                    """, logger: self.logger)
                try await self.notify(on: connection)
                return .queued
            }
            try await connection.query("""
                UPDATE job SET state = 'failed', error = \(error), finished_at = now(), holder = NULL, lease_until = NULL
                WHERE id = \(claim.jobID)
                """, logger: self.logger)
            return .failed
        }
    }

    /// Gives a running job back without counting the attempt (a clean shutdown, a machine
    /// fault); it keeps its place at the head of the queue. `false` when the claim was no
    /// longer current (then only released).
    public func requeue(_ claim: Claim, reason: String? = nil) async throws -> Bool {
        try await client.withTransaction(logger: logger) { connection in
            let query = try Self.whereCurrent(claim, """
                UPDATE job SET state = 'queued', attempts = greatest(attempts - 1, 0), progress = 0,
                               started_at = NULL, holder = NULL, lease_until = NULL, error = coalesce(\(reason), error)
                """)
            if try await self.changed(query, on: connection) {
                try await self.notify(on: connection)
                return true
            }
            try await connection.query("""
                UPDATE job SET holder = NULL, lease_until = CASE WHEN state = 'running' THEN lease_until END
                WHERE id = \(claim.jobID) AND claim_sequence = \(claim.sequence) AND holder = \(claim.worker)
                """, logger: self.logger)
            return false
        }
    }

    /// Cancels a queued or running job. The claim of a running one ends at once (holder and
    /// lease cleared): its host finds it no longer current at its next segment and stops
    /// without publishing; nothing waits for that host, which may be dead.
    public func cancel(id: Int64) async throws -> Bool {
        try await changed("""
            UPDATE job SET state = 'cancelled', finished_at = now(), holder = NULL, lease_until = NULL
            WHERE id = \(id) AND state IN ('queued', 'running')
            """)
    }

    /// Queues a failed, cancelled or running job again as new. A running one's claim ends at
    /// once, as for ``cancel(id:)``, so any host may claim it again right away: the old
    /// attempt is fenced (it can neither write the row nor publish), and its staging folder is
    /// its own.
    public func retry(id: Int64) async throws -> Bool {
        try await client.withTransaction(logger: logger) { connection in
            let changed = try await self.changed("""
                UPDATE job SET state = 'queued', attempts = 0, error = NULL, progress = 0, queued_at = now(),
                               started_at = NULL, finished_at = NULL, holder = NULL, lease_until = NULL
                WHERE id = \(id) AND state IN ('failed', 'cancelled', 'running')
                """, on: connection)
            if changed { try await self.notify(on: connection) }
            return changed
        }
    }
}
