/// What the running daemon publishes about itself, for `demucsctl status`.
///
/// Lives in the single-row `daemon` table rather than a pid file so that one read-only
/// database open gives the CLI everything (jobs and daemon health) consistently, and so
/// operators with only group read access need no other file.
public struct DaemonInfo: Codable, Sendable, Equatable {
    /// The daemon's node name (`--node`, default `hostname:pid`): the prefix of its workers'
    /// names (`NODE/worker-N`) in ``Job/holder`` and ``Job/worker``.
    public var node: String
    /// Process id, so `status` can check the process still exists (a stale row after kill -9).
    public var pid: Int32
    /// When the daemon started (seconds since epoch).
    public var startedAt: Double
    /// demucsd version string.
    public var version: String
    /// Model the daemon separates with.
    public var model: String
    /// Last sign of life; a heartbeat older than a few intervals means the daemon hangs or died.
    public var heartbeat: Double
    /// Short state for humans: "idle", "separating song.mp3", "waiting for model", ...
    public var status: String
    /// A condition the operator must fix, e.g. "model htdemucs is not installed: put ... into
    /// ...". `nil` when all is well.
    public var problem: String?

    public init(
        pid: Int32, startedAt: Double, version: String, model: String,
        heartbeat: Double, status: String, problem: String? = nil, node: String = ""
    ) {
        self.node = node
        self.pid = pid
        self.startedAt = startedAt
        self.version = version
        self.model = model
        self.heartbeat = heartbeat
        self.status = status
        self.problem = problem
    }
}
