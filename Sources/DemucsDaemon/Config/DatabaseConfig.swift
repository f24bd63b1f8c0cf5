/// The `[database]` section: where the job queue lives, and the leases of a shared one.
///
/// Without `url` the queue is the SQLite file `DATA/state/jobs.sqlite`, for one host. With
/// `url = "postgresql://…"` several daemons on several hosts share one queue in PostgreSQL
/// (docs/SCALING.md); `--database URL` on the command line wins over the file.
public struct DatabaseConfig: Sendable, Equatable {
    /// `postgresql://USER[:PASSWORD]@HOST[:PORT]/DB` or `postgresql:///DB?host=/run/postgresql`;
    /// nil: SQLite in the data folder.
    public var url: String?
    /// How long a claim lasts without renewal: a host that died or froze loses its job to
    /// another this long after its last renewal.
    public var leaseSeconds: Double
    /// How often a host renews its claims, records its heartbeat in the workers table and
    /// rescues jobs whose lease ran out. At most half the lease, so that one late renewal does
    /// not lose a job.
    public var heartbeatSeconds: Double
    /// This daemon's name in the workers table and on the jobs it runs; nil: `hostname:pid`.
    public var node: String?

    public init(url: String? = nil, leaseSeconds: Double = 60, heartbeatSeconds: Double = 20, node: String? = nil) {
        self.url = url
        self.leaseSeconds = leaseSeconds
        self.heartbeatSeconds = heartbeatSeconds
        self.node = node
    }

    init(reading reader: inout ConfigTableReader) throws {
        let defaults = DatabaseConfig()
        let url = try reader.string("url", default: "")
        if !url.isEmpty, !(url.hasPrefix("postgresql://") || url.hasPrefix("postgres://")) {
            throw reader.error("url", "is not a PostgreSQL URL (postgresql://USER@HOST/DB, or postgresql:///DB?host=/run/postgresql)")
        }
        self.url = url.isEmpty ? nil : url
        leaseSeconds = try reader.double("lease_seconds", default: defaults.leaseSeconds, range: 2...3600,
                                         rangeText: "2..3600", what: "lease in seconds")
        heartbeatSeconds = try reader.double("heartbeat_seconds", default: min(defaults.heartbeatSeconds, leaseSeconds / 3),
                                             range: 0.5...1800, rangeText: "0.5..1800", what: "heartbeat interval in seconds")
        if heartbeatSeconds > leaseSeconds / 2 {
            throw reader.error("heartbeat_seconds", "must be at most half of lease_seconds (\(leaseSeconds)), so that one late renewal does not lose the job")
        }
        let node = try reader.string("node", default: "")
        if node.contains("/") { throw reader.error("node", "must not contain '/'") }
        self.node = node.isEmpty ? nil : node
        try reader.rejectUnknownKeys()
    }
}

/// The `[watch]` section: how the input folder is watched.
public struct WatchConfig: Sendable, Equatable {
    /// Scan the input folder every this many seconds instead of relying on inotify; 0: automatic
    /// (inotify, but polling every 2 s when the folder is on NFS, CIFS/SMB or another network
    /// filesystem, where inotify does not see what other hosts write).
    public var pollSeconds: Double
    /// With inotify, a full scan this often anyway, as a safety net (events can be lost).
    public var rescanSeconds: Double

    public init(pollSeconds: Double = 0, rescanSeconds: Double = 300) {
        self.pollSeconds = pollSeconds
        self.rescanSeconds = rescanSeconds
    }

    init(reading reader: inout ConfigTableReader) throws {
        let defaults = WatchConfig()
        pollSeconds = try reader.double("poll_seconds", default: defaults.pollSeconds, range: 0...3600,
                                        rangeText: "0..3600", what: "poll interval in seconds")
        rescanSeconds = try reader.double("rescan_seconds", default: defaults.rescanSeconds, range: 10...86_400,
                                          rangeText: "10..86400", what: "rescan interval in seconds")
        try reader.rejectUnknownKeys()
    }
}
