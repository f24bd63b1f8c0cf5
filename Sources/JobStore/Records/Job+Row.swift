import Foundation
internal import GRDB

/// Decoding and encoding of `job` rows.
///
/// Done by hand instead of conforming ``Job`` to GRDB's record protocols so that GRDB stays an
/// implementation detail (not part of JobStore's public API) and so a bad value (unknown state,
/// broken JSON) becomes a ``JobStoreError`` naming the row instead of a trap.
extension Job {
    /// The column list every job query selects, in one place so queries cannot drift.
    static let columns = """
        id, inputName, inputSize, inputModified, contentHash, state, attempts, error, progress, \
        model, outputName, outputs, audioSeconds, createdAt, queuedAt, startedAt, finishedAt, reusedFrom, \
        claimSequence, holder, worker, recipe, superseded
        """

    /// `SELECT <columns> FROM job` — append WHERE/ORDER BY.
    static let select = "SELECT \(columns) FROM job"

    init(row: Row) throws {
        let id = try row.decode(Int64.self, forColumn: "id")
        let stateText = try row.decode(String.self, forColumn: "state")
        guard let state = JobState(rawValue: stateText) else {
            throw JobStoreError(
                .corruptRow, operation: "decode job \(id)", path: "",
                reason: "unknown state '\(stateText)'")
        }
        let outputsText = try row.decode(String.self, forColumn: "outputs")
        self.init(
            id: id,
            inputName: try row.decode(forColumn: "inputName"),
            inputSize: try row.decode(forColumn: "inputSize"),
            inputModified: try row.decode(forColumn: "inputModified"),
            contentHash: try row.decode(forColumn: "contentHash"),
            state: state,
            attempts: try row.decode(forColumn: "attempts"),
            error: try row.decode(forColumn: "error"),
            progress: try row.decode(forColumn: "progress"),
            model: try row.decode(forColumn: "model"),
            outputName: try row.decode(forColumn: "outputName"),
            outputs: try Self.decodeOutputs(outputsText, jobID: id),
            audioSeconds: try row.decode(forColumn: "audioSeconds"),
            createdAt: try row.decode(forColumn: "createdAt"),
            queuedAt: try row.decode(Double.self, forColumn: "queuedAt"),
            startedAt: try row.decode(forColumn: "startedAt"),
            finishedAt: try row.decode(forColumn: "finishedAt"),
            reusedFrom: try row.decode(forColumn: "reusedFrom"),
            claimSequence: try row.decode(forColumn: "claimSequence"),
            holder: try row.decode(forColumn: "holder"),
            worker: try row.decode(forColumn: "worker"),
            recipe: try row.decode(forColumn: "recipe"),
            superseded: try row.decode(Int.self, forColumn: "superseded") != 0)
    }

    /// Fetches jobs with `sql` (which must select ``columns``).
    static func fetchAll(_ db: Database, sql: String, arguments: StatementArguments = []) throws -> [Job] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map(Job.init(row:))
    }

    static func fetchOne(_ db: Database, sql: String, arguments: StatementArguments = []) throws -> Job? {
        try Row.fetchOne(db, sql: sql, arguments: arguments).map(Job.init(row:))
    }

    static func fetchOne(_ db: Database, id: Int64) throws -> Job? {
        try fetchOne(db, sql: "\(select) WHERE id = ?", arguments: [id])
    }

    /// JSON text for the `outputs` column. Slashes are not escaped so the paths read naturally
    /// in the sqlite3 shell.
    static func encodeOutputs(_ outputs: [String]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return String(decoding: try encoder.encode(outputs), as: UTF8.self)
    }

    static func decodeOutputs(_ text: String, jobID: Int64) throws -> [String] {
        do {
            return try JSONDecoder().decode([String].self, from: Data(text.utf8))
        } catch {
            throw JobStoreError(
                .corruptRow, operation: "decode job \(jobID)", path: "",
                reason: "outputs is not a JSON array of strings: \(text)")
        }
    }
}
