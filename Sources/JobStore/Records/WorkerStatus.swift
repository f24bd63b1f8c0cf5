/// One daemon as the job queue knows it, for `demucsctl status`: what it published about itself
/// and how long ago its last heartbeat was, measured on the queue's own clock (the database
/// server's for PostgreSQL), so hosts whose clocks disagree still agree on who is alive.
public struct WorkerStatus: Sendable, Equatable {
    public var info: DaemonInfo
    /// Seconds since ``DaemonInfo/heartbeat``, by the queue's clock.
    public var secondsSinceHeartbeat: Double

    public init(info: DaemonInfo, secondsSinceHeartbeat: Double) {
        self.info = info
        self.secondsSinceHeartbeat = secondsSinceHeartbeat
    }

    /// Whether the daemon is alive: it sent a heartbeat within three intervals.
    public func isAlive(heartbeatInterval: Double) -> Bool {
        secondsSinceHeartbeat < 3 * heartbeatInterval
    }
}
