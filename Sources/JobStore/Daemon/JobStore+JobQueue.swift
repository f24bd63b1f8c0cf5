import Foundation

/// The SQLite store as a ``JobQueue``: one host owns the queue, so a claim needs no lease, crash
/// recovery is "every running job was ours", and the one daemon is the one row of `daemon`.
extension JobStore: JobQueue {
    public var location: String { path }
    public var isShared: Bool { false }

    public func renew(_ claim: Claim) throws -> Bool { try isCurrent(claim) }

    public func recoverAtStart(node: String, retries: Int) throws -> InterruptedJobs {
        try requeueInterrupted(retries: retries)
    }

    public func rescueExpired(retries: Int) throws -> [Job] { [] }

    public func register(_ info: DaemonInfo) throws { try setDaemonInfo(info) }

    public func heartbeat(node: String, status: String, problem: String?) throws {
        try touchHeartbeat(status: status)
        try setDaemonProblem(problem)
    }

    public func unregister(node: String) throws { try clearDaemonInfo() }

    public func listen(_ wake: @escaping @Sendable () -> Void) {}

    /// The one daemon row. The table has no node column (its schema predates shared queues and
    /// stays as it is): the name is the one a daemon takes by default, `hostname:pid`, with the
    /// host of this process, which is the daemon's (an SQLite queue is never shared).
    public func workers() throws -> [WorkerStatus] {
        guard var info = try daemonInfo() else { return [] }
        if info.node.isEmpty { info.node = "\(ProcessInfo.processInfo.hostName):\(info.pid)" }
        return [WorkerStatus(info: info, secondsSinceHeartbeat: now() - info.heartbeat)]
    }
}
