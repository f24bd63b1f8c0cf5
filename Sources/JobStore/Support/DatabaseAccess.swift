internal import GRDB

/// Every database access of the store goes through these two helpers so that every failure
/// comes out as a ``JobStoreError`` naming the operation, the SQL and the reason, and so that
/// writes on a read-only store fail with a clear message before reaching SQLite.
extension JobStore {
    /// Runs `body` in one write transaction. GRDB opens it `BEGIN IMMEDIATE`, so the write lock
    /// is taken up front: a read-then-update (claim, allocate a name) can never be interleaved
    /// with another process's write, and lock waits happen at BEGIN, under the busy timeout,
    /// instead of failing with SQLITE_BUSY halfway.
    func write<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        guard !isReadOnly else {
            throw JobStoreError(
                .readOnly, operation: operation, path: path,
                reason: "the store was opened read-only (demucsctl status/jobs); open it read-write to change jobs")
        }
        do {
            return try database.write(body)
        } catch {
            throw Self.storeError(error, operation: operation, path: path)
        }
    }

    /// Runs `body` in one read transaction (a consistent snapshot under WAL).
    func read<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        do {
            return try database.read(body)
        } catch {
            throw Self.storeError(error, operation: operation, path: path)
        }
    }

    /// Converts any error thrown inside an access into a ``JobStoreError``.
    static func storeError(_ error: any Error, operation: String, path: String) -> JobStoreError {
        if var error = error as? JobStoreError {
            // Row decoding does not know the file; fill it in here.
            if error.path.isEmpty { error.path = path }
            return error
        }
        if let error = error as? DatabaseError {
            let kind: JobStoreError.Kind
            switch error.resultCode {
            case .SQLITE_BUSY, .SQLITE_LOCKED: kind = .busy
            case .SQLITE_READONLY: kind = .readOnly
            case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_AUTH: kind = .fileSystem
            case .SQLITE_CONSTRAINT: kind = .invalidArgument
            default: kind = .sqlite
            }
            var reason = error.message ?? "SQLite error \(error.extendedResultCode.rawValue)"
            if kind == .busy {
                reason += " (another process held the database lock for more than \(Int(busyTimeout)) s)"
            }
            return JobStoreError(
                kind, operation: operation, path: path, sql: error.sql, reason: reason,
                sqliteCode: error.extendedResultCode.rawValue)
        }
        if error is RowDecodingError {
            return JobStoreError(.corruptRow, operation: operation, path: path, reason: "\(error)")
        }
        return JobStoreError(.sqlite, operation: operation, path: path, reason: "\(error)")
    }
}
