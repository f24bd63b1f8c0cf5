import Foundation
import JobStore
import PostgresNIO

/// The reads of `demucsctl status/jobs` and of the daemon, as in the SQLite store.
extension PostgresJobStore {
    /// The jobs that `tail` (the SQL after `FROM job`) selects.
    func select(_ tail: PostgresQuery) async throws -> [Job] {
        var query = tail
        query.sql = "SELECT \(Self.jobColumns) FROM job " + query.sql
        return try await jobs(query)
    }

    public func job(id: Int64) async throws -> Job? {
        try await select("WHERE id = \(id)").first
    }

    public func latestJob(inputName: String) async throws -> Job? {
        try await select("WHERE input_name = \(inputName) ORDER BY id DESC LIMIT 1").first
    }

    public func counts() async throws -> [JobState: Int] {
        var result = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) })
        for try await (state, n) in try await client.query("SELECT state, count(*) FROM job GROUP BY state", logger: logger)
            .decode((String, Int64).self) {
            guard let state = JobState(rawValue: state) else { throw PostgresJobStoreError("unknown job state \(state)") }
            result[state] = Int(n)
        }
        return result
    }

    public func running() async throws -> [Job] {
        try await select("WHERE state = 'running' ORDER BY started_at, id")
    }

    public func jobs(state: JobState? = nil, limit: Int = 50) async throws -> [Job] {
        let limit = max(limit, 0)
        if let state { return try await select("WHERE state = \(state.rawValue) ORDER BY id DESC LIMIT \(limit)") }
        return try await select("ORDER BY id DESC LIMIT \(limit)")
    }

    public func recentFinished(_ state: JobState, limit: Int) async throws -> [Job] {
        try await select("WHERE state = \(state.rawValue) ORDER BY finished_at DESC, id DESC LIMIT \(max(limit, 0))")
    }

    /// Done jobs whose stems may be reused (see ``JobStore/reusableJobs(withHash:model:recipe:limit:)``).
    public func reusableJobs(withHash contentHash: String, model: String, recipe: String, limit: Int = 10) async throws -> [Job] {
        try await select("""
            WHERE content_hash = \(contentHash) AND model = \(model) AND recipe = \(recipe) AND state = 'done'
              AND NOT superseded AND outputs <> '[]'::jsonb
            ORDER BY finished_at DESC, id DESC LIMIT \(max(limit, 0))
            """)
    }
}
