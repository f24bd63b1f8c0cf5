internal import GRDB

/// The single-row `daemon` table: how the running daemon describes itself to `demucsctl status`.
///
/// The row is written at start (``setDaemonInfo(_:)``), refreshed by ``touchHeartbeat(status:)``
/// and removed on clean shutdown (``clearDaemonInfo()``). After a crash it stays; `status` then
/// sees a stale heartbeat and a dead pid, which is exactly what the operator needs to know.
extension JobStore {
    /// Replaces the daemon row (there is at most one, id 1).
    public func setDaemonInfo(_ info: DaemonInfo) throws {
        try write("record daemon info") { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO daemon (id, pid, startedAt, version, model, heartbeat, status, problem)
                VALUES (1, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [info.pid, info.startedAt, info.version, info.model,
                                 info.heartbeat, info.status, info.problem])
        }
    }

    /// The daemon row, or `nil` when no daemon has registered (or it shut down cleanly).
    public func daemonInfo() throws -> DaemonInfo? {
        try read("read daemon info") { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT pid, startedAt, version, model, heartbeat, status, problem FROM daemon WHERE id = 1
                """) else { return nil }
            return DaemonInfo(
                pid: try row.decode(forColumn: "pid"),
                startedAt: try row.decode(forColumn: "startedAt"),
                version: try row.decode(forColumn: "version"),
                model: try row.decode(forColumn: "model"),
                heartbeat: try row.decode(forColumn: "heartbeat"),
                status: try row.decode(forColumn: "status"),
                problem: try row.decode(forColumn: "problem"))
        }
    }

    /// Sets the heartbeat to now and the human status line; leaves `problem` as it is.
    /// - Returns: `false` when there is no daemon row (call ``setDaemonInfo(_:)`` first).
    @discardableResult
    public func touchHeartbeat(status: String) throws -> Bool {
        let time = now()
        return try write("update daemon heartbeat") { db in
            try db.execute(sql: "UPDATE daemon SET heartbeat = ?, status = ? WHERE id = 1", arguments: [time, status])
            return db.changesCount > 0
        }
    }

    /// Sets or clears (`nil`) the problem the operator must fix, and refreshes the heartbeat.
    /// - Returns: `false` when there is no daemon row.
    @discardableResult
    public func setDaemonProblem(_ problem: String?) throws -> Bool {
        let time = now()
        return try write("update daemon problem") { db in
            try db.execute(sql: "UPDATE daemon SET heartbeat = ?, problem = ? WHERE id = 1", arguments: [time, problem])
            return db.changesCount > 0
        }
    }

    /// Removes the daemon row (clean shutdown).
    public func clearDaemonInfo() throws {
        try write("clear daemon info") { db in
            try db.execute(sql: "DELETE FROM daemon")
        }
    }
}
