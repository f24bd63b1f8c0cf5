internal import GRDB

/// Read-only queries for `demucsctl status/jobs` and the daemon's own reporting. Each runs in one
/// read transaction (a consistent WAL snapshot), never blocks the writer, and works on a store
/// opened with ``JobStore/openReadOnly(path:clock:)``. A negative `limit` counts as 0.
extension JobStore {
    /// Number of jobs per state; every state is present (0 when none), so callers can print a
    /// fixed table without optional handling.
    public func counts() throws -> [JobState: Int] {
        try read("count jobs") { db in
            var result = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) })
            for row in try Row.fetchAll(db, sql: "SELECT state, count(*) AS n FROM job GROUP BY state") {
                let stateText = try row.decode(String.self, forColumn: "state")
                guard let state = JobState(rawValue: stateText) else {
                    throw JobStoreError(.corruptRow, operation: "count jobs", path: path, reason: "unknown state '\(stateText)'")
                }
                result[state] = try row.decode(Int.self, forColumn: "n")
            }
            return result
        }
    }

    /// Jobs being separated now, in the order they started.
    public func running() throws -> [Job] {
        try read("list running jobs") { db in
            try Job.fetchAll(db, sql: "\(Job.select) WHERE state = 'running' ORDER BY startedAt, id")
        }
    }

    /// Queued jobs in the order the worker will take them.
    public func queued(limit: Int = 50) throws -> [Job] {
        try read("list queued jobs") { db in
            try Job.fetchAll(db, sql: "\(Job.select) WHERE state = 'queued' ORDER BY queuedAt, id LIMIT ?",
                             arguments: [max(limit, 0)])
        }
    }

    /// Jobs, newest first (by id, i.e. creation order), optionally of one state.
    public func jobs(state: JobState? = nil, limit: Int = 50) throws -> [Job] {
        try read("list jobs") { db in
            if let state {
                return try Job.fetchAll(db, sql: "\(Job.select) WHERE state = ? ORDER BY id DESC LIMIT ?",
                                        arguments: [state.rawValue, max(limit, 0)])
            }
            return try Job.fetchAll(db, sql: "\(Job.select) ORDER BY id DESC LIMIT ?", arguments: [max(limit, 0)])
        }
    }

    /// Done jobs, most recently finished first.
    public func recentDone(limit: Int = 10) throws -> [Job] {
        try recentFinished(.done, limit: limit)
    }

    /// Failed jobs, most recently failed first.
    public func recentFailed(limit: Int = 10) throws -> [Job] {
        try recentFinished(.failed, limit: limit)
    }

    /// One job, or `nil` if there is no such id.
    public func job(id: Int64) throws -> Job? {
        try read("read job \(id)") { db in try Job.fetchOne(db, id: id) }
    }

    /// The newest job for an input name, or `nil`. Lets the watcher decide what to do with a
    /// file it sees again (e.g. not re-queue a file that failed with the same content).
    public func latestJob(inputName: String) throws -> Job? {
        try read("read latest job of \(inputName)") { db in
            try Job.fetchOne(db, sql: "\(Job.select) WHERE inputName = ? ORDER BY id DESC LIMIT 1",
                             arguments: [inputName])
        }
    }

    /// Number of queued jobs.
    public var queueLength: Int {
        get throws {
            try read("count queued jobs") { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM job WHERE state = 'queued'") ?? 0
            }
        }
    }

    private func recentFinished(_ state: JobState, limit: Int) throws -> [Job] {
        try read("list \(state.rawValue) jobs") { db in
            try Job.fetchAll(db, sql: "\(Job.select) WHERE state = ? ORDER BY finishedAt DESC, id DESC LIMIT ?",
                             arguments: [state.rawValue, max(limit, 0)])
        }
    }
}
