import Foundation
import JobStore
import PostgresNIO

/// Output folder names across hosts: the rules of ``JobStore/allocateOutputName(for:preferred:existsOnDisk:)``
/// (`song`, then `song (2)`, … for another input of the same base name), made one step for all
/// hosts by an advisory lock on the choice of names.
extension PostgresJobStore {
    public func allocateOutputName(for id: Int64, preferred: String,
                                   existsOnDisk: @Sendable (String) -> Bool = { _ in false }) async throws -> String {
        if preferred.isEmpty || preferred == "." || preferred == ".." || preferred.contains("/") || preferred.contains("\0") {
            throw JobStoreError(.invalidArgument, operation: "allocate output folder name for job \(id)", path: url.description,
                                reason: "'\(preferred)' is not a usable folder name (empty, '.', '..', or contains '/' or NUL)")
        }
        return try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Locks.outputNames), 0)", logger: self.logger)
            guard let job = try await self.jobs(
                "SELECT \(unescaped: Self.jobColumns) FROM job WHERE id = \(id)", on: connection).first else {
                throw JobStoreError(.jobNotFound, operation: "allocate output folder name for job \(id)",
                                    path: self.url.description, reason: "no job with id \(id)")
            }
            if let existing = job.outputName { return existing }

            func exists(_ query: PostgresQuery) async throws -> Bool {
                try await connection.query(query, logger: self.logger).collect().count > 0
            }
            func heldByOtherInput(_ name: String) async throws -> Bool {
                if try await exists("SELECT 1 FROM job WHERE output_name = \(name) AND input_name <> \(job.inputName) LIMIT 1") {
                    return true
                }
                guard existsOnDisk(name) else { return false }
                return try await !exists("""
                    SELECT 1 FROM job WHERE output_name = \(name) AND input_name = \(job.inputName) AND state = 'done' LIMIT 1
                    """)
            }

            var chosen: String?
            let previous = try await connection.query("""
                SELECT output_name FROM job
                WHERE input_name = \(job.inputName) AND output_name IS NOT NULL AND id <> \(id)
                ORDER BY id DESC LIMIT 1
                """, logger: self.logger).collect().first
            if let previous, let name = try previous.decode(String?.self), try await !heldByOtherInput(name) {
                chosen = name
            }
            if chosen == nil {
                var candidate = preferred
                var suffix = 2
                while try await heldByOtherInput(candidate) {
                    candidate = "\(preferred) (\(suffix))"
                    suffix += 1
                }
                chosen = candidate
            }
            let name = chosen!
            try await connection.query("UPDATE job SET output_name = \(name) WHERE id = \(id)", logger: self.logger)
            return name
        }
    }
}
