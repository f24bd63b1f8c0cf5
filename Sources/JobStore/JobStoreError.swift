/// The single error type of JobStore.
///
/// Every failure says which store operation failed, on which database file, the SQL that was
/// running (when SQLite itself refused) and a human reason. `demucsctl` prints these verbatim to
/// operators, and the daemon logs them, so they have to be actionable without a stack trace.
public struct JobStoreError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Coarse classification so callers can branch (exit codes, "try again later", ...).
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// There is no database file at the given path (read-only or read-write open of an
        /// existing store).
        case missingDatabase
        /// The folder or file could not be created, or its permissions could not be set.
        case fileSystem
        /// The database schema is older or newer than this build understands.
        case incompatibleSchema
        /// A write was attempted on a store opened with ``JobStore/openReadOnly(path:)``,
        /// or SQLite refused a write because the file is not writable.
        case readOnly
        /// Another process held the write lock longer than the busy timeout (5 s).
        case busy
        /// No job has the given id.
        case jobNotFound
        /// A caller-supplied value is unusable (empty name, path separator in a folder name, ...).
        case invalidArgument
        /// A row holds a value this build cannot decode (unknown state, malformed JSON).
        case corruptRow
        /// Any other SQLite failure.
        case sqlite
        /// The database server (PostgreSQL) cannot be reached, closed the connection, or did
        /// not answer in time.
        case unreachable
        /// Any other failure the database server (PostgreSQL) reported.
        case database
    }

    public var kind: Kind
    /// What the store was doing, e.g. `"claim next job"`; reads naturally after "cannot".
    public var operation: String
    /// The database file the operation was about.
    public var path: String
    /// The SQL statement SQLite rejected, when the failure came from SQLite.
    public var sql: String?
    /// A short human-readable reason (SQLite's message, or ours).
    public var reason: String
    /// SQLite's extended result code, when the failure came from SQLite.
    public var sqliteCode: Int32?

    public init(
        _ kind: Kind, operation: String, path: String, sql: String? = nil,
        reason: String, sqliteCode: Int32? = nil
    ) {
        self.kind = kind
        self.operation = operation
        self.path = path
        self.sql = sql
        self.reason = reason
        self.sqliteCode = sqliteCode
    }

    public var description: String {
        // A missing database is the one error operators hit routinely (wrong --data, daemon not
        // started yet); its reason already names the path and the remedy, so print it alone.
        if kind == .missingDatabase { return reason }
        var text = "cannot \(operation) (\(path)): \(reason)"
        if let sql { text += " [SQL: \(sql)]" }
        return text
    }
}
