import Foundation
import GRDB
import Testing
@testable import JobStore

@Suite("Opening and schema")
struct SchemaTests {
    @Test("a new database gets the folder, both tables, the indexes and a recorded schema version")
    func createsSchema() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        #expect(FileManager.default.fileExists(atPath: temp.databasePath))
        #expect(try store.appliedSchemaVersions() == ["v1", "v2-claims"])
        #expect(JobStore.schemaVersion == "v2-claims")

        let (tables, indexes, migrations) = try store.database.read { db in
            (try String.fetchSet(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'"),
             try String.fetchSet(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'job'"),
             try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"))
        }
        #expect(tables.isSuperset(of: ["job", "daemon", "grdb_migrations"]))
        #expect(indexes.isSuperset(of: ["job_state", "job_contentHash"]))
        #expect(migrations == ["v1", "v2-claims"])
    }

    /// Why (6): WAL with `synchronous = NORMAL` can lose the last commits at a power cut.
    @Test("every connection commits durably (synchronous = FULL)")
    func synchronousFull() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        #expect(try store.synchronousLevel() == 2)
        #expect(try store.database.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
        #expect(try JobStore.openReadWrite(path: temp.databasePath).synchronousLevel() == 2)
    }

    @Test("a database of the first schema is upgraded and its jobs keep working")
    func upgradesFromV1() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        try store.add("old.mp3")
        // Make it look like the first schema: drop the claim columns' migration record and
        // rebuild the table without them, as a v1 demucsd left it.
        try store.database.write { db in
            try db.execute(sql: """
                DELETE FROM grdb_migrations WHERE identifier = 'v2-claims';
                ALTER TABLE job DROP COLUMN claimSequence; ALTER TABLE job DROP COLUMN holder;
                ALTER TABLE job DROP COLUMN worker; ALTER TABLE job DROP COLUMN recipe;
                ALTER TABLE job DROP COLUMN superseded;
                """)
        }
        try store.close()
        let upgraded = try JobStore(path: temp.databasePath)
        #expect(try upgraded.appliedSchemaVersions() == ["v1", "v2-claims"])
        let job = try #require(try upgraded.claimNext())
        #expect(job.inputName == "old.mp3" && job.claimSequence == 1 && job.holder == testWorker)
    }

    @Test("WAL mode is on and connections keep the WAL files on close")
    func walAndPersist() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        #expect(try store.journalMode() == "wal")
        #expect(try store.keepsWALFilesOnClose())
        // The writer connection too, not only pool readers.
        let writerPersists = try store.database.write { db in PersistentWAL.isEnabled(on: db) }
        #expect(writerPersists)
    }

    @Test("a new database file is created with mode 0640")
    func fileMode() throws {
        let temp = try TempFolder()
        _ = try JobStore(path: temp.databasePath)
        let attributes = try FileManager.default.attributesOfItem(atPath: temp.databasePath)
        let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o640)
    }

    @Test("reopening an existing database keeps its jobs and does not re-run migrations")
    func reopen() throws {
        let temp = try TempFolder()
        var first: JobStore? = try JobStore(path: temp.databasePath)
        let job = try #require(try first?.add("song.mp3"))
        first = nil

        let second = try JobStore(path: temp.databasePath)
        #expect(try second.job(id: job.id) == job)
        #expect(try second.appliedSchemaVersions() == ["v1", "v2-claims"])
        let migrationRows = try second.database.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM grdb_migrations")
        }
        #expect(migrationRows == 2)
    }

    @Test("a read-only open of a missing database says where it looked and what to check")
    func missingDatabaseReadOnly() throws {
        let temp = try TempFolder()
        let path = temp.url.appendingPathComponent("nope/jobs.sqlite").path
        let error = try #require(throws: JobStoreError.self) { try JobStore.openReadOnly(path: path) }
        #expect(error.kind == .missingDatabase)
        #expect(error.description == "no database at \(path): is demucsd running with --data DIR?")
        // And nothing was created on the way.
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(throws: JobStoreError.self) { try JobStore.openReadWrite(path: path) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("read-only and read-write opens refuse a database without the schema")
    func emptyFileIsNotADatabaseYet() throws {
        let temp = try TempFolder()
        let path = temp.url.appendingPathComponent("empty.sqlite").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        let error = try #require(throws: JobStoreError.self) { try JobStore.openReadOnly(path: path) }
        #expect(error.kind == .incompatibleSchema)
        #expect(error.description.contains("start demucsd"))
        #expect(throws: JobStoreError.self) { try JobStore.openReadWrite(path: path) }
    }

    @Test("a file that is not SQLite gives an error naming the file")
    func garbageFile() throws {
        let temp = try TempFolder()
        let path = temp.url.appendingPathComponent("garbage.sqlite").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(repeating: 0x41, count: 4096)))
        let error = try #require(throws: JobStoreError.self) { try JobStore(path: path) }
        #expect(error.description.contains(path))
    }

    @Test("a schema upgraded by a newer demucsd: writers refuse it, readers still read")
    func newerSchema() throws {
        let temp = try TempFolder()
        var writer: JobStore? = try JobStore(path: temp.databasePath)
        try writer?.add("song.mp3")
        try writer?.database.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-future')")
            try db.execute(sql: "ALTER TABLE job ADD COLUMN futureColumn TEXT")
        }
        writer = nil

        let error = try #require(throws: JobStoreError.self) { try JobStore(path: temp.databasePath) }
        #expect(error.kind == .incompatibleSchema)
        #expect(error.description.contains("v99-future"))
        #expect(throws: JobStoreError.self) { try JobStore.openReadWrite(path: temp.databasePath) }

        let reader = try JobStore.openReadOnly(path: temp.databasePath)
        #expect(try reader.jobs().map(\.inputName) == ["song.mp3"])
        #expect(try reader.appliedSchemaVersions() == ["v1", "v2-claims", "v99-future"])
    }

    @Test("the read-write open for demucsctl works on the daemon's database")
    func readWriteOpen() throws {
        let temp = try TempFolder()
        let daemon = try JobStore(path: temp.databasePath)
        let job = try #require(try daemon.add("song.mp3"))
        let cli = try JobStore.openReadWrite(path: temp.databasePath)
        #expect(!cli.isReadOnly)
        #expect(try cli.cancel(id: job.id))
        #expect(try daemon.job(id: job.id)?.state == .cancelled)
        #expect(try cli.keepsWALFilesOnClose())
    }

    @Test("errors from SQLite carry the operation, the SQL and the reason")
    func errorDescription() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let error = try #require(throws: JobStoreError.self) {
            try store.write("break the rules") { db in
                try db.execute(sql: "INSERT INTO job (inputName) VALUES ('x')")
            }
        }
        #expect(error.operation == "break the rules")
        #expect(error.sql == "INSERT INTO job (inputName) VALUES ('x')")
        #expect(error.reason.contains("NOT NULL"))
        #expect(error.description.hasPrefix("cannot break the rules (\(temp.databasePath)): "))
        #expect(error.description.contains("[SQL: INSERT INTO job"))
    }
}
