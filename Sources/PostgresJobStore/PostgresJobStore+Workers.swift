import Foundation
import JobStore
import PostgresNIO

/// The `worker_node` table: every daemon sharing the queue, by node name, with its heartbeat in
/// database time (so `status` judges liveness on one clock). A node that stops cleanly removes
/// its row; one that died stays listed, not alive, until a week without heartbeat, when the
/// next daemon to start removes it.
extension PostgresJobStore {
    /// Rows older than this are removed when a daemon registers (nodes named `hostname:pid`
    /// would otherwise pile up over restarts).
    static let forgetWorkersAfter: Double = 7 * 86_400

    public func register(_ info: DaemonInfo) async throws {
        guard !info.node.isEmpty else { throw PostgresJobStoreError("empty node name") }
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("""
                DELETE FROM worker_node WHERE heartbeat < now() - make_interval(secs => \(Self.forgetWorkersAfter))
                """, logger: self.logger)
            try await connection.query("""
                INSERT INTO worker_node (node, pid, version, model, started_at, heartbeat, status, problem)
                VALUES (\(info.node), \(Int64(info.pid)), \(info.version), \(info.model), to_timestamp(\(info.startedAt)),
                        now(), \(info.status), \(info.problem))
                ON CONFLICT (node) DO UPDATE SET pid = excluded.pid, version = excluded.version, model = excluded.model,
                    started_at = excluded.started_at, heartbeat = now(), status = excluded.status, problem = excluded.problem
                """, logger: self.logger)
        }
    }

    public func heartbeat(node: String, status: String, problem: String?) async throws {
        try await client.query("""
            UPDATE worker_node SET heartbeat = now(), status = \(status), problem = \(problem) WHERE node = \(node)
            """, logger: logger)
    }

    public func unregister(node: String) async throws {
        try await client.query("DELETE FROM worker_node WHERE node = \(node)", logger: logger)
    }

    public func workers() async throws -> [WorkerStatus] {
        var result: [WorkerStatus] = []
        let rows = try await client.query("""
            SELECT node, pid, version, model, extract(epoch FROM started_at)::float8, extract(epoch FROM heartbeat)::float8,
                   status, problem, extract(epoch FROM now() - heartbeat)::float8
            FROM worker_node ORDER BY node
            """, logger: logger)
        for try await (node, pid, version, model, started, beat, status, problem, age)
            in rows.decode((String, Int64, String, String, Double, Double, String, String?, Double).self) {
            let info = DaemonInfo(pid: Int32(truncatingIfNeeded: pid), startedAt: started, version: version, model: model,
                                  heartbeat: beat, status: status, problem: problem, node: node)
            result.append(WorkerStatus(info: info, secondsSinceHeartbeat: age))
        }
        return result
    }
}
