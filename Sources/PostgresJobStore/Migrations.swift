import Logging
import PostgresNIO

/// The PostgreSQL schema as numbered SQL migrations, applied in order, each once, recorded in
/// `schema_migrations`. Every host runs ``PostgresJobStore/migrate()`` at start-up; the whole
/// run holds a transaction-scoped advisory lock, so hosts starting together apply each
/// migration once and the others wait, then find them applied.
///
/// Column names are snake_case (PostgreSQL folds unquoted names to lower case); times are
/// `timestamptz` in the database's clock, which is the one clock every host shares: leases are
/// compared with `now()` of the server, never with a host's own time.
enum Migrations {
    /// The advisory lock key of the migration run ("demucsd" in ASCII, as a number).
    static let lockKey: Int64 = 0x64656d75637364

    /// Each migration's statements, one per string (the extended query protocol takes one
    /// statement at a time).
    static let all: [(version: Int, statements: [String])] = [
        (1, [
            """
            CREATE TABLE job (
                id             bigserial PRIMARY KEY,
                input_name     text             NOT NULL CHECK (input_name <> ''),
                input_size     bigint           NOT NULL,
                input_modified double precision NOT NULL,
                content_hash   text             NOT NULL,
                state          text             NOT NULL
                               CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
                attempts       integer          NOT NULL DEFAULT 0 CHECK (attempts >= 0),
                error          text,
                progress       double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
                model          text             NOT NULL,
                output_name    text,
                outputs        jsonb            NOT NULL DEFAULT '[]',
                audio_seconds  double precision,
                created_at     timestamptz      NOT NULL DEFAULT now(),
                queued_at      timestamptz      NOT NULL DEFAULT now(),
                started_at     timestamptz,
                finished_at    timestamptz,
                reused_from    bigint REFERENCES job (id) ON DELETE SET NULL,
                -- Claim tokens, as in the SQLite store: claim_sequence counts every claim and is
                -- never reset; holder is the worker holding the current claim (NULL: nobody).
                claim_sequence bigint           NOT NULL DEFAULT 0,
                holder         text,
                worker         text,
                recipe         text,
                superseded     boolean          NOT NULL DEFAULT false,
                -- The end of the holder's lease (database time); renewed while it separates.
                lease_until    timestamptz,
                CHECK (state <> 'running' OR lease_until IS NOT NULL)
            )
            """,
            // claimNext: the oldest queued job nobody holds.
            "CREATE INDEX job_queue ON job (queued_at, id) WHERE state = 'queued' AND holder IS NULL",
            // rescue: running jobs whose lease ran out.
            "CREATE INDEX job_lease ON job (lease_until) WHERE state = 'running'",
            "CREATE INDEX job_content_hash ON job (content_hash, state)",
            "CREATE INDEX job_input_name ON job (input_name)",
        ]),
        (2, [
            // The daemons sharing the queue (see PostgresJobStore+Workers.swift).
            """
            CREATE TABLE worker_node (
                node       text        PRIMARY KEY CHECK (node <> ''),
                pid        bigint      NOT NULL,
                version    text        NOT NULL,
                model      text        NOT NULL,
                started_at timestamptz NOT NULL,
                heartbeat  timestamptz NOT NULL,
                status     text        NOT NULL,
                problem    text
            )
            """,
            "CREATE INDEX job_output_name ON job (output_name)",
        ]),
    ]

    /// Applies what is missing; returns the versions it applied (empty when another host had).
    static func apply(on connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var applied = Set<Int>()
            for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger)
                .decode(Int.self) {
                applied.insert(version)
            }
            var done: [Int] = []
            for (version, statements) in all where !applied.contains(version) {
                for sql in statements { try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) }
                try await connection.query("INSERT INTO schema_migrations (version) VALUES (\(version))", logger: logger)
                done.append(version)
            }
            return done
        }
    }
}
