import Foundation
import JobStore
import Logging
import PostgresNIO

/// The job queue in PostgreSQL, for several demucsd hosts sharing one queue: claims with
/// `FOR UPDATE SKIP LOCKED`, leases in database time that the holder renews while it works,
/// rescue of jobs whose lease ran out by any host, and writes fenced by the claim token
/// (``Claim``: the job's claim sequence and holder), so that a host that froze past its lease
/// and woke up changes nothing of a job that was handed on.
///
/// The connection pool is PostgresNIO's `PostgresClient`, which must run (``run()``, a
/// swift-service-lifecycle service) for the store to reach the database.
public final class PostgresJobStore: Sendable {
    public let url: DatabaseURL
    public let client: PostgresClient
    /// How long a claim lasts without renewal, in seconds (the holder renews every third of it).
    public let lease: Double
    let logger: Logger

    /// The default lease: long enough that a host busy with a heavy segment renews in time,
    /// short enough that a dead host's job waits about a minute.
    public static let defaultLease: Double = 60

    public init(url: DatabaseURL, lease: Double = PostgresJobStore.defaultLease,
                logger: Logger = Logger(label: "demucsd.postgres")) {
        self.url = url
        self.lease = lease
        self.logger = logger
        // The pool logs every failed connection attempt at info: while the server is down that
        // would be a line a second. The store's own errors say what matters.
        var background = logger
        background.logLevel = max(logger.logLevel, .warning)
        client = PostgresClient(configuration: url.clientConfiguration, backgroundLogger: background)
    }

    /// Runs the connection pool until the task is cancelled.
    public func run() async {
        await client.run()
    }

    /// Applies the migrations this build knows and the database lacks (under an advisory
    /// lock: hosts starting together are safe); returns the versions applied by this call.
    @discardableResult
    public func migrate() async throws -> [Int] {
        try await client.withConnection { try await Migrations.apply(on: $0, logger: self.logger) }
    }

    /// The migrations the database has (empty when it has none).
    public func appliedMigrations() async throws -> [Int] {
        let exists = try await client.query("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
            .collect().first?.decode(Bool.self) ?? false
        guard exists else { return [] }
        var versions: [Int] = []
        for try await version in try await client.query("SELECT version FROM schema_migrations ORDER BY version",
                                                        logger: logger).decode(Int.self) {
            versions.append(version)
        }
        return versions
    }

    /// The columns of ``Job``, times as epoch seconds.
    static let jobColumns = """
        id, input_name, input_size, input_modified, content_hash, state, attempts, error, progress, model,
        output_name, outputs::text AS outputs, audio_seconds,
        extract(epoch FROM created_at)::float8 AS created_at, extract(epoch FROM queued_at)::float8 AS queued_at,
        extract(epoch FROM started_at)::float8 AS started_at, extract(epoch FROM finished_at)::float8 AS finished_at,
        reused_from, claim_sequence, holder, worker, recipe, superseded
        """

    static func job(_ row: PostgresRow) throws -> Job {
        let r = row.makeRandomAccess()
        let outputsText = try r["outputs"].decode(String.self)
        let outputs = try JSONDecoder().decode([String].self, from: Data(outputsText.utf8))
        let stateText = try r["state"].decode(String.self)
        guard let state = JobState(rawValue: stateText) else {
            throw PostgresJobStoreError("job \(try r["id"].decode(Int64.self)) has an unknown state \(stateText)")
        }
        return Job(
            id: try r["id"].decode(Int64.self), inputName: try r["input_name"].decode(String.self),
            inputSize: try r["input_size"].decode(Int64.self), inputModified: try r["input_modified"].decode(Double.self),
            contentHash: try r["content_hash"].decode(String.self), state: state,
            attempts: Int(try r["attempts"].decode(Int32.self)), error: try r["error"].decode(String?.self),
            progress: try r["progress"].decode(Double.self), model: try r["model"].decode(String.self),
            outputName: try r["output_name"].decode(String?.self), outputs: outputs,
            audioSeconds: try r["audio_seconds"].decode(Double?.self), createdAt: try r["created_at"].decode(Double.self),
            queuedAt: try r["queued_at"].decode(Double.self), startedAt: try r["started_at"].decode(Double?.self),
            finishedAt: try r["finished_at"].decode(Double?.self), reusedFrom: try r["reused_from"].decode(Int64?.self),
            claimSequence: try r["claim_sequence"].decode(Int64.self), holder: try r["holder"].decode(String?.self),
            worker: try r["worker"].decode(String?.self), recipe: try r["recipe"].decode(String?.self),
            superseded: try r["superseded"].decode(Bool.self))
    }

    func jobs(_ query: PostgresQuery, on connection: PostgresConnection? = nil) async throws -> [Job] {
        let rows: PostgresRowSequence
        if let connection {
            rows = try await connection.query(query, logger: logger)
        } else {
            rows = try await client.query(query, logger: logger)
        }
        var jobs: [Job] = []
        for try await row in rows { jobs.append(try Self.job(row)) }
        return jobs
    }

}

/// A failure of the PostgreSQL store that is not the driver's own.
public struct PostgresJobStoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
