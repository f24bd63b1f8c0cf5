internal import GRDB

/// The database schema and its migrations.
///
/// Migrations go through GRDB's `DatabaseMigrator`, which records each applied migration
/// identifier in its `grdb_migrations` table: that table *is* the recorded schema version, and
/// lets a reader tell "older than me" from "newer than me". Migrations must stay additive
/// (new tables, new nullable columns) so an older `demucsctl` can still read a newer database
/// for status; see ``JobStore/openReadOnly(path:)``.
///
/// Column names are camelCase like the Swift properties of ``Job`` so the SQL in this module and
/// what an operator sees in `sqlite3 jobs.sqlite` read the same.
enum JobStoreSchema {
    /// Identifiers of all migrations, oldest first. The last one is the current schema version.
    static let versions = ["v1", "v2-claims"]

    /// The current schema version, i.e. the last migration identifier.
    static var current: String { versions[versions.count - 1] }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            // AUTOINCREMENT: ids are never reused, even after old rows are pruned, so a job id
            // printed by `demucsctl jobs` keeps meaning the same job.
            // CHECKs make a hand-edited or buggy write fail loudly instead of leaving a row that
            // no state-machine query would ever pick up.
            // `outputs` is JSON text (an array of relative paths): readable in the sqlite3 shell
            // and extensible without a child table for what is only ever read as a whole.
            try db.execute(sql: """
                CREATE TABLE job (
                    id            INTEGER PRIMARY KEY AUTOINCREMENT,
                    inputName     TEXT    NOT NULL CHECK (inputName <> ''),
                    inputSize     INTEGER NOT NULL,
                    inputModified REAL    NOT NULL,
                    contentHash   TEXT    NOT NULL,
                    state         TEXT    NOT NULL
                                  CHECK (state IN ('queued','running','done','failed','cancelled')),
                    attempts      INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
                    error         TEXT,
                    progress      REAL    NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
                    model         TEXT    NOT NULL,
                    outputName    TEXT,
                    outputs       TEXT    NOT NULL DEFAULT '[]',
                    audioSeconds  REAL,
                    createdAt     REAL    NOT NULL,
                    queuedAt      REAL    NOT NULL,
                    startedAt     REAL,
                    finishedAt    REAL,
                    reusedFrom    INTEGER REFERENCES job(id) ON DELETE SET NULL
                );
                -- claimNext: oldest queued job; counts(); running().
                CREATE INDEX job_state ON job(state, queuedAt, id);
                -- reuse of stems by content hash and the enqueue duplicate check.
                CREATE INDEX job_contentHash ON job(contentHash, state);
                -- enqueue duplicate check and output-name reuse by input name.
                CREATE INDEX job_inputName ON job(inputName);
                -- allocateOutputName: "is this folder name taken?".
                CREATE INDEX job_outputName ON job(outputName) WHERE outputName IS NOT NULL;

                -- One row at most (id = 1): the daemon describing itself for `demucsctl status`.
                CREATE TABLE daemon (
                    id        INTEGER PRIMARY KEY CHECK (id = 1),
                    pid       INTEGER NOT NULL,
                    startedAt REAL    NOT NULL,
                    version   TEXT    NOT NULL,
                    model     TEXT    NOT NULL,
                    heartbeat REAL    NOT NULL,
                    status    TEXT    NOT NULL,
                    problem   TEXT
                );
                """)
        }
        migrator.registerMigration("v2-claims") { db in
            // Claim tokens (see Claim): claimSequence counts every claim and is never reset;
            // holder is the worker holding the current claim (NULL: nobody), worker the one that
            // ran the latest attempt. recipe and superseded make dedup exact: stems are reused
            // only from a job whose folder is still its own and whose settings were the same.
            try db.execute(sql: """
                ALTER TABLE job ADD COLUMN claimSequence INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE job ADD COLUMN holder TEXT;
                ALTER TABLE job ADD COLUMN worker TEXT;
                ALTER TABLE job ADD COLUMN recipe TEXT;
                ALTER TABLE job ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0;
                """)
        }
        return migrator
    }

    /// How the schema found in a database compares to what this build knows.
    enum Compatibility: Equatable {
        /// All known migrations applied, nothing unknown.
        case current
        /// No schema at all (empty file) or only part of the known migrations.
        case older(applied: [String])
        /// Migrations this build does not know were applied by a newer demucsd.
        case newer(unknown: [String])
    }

    static func compatibility(_ db: Database) throws -> Compatibility {
        let migrator = self.migrator
        let applied = try migrator.appliedIdentifiers(db)
        let unknown = applied.subtracting(versions)
        if !unknown.isEmpty { return .newer(unknown: unknown.sorted()) }
        if try !migrator.hasCompletedMigrations(db) {
            return .older(applied: try migrator.appliedMigrations(db))
        }
        return .current
    }
}
