import Foundation
import JobStore
import PostgresNIO

/// Queuing files, with the rules of the SQLite store (``JobStore/enqueue(inputName:size:modified:contentHash:model:)``)
/// holding across hosts: every host watches the same input folder and reports the same file, and
/// one job comes of it.
///
/// How: each enqueue runs in a transaction that first takes an advisory lock on its input name
/// (``Locks/inputName``), so the check "is this name and content already queued, running or
/// done?" and the insert are one step for every host: the second host finds the first one's row
/// and does nothing. A unique index cannot say it, since the same name and content may have
/// several failed or cancelled rows, and a retry may bring one of them back to the queue.
extension PostgresJobStore {
    /// Advisory lock keys (`pg_advisory_xact_lock(class, key)`), one class per purpose.
    enum Locks {
        /// Enqueue and rejection records of one input name; key `hashtext(input_name)`.
        static let inputName: Int32 = 1
        /// The choice of output folder names (names compete across input names): key 0.
        static let outputNames: Int32 = 2
    }

    /// The channel that tells every host a job may be waiting (sent on enqueue, retry, a
    /// failed attempt going back to the queue, a rescue).
    public static let notifyChannel = "demucsd_jobs"

    public func enqueue(inputName: String, size: Int64, modified: Double, contentHash: String,
                        model: String) async throws -> Job? {
        guard !inputName.isEmpty else { throw PostgresJobStoreError("empty input name") }
        guard !contentHash.isEmpty else { throw PostgresJobStoreError("empty content hash") }
        return try await client.withTransaction(logger: logger) { connection in
            try await connection.query(
                "SELECT pg_advisory_xact_lock(\(Locks.inputName), hashtext(\(inputName)))", logger: self.logger)
            let known = try await connection.query("""
                SELECT id FROM job
                WHERE input_name = \(inputName) AND content_hash = \(contentHash) AND state IN ('queued', 'running', 'done')
                LIMIT 1
                """, logger: self.logger).collect()
            if !known.isEmpty { return nil }
            let replaced = try await self.jobs("""
                UPDATE job SET content_hash = \(contentHash), input_size = \(size), input_modified = \(modified)
                WHERE id = (SELECT id FROM job WHERE input_name = \(inputName) AND state = 'queued' AND holder IS NULL
                            ORDER BY id DESC LIMIT 1)
                RETURNING \(unescaped: Self.jobColumns)
                """, on: connection)
            if let job = replaced.first { return job }
            let inserted = try await self.jobs("""
                INSERT INTO job (input_name, input_size, input_modified, content_hash, state, model)
                VALUES (\(inputName), \(size), \(modified), \(contentHash), 'queued', \(model))
                RETURNING \(unescaped: Self.jobColumns)
                """, on: connection)
            try await self.notify(on: connection)
            return inserted.first
        }
    }

    public func recordRejected(inputName: String, size: Int64, modified: Double, reason: String,
                               model: String) async throws -> Job? {
        guard !inputName.isEmpty else { throw PostgresJobStoreError("empty input name") }
        return try await client.withTransaction(logger: logger) { connection in
            try await connection.query(
                "SELECT pg_advisory_xact_lock(\(Locks.inputName), hashtext(\(inputName)))", logger: self.logger)
            if let latest = try await self.jobs("""
                SELECT \(unescaped: Self.jobColumns) FROM job WHERE input_name = \(inputName) ORDER BY id DESC LIMIT 1
                """, on: connection).first,
                latest.state == .failed, latest.inputSize == size, latest.inputModified == modified, latest.error == reason {
                return nil
            }
            return try await self.jobs("""
                INSERT INTO job (input_name, input_size, input_modified, content_hash, state, error, model, finished_at)
                VALUES (\(inputName), \(size), \(modified), '', 'failed', \(reason), \(model), now())
                RETURNING \(unescaped: Self.jobColumns)
                """, on: connection).first
        }
    }

    /// Tells the listening hosts that a job may be waiting; delivered at the commit.
    func notify(on connection: PostgresConnection) async throws {
        try await connection.query("SELECT pg_notify(\(Self.notifyChannel), '')", logger: logger)
    }
}
