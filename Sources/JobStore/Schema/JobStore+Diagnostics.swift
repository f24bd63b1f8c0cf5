internal import GRDB

/// Facts about the database file itself, for `demucsctl status --verbose`, start-up logs and
/// tests: which schema versions are applied, the journal mode, and whether this store's
/// connection keeps the WAL files on close.
extension JobStore {
    /// Applied migration identifiers as recorded in `grdb_migrations`, oldest first; unknown
    /// (newer) identifiers are listed after the known ones, sorted.
    public func appliedSchemaVersions() throws -> [String] {
        try read("read schema versions") { db in
            let migrator = JobStoreSchema.migrator
            let known = try migrator.appliedMigrations(db)
            let unknown = try migrator.appliedIdentifiers(db).subtracting(known).sorted()
            return known + unknown
        }
    }

    /// SQLite's journal mode for this database (`"wal"` once the daemon opened it).
    public func journalMode() throws -> String {
        try read("read journal mode") { db in
            try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? ""
        }
    }

    /// Whether the connection this store reads with has `SQLITE_FCNTL_PERSIST_WAL` set.
    public func keepsWALFilesOnClose() throws -> Bool {
        try read("query SQLITE_FCNTL_PERSIST_WAL") { db in PersistentWAL.isEnabled(on: db) }
    }

    /// SQLite's `synchronous` setting of this store's connections (2 = FULL).
    public func synchronousLevel() throws -> Int {
        try read("read synchronous level") { db in
            try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
        }
    }
}
