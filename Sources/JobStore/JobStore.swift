import Foundation
internal import GRDB

/// The persistent job queue shared by `demucsd` (writer) and `demucsctl` (reader, occasional
/// writer), backed by one SQLite file in WAL mode.
///
/// Why SQLite and WAL: the daemon writes progress a few times a second while operators run
/// `demucsctl status` from other processes, possibly as other users with read-only access. WAL
/// lets those readers read a consistent snapshot without blocking the writer or being blocked by
/// it, and SQLite's file locks make every state transition atomic across processes (two workers,
/// or the daemon and `demucsctl cancel`, can never both win the same job).
///
/// How to open it:
/// - ``init(path:clock:)``: the daemon. Creates folder and file (mode 0640), turns WAL on, runs
///   migrations. Uses a GRDB `DatabasePool` (one writer connection, concurrent readers).
/// - ``openReadOnly(path:clock:)``: `demucsctl status/jobs`. Never writes, needs only read
///   permission, no migrations.
/// - ``openReadWrite(path:clock:)``: `demucsctl retry/cancel`. Requires an existing database
///   whose schema the daemon already created; never creates or migrates.
///
/// All connections run with `synchronous = FULL` (a commit is durable when it returns), use a 5 s busy timeout (a writer waits for another process's short write
/// transaction instead of failing) and set `SQLITE_FCNTL_PERSIST_WAL` (see ``PersistentWAL``).
///
/// Thread safety: the class only holds immutable `let`s, and GRDB's database connections are
/// themselves `Sendable` (they serialise access internally), so the store is `Sendable` without
/// `@unchecked`. All methods are synchronous and block while SQLite works, which is a few
/// milliseconds; call them from a background task, not a UI thread.
public final class JobStore: Sendable {
    /// Path of the SQLite database file.
    public let path: String
    /// Whether this store was opened with ``openReadOnly(path:clock:)``; mutating methods then
    /// throw ``JobStoreError/Kind/readOnly`` before touching SQLite.
    public let isReadOnly: Bool
    /// The GRDB connection(s). A `DatabasePool` for the daemon, a `DatabaseQueue` for the CLI.
    let database: any DatabaseWriter
    /// Time source for createdAt/startedAt/heartbeat..., injectable so tests control ordering.
    let now: @Sendable () -> Double

    /// Wall-clock seconds since the Unix epoch, the default time source.
    public static let systemClock: @Sendable () -> Double = { Date().timeIntervalSince1970 }

    /// Busy timeout of every connection: long enough to ride out any write transaction of
    /// this module (all are a handful of statements), short enough that a stuck process is
    /// reported rather than hanging `demucsctl` forever.
    public static let busyTimeout: TimeInterval = 5

    /// The current schema version (last migration identifier recorded in `grdb_migrations`).
    public static var schemaVersion: String { JobStoreSchema.current }

    private init(path: String, database: any DatabaseWriter, isReadOnly: Bool, now: @escaping @Sendable () -> Double) {
        self.path = path
        self.database = database
        self.isReadOnly = isReadOnly
        self.now = now
    }

