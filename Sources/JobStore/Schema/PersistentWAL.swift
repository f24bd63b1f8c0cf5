internal import GRDB
#if canImport(GRDBSQLite)
internal import GRDBSQLite
#else
internal import SQLite3
#endif

/// Keeps the `-wal` and `-shm` files when a connection closes.
///
/// By default the last connection to close a WAL database checkpoints and deletes `-wal` and
/// `-shm`. A reader that may not write the folder (an operator running `demucsctl status` with
/// group read access only) cannot recreate them, and SQLite then refuses to open the database
/// ("unable to open database file"). With `SQLITE_FCNTL_PERSIST_WAL` set, the files stay, and
/// read-only readers keep working after the daemon stopped. The files are checkpointed, so
/// keeping them costs nothing.
///
/// The flag is per connection and applies when *that* connection closes, so every connection we
/// open sets it (via `Configuration.prepareDatabase`): the daemon's writer and pool readers, and
/// `demucsctl`'s read-write connection, any of which may be the last to close.
///
/// GRDB does not re-export the SQLite C API, but its `GRDBSQLite` system-library module (a module
/// map over the system `sqlite3.h`) is importable by any target that depends on GRDB, and gives
/// `sqlite3_file_control` on Linux.
enum PersistentWAL {
    static func enable(on db: Database) throws {
        guard let connection = db.sqliteConnection else {
            throw DatabaseError(message: "no SQLite connection to set SQLITE_FCNTL_PERSIST_WAL on")
        }
        var one: Int32 = 1
        let code = sqlite3_file_control(connection, "main", SQLITE_FCNTL_PERSIST_WAL, &one)
        guard code == SQLITE_OK else {
            throw DatabaseError(
                resultCode: ResultCode(rawValue: code),
                message: "sqlite3_file_control(SQLITE_FCNTL_PERSIST_WAL) failed")
        }
    }

    /// Whether the connection will keep the WAL files on close (a query: -1 asks, doesn't set).
    static func isEnabled(on db: Database) -> Bool {
        guard let connection = db.sqliteConnection else { return false }
        var query: Int32 = -1
        let code = sqlite3_file_control(connection, "main", SQLITE_FCNTL_PERSIST_WAL, &query)
        return code == SQLITE_OK && query == 1
    }
}
