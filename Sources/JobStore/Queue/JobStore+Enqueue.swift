internal import GRDB

extension JobStore {
    /// Records a new queued job for an input file, unless that exact file is already known.
    ///
    /// "Already known" means a job with the same `inputName` **and** the same `contentHash` in
    /// state queued, running or done: the watcher can report the same file many times (create,
    /// several writes, close, a rescan at start-up) and must not queue it twice. Then it returns
    /// `nil`.
    ///
    /// Same name, different hash, and a job for that name is still queued and not held by a
    /// worker: the user replaced the file before it ran. That job takes the new hash, size and
    /// modification time (and is returned), so the file is separated once, as it now is.
    ///
    /// Otherwise a new job is created:
    /// - same name, different hash: the user replaced the file; the new content deserves its own
    ///   separation (and will overwrite the old stems, see ``allocateOutputName(for:preferred:)``);
    /// - different name, same hash: a copy under another name gets its own job and folder; the
    ///   worker can reuse the stems of ``reusableJobs(withHash:model:recipe:limit:)`` instead of
    ///   separating again;
    /// - same name and hash but the earlier job(s) failed or were cancelled: a new job. Note that
    ///   a watcher rescanning the input folder at start-up will thus re-queue files that failed
    ///   before; if that is not wanted, check ``latestJob(inputName:)`` first.
    ///
    /// The check and the insert run in one write transaction, so two processes enqueueing the
    /// same file concurrently create one job.
    ///
    /// - Parameters:
    ///   - inputName: file name inside the input folder (not empty).
    ///   - size: size in bytes.
    ///   - modified: mtime, seconds since epoch.
    ///   - contentHash: SHA-256, lowercase hex; compared exactly.
    ///   - model: model to separate with.
    /// - Returns: the new (or updated queued) job, or `nil` when the file is already known.
    @discardableResult
    public func enqueue(
        inputName: String, size: Int64, modified: Double, contentHash: String, model: String
    ) throws -> Job? {
        let operation = "enqueue \(inputName)"
        guard !inputName.isEmpty else {
            throw JobStoreError(.invalidArgument, operation: operation, path: path, reason: "empty input name")
        }
        guard !contentHash.isEmpty else {
            throw JobStoreError(.invalidArgument, operation: operation, path: path, reason: "empty content hash")
        }
        let time = now()
        return try write(operation) { db in
            let blocking = JobState.blocksEnqueue.map { "'\($0.rawValue)'" }.joined(separator: ",")
            let known = try Bool.fetchOne(db, sql: """
                SELECT EXISTS (SELECT 1 FROM job
                               WHERE inputName = ? AND contentHash = ? AND state IN (\(blocking)))
                """, arguments: [inputName, contentHash]) ?? false
            if known { return nil }
            if let waiting = try Int64.fetchOne(db, sql: """
                SELECT id FROM job WHERE inputName = ? AND state = 'queued' AND holder IS NULL
                ORDER BY id DESC LIMIT 1
                """, arguments: [inputName]) {
                try db.execute(sql: """
                    UPDATE job SET contentHash = ?, inputSize = ?, inputModified = ? WHERE id = ?
                    """, arguments: [contentHash, size, modified, waiting])
                return try Job.fetchOne(db, id: waiting)
            }
            try db.execute(sql: """
                INSERT INTO job (inputName, inputSize, inputModified, contentHash, state, model,
                                 createdAt, queuedAt)
                VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)
                """, arguments: [inputName, size, modified, contentHash, model, time, time])
            return try Job.fetchOne(db, id: db.lastInsertedRowID)
        }
    }
}

extension JobStore {
    /// Records an input that cannot become a job (a folder named like audio, a symbolic link,
    /// an unreadable, empty or oversized file) as a failed job with the reason, so that it shows
    /// up in `demucsctl status` and `jobs` like any other failure.
    ///
    /// Returns nil when the latest job for this name already is this very failure (same size,
    /// modification time and reason): a rescan does not record it twice.
    @discardableResult
    public func recordRejected(inputName: String, size: Int64, modified: Double, reason: String, model: String) throws -> Job? {
        let operation = "record rejected input \(inputName)"
        guard !inputName.isEmpty else {
            throw JobStoreError(.invalidArgument, operation: operation, path: path, reason: "empty input name")
        }
        let time = now()
        return try write(operation) { db in
            if let latest = try Job.fetchOne(db, sql: "SELECT * FROM job WHERE inputName = ? ORDER BY id DESC LIMIT 1",
                                             arguments: [inputName]),
               latest.state == .failed, latest.inputSize == size, latest.inputModified == modified, latest.error == reason {
                return nil
            }
            try db.execute(sql: """
                INSERT INTO job (inputName, inputSize, inputModified, contentHash, state, error, model,
                                 createdAt, queuedAt, finishedAt)
                VALUES (?, ?, ?, '', 'failed', ?, ?, ?, ?, ?)
                """, arguments: [inputName, size, modified, reason, model, time, time, time])
            return try Job.fetchOne(db, id: db.lastInsertedRowID)
        }
    }
}