    /// Opens (creating if needed) the daemon's read-write store.
    ///
    /// Creates the parent folder (0750) and the file (0640, see ``DatabaseFile``), enables WAL
    /// mode, and runs pending migrations. Refuses a database whose schema was upgraded by a newer
    /// demucsd rather than writing rows that version may not expect.
    ///
    /// Safe to use from `demucsctl` too, but ``openReadWrite(path:clock:)`` is better there: it
    /// will not create an empty database in the wrong folder when `--data` is mistyped.
    public convenience init(path: String, clock: @escaping @Sendable () -> Double = JobStore.systemClock) throws {
        try DatabaseFile.create(at: path)
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: Self.configuration(readOnly: false))
        } catch {
            throw Self.storeError(error, operation: "open database", path: path)
        }
        do {
            if case .newer(let unknown) = try pool.read(JobStoreSchema.compatibility) {
                throw Self.newerSchemaError(unknown, operation: "migrate database", path: path)
            }
            try JobStoreSchema.migrator.migrate(pool)
            // GRDB sets NORMAL when it turns WAL on for a pool, after `prepareDatabase`: set the
            // writer connection (the one that commits) back to FULL.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        } catch {
            throw Self.storeError(error, operation: "migrate database", path: path)
        }
        self.init(path: path, database: pool, isReadOnly: false, now: clock)
    }

    /// Opens an existing store for reading only (`demucsctl status/jobs`).
    ///
    /// Opens with `SQLITE_OPEN_READONLY` (GRDB `Configuration.readonly`), so only read permission
    /// on the file is needed, and runs no migrations. A schema *newer* than this build is
    /// accepted because migrations are additive and all queries name their columns; an older or
    /// missing schema is an error telling the operator to start demucsd.
    public static func openReadOnly(path: String, clock: @escaping @Sendable () -> Double = JobStore.systemClock) throws -> JobStore {
        let operation = "open database read-only"
        try requireExistingFile(path)
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration(readOnly: true))
            if case .older(let applied) = try queue.read(JobStoreSchema.compatibility) {
                throw olderSchemaError(applied, operation: operation, path: path)
            }
            return JobStore(path: path, database: queue, isReadOnly: true, now: clock)
        } catch {
            throw storeError(error, operation: operation, path: path)
        }
    }

    /// Opens an existing store for the few writes `demucsctl` does (`retry`, `cancel`).
    ///
    /// Unlike ``init(path:clock:)`` it never creates the file nor migrates: the daemon owns the
    /// schema, and a missing database almost always means a wrong `--data`. The schema must be
    /// exactly the one this build knows, since it is about to write.
    public static func openReadWrite(path: String, clock: @escaping @Sendable () -> Double = JobStore.systemClock) throws -> JobStore {
        let operation = "open database read-write"
        try requireExistingFile(path)
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration(readOnly: false))
            switch try queue.read(JobStoreSchema.compatibility) {
            case .current: break
            case .older(let applied): throw olderSchemaError(applied, operation: operation, path: path)
            case .newer(let unknown): throw newerSchemaError(unknown, operation: operation, path: path)
            }
            return JobStore(path: path, database: queue, isReadOnly: false, now: clock)
        } catch {
            throw storeError(error, operation: operation, path: path)
        }
    }

    /// Closes the connections now instead of at deinit, so the daemon's shutdown is
    /// deterministic (final checkpoint done, WAL files kept). Later calls on this store throw.
    public func close() throws {
        do {
            try database.close()
        } catch {
            throw Self.storeError(error, operation: "close database", path: path)
        }
    }

    // MARK: - Opening helpers

    /// The GRDB configuration shared by all opens.
    static func configuration(readOnly: Bool) -> Configuration {
        var config = Configuration()
        config.readonly = readOnly
        config.busyMode = .timeout(busyTimeout)
        config.label = readOnly ? "JobStore.readonly" : "JobStore"
        config.prepareDatabase { db in
            try PersistentWAL.enable(on: db)
            // FULL: a transaction is on disk when COMMIT returns, so a job that reads `done`
            // after a power cut had its folder renamed (and fsynced) before that commit. WAL's
            // NORMAL could lose the last commits, and the order "folder, then row" with them.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        return config
    }

    private static func requireExistingFile(_ path: String) throws(JobStoreError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw JobStoreError(
                .missingDatabase, operation: "open database", path: path,
                reason: "no database at \(path): is demucsd running with --data DIR?")
        }
        if isDirectory.boolValue {
            throw JobStoreError(
                .fileSystem, operation: "open database", path: path,
                reason: "\(path) is a folder, not a database file")
        }
    }

    private static func olderSchemaError(_ applied: [String], operation: String, path: String) -> JobStoreError {
        let found = applied.isEmpty ? "no job tables" : "schema \(applied.last!)"
        return JobStoreError(
            .incompatibleSchema, operation: operation, path: path,
            reason: "the database has \(found), this program needs \(JobStoreSchema.current): "
                + "start demucsd (same version) once to create or upgrade it")
    }

    private static func newerSchemaError(_ unknown: [String], operation: String, path: String) -> JobStoreError {
        JobStoreError(
            .incompatibleSchema, operation: operation, path: path,
            reason: "the database was upgraded by a newer demucsd (unknown schema versions "
                + "\(unknown.joined(separator: ", "))); upgrade this program instead of downgrading the database")
    }
}
