internal import GRDB

/// Which folder under `output/demucs/` a job writes into.
///
/// The folder name derives from the input name without extension, so `song.mp3` and
/// `song.flac` both want `song`. They must never share a folder (one would overwrite the
/// other's stems), so a name belongs to the first input name that got it, and later input names
/// get `song (2)`, `song (3)`, ... (Finder/Explorer style, obvious to users).
///
/// A name is held by every job row that carries it, whatever its state: stems of a failed or
/// cancelled job may still be on disk, and a retry must find its folder again. Folders that exist
/// on disk without any job (made by hand) are not known here; the caller may check the
/// filesystem and pass a different `preferred`.
extension JobStore {
    /// Returns the output folder name for a job, choosing and recording it on first call.
    ///
    /// Rules, in order, all inside one write transaction (so two workers cannot pick the same
    /// free name):
    /// 1. The job already has a name (a retried or re-queued job): keep it.
    /// 2. An earlier job for the same `inputName` has a name (the user replaced the file): reuse
    ///    it, overwriting its own earlier stems, which is what replacing a file means.
    /// 3. Otherwise `preferred`, unless a job for a *different* input name holds it; then the
    ///    first free of `preferred (2)`, `preferred (3)`, ...
    ///
    /// In rules 2 and 3 a name is also passed over when `existsOnDisk` says a folder of that
    /// name exists that no done job of this input published (made by hand, or left by a job
    /// the database forgot): a folder the daemon did not create is never replaced.
    ///
    /// - Parameters:
    ///   - preferred: the folder name derived from the input name. Must be a single path
    ///     component: not empty, not `.`/`..`, no `/` and no NUL.
    ///   - existsOnDisk: whether `output/demucs/<name>` exists.
    /// - Throws: ``JobStoreError/Kind/jobNotFound`` for an unknown job,
    ///   ``JobStoreError/Kind/invalidArgument`` for an unusable `preferred`.
    public func allocateOutputName(for id: Int64, preferred: String,
                                   existsOnDisk: (String) -> Bool = { _ in false }) throws -> String {
        let operation = "allocate output folder name for job \(id)"
        try validateFolderName(preferred, operation: operation)
        return try write(operation) { db in
            guard let job = try Job.fetchOne(db, id: id) else {
                throw JobStoreError(.jobNotFound, operation: operation, path: path, reason: "no job with id \(id)")
            }
            if let existing = job.outputName { return existing }

            func heldByOtherInput(_ name: String) throws -> Bool {
                if try Bool.fetchOne(db, sql: """
                    SELECT EXISTS (SELECT 1 FROM job WHERE outputName = ? AND inputName <> ?)
                    """, arguments: [name, job.inputName]) ?? false { return true }
                return try existsOnDisk(name) && !publishedFolder(db, name: name, inputName: job.inputName)
            }

            var chosen: String?
            if let previous = try String.fetchOne(db, sql: """
                SELECT outputName FROM job
                WHERE inputName = ? AND outputName IS NOT NULL AND id <> ?
                ORDER BY id DESC LIMIT 1
                """, arguments: [job.inputName, id]),
               try !heldByOtherInput(previous) {
                chosen = previous
            }
            if chosen == nil {
                var candidate = preferred
                var suffix = 2
                // Terminates: each taken candidate is a distinct existing row value.
                while try heldByOtherInput(candidate) {
                    candidate = "\(preferred) (\(suffix))"
                    suffix += 1
                }
                chosen = candidate
            }
            let name = chosen!
            try db.execute(sql: "UPDATE job SET outputName = ? WHERE id = ?", arguments: [name, id])
            return name
        }
    }

    /// Whether a done job for `inputName` published the folder `name`: the daemon made it, so a
    /// later job of the same input may replace it.
    private func publishedFolder(_ db: Database, name: String, inputName: String) throws -> Bool {
        try Bool.fetchOne(db, sql: """
            SELECT EXISTS (SELECT 1 FROM job WHERE outputName = ? AND inputName = ? AND state = 'done')
            """, arguments: [name, inputName]) ?? false
    }

    /// Sets a job's output folder name as given, without the uniqueness rules of
    /// ``allocateOutputName(for:preferred:)``. For callers that chose the name themselves (e.g. a
    /// migration of existing folders); prefer `allocateOutputName`.
    ///
    /// - Throws: ``JobStoreError/Kind/jobNotFound`` for an unknown job,
    ///   ``JobStoreError/Kind/invalidArgument`` for an unusable name.
    public func setOutputName(id: Int64, name: String) throws {
        let operation = "set output folder name of job \(id)"
        try validateFolderName(name, operation: operation)
        _ = try write(operation) { db in
            try db.execute(sql: "UPDATE job SET outputName = ? WHERE id = ?", arguments: [name, id])
            return try changedOrMissing(db, id: id, operation: operation)
        }
    }

    /// A folder name becomes a path component under `output/demucs/`: refuse anything that
    /// would escape it or be no folder at all.
    private func validateFolderName(_ name: String, operation: String) throws(JobStoreError) {
        if name.isEmpty || name == "." || name == ".." || name.contains("/") || name.contains("\0") {
            throw JobStoreError(
                .invalidArgument, operation: operation, path: path,
                reason: "'\(name)' is not a usable folder name (empty, '.', '..', or contains '/' or NUL)")
        }
    }
}
