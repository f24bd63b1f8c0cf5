internal import GRDB

/// Finding earlier results for identical content, so a copy of a song under another name is not
/// separated again.
extension JobStore {
    /// Done jobs with this content hash and model, most recently finished first.
    ///
    /// The model must match: stems of the same song from another model are different stems.
    /// Jobs that wrote no files are skipped (nothing to reuse). Jobs that were themselves reuses
    /// are included: the worker copies stems into each job's own folder, so their files are as
    /// good as the original's, and the newest ones are the likeliest to still exist. Whether the
    /// files still exist on disk is for the caller to check; try the candidates in order.
    public func doneJobs(withHash contentHash: String, model: String, limit: Int = 10) throws -> [Job] {
        try read("find done jobs with hash \(contentHash)") { db in
            try Job.fetchAll(db, sql: """
                \(Job.select)
                WHERE contentHash = ? AND model = ? AND state = 'done' AND outputs <> '[]'
                ORDER BY finishedAt DESC, id DESC LIMIT ?
                """, arguments: [contentHash, model, max(limit, 0)])
        }
    }

    /// The most recently finished candidate of ``doneJobs(withHash:model:limit:)``, or `nil`.
    public func doneJob(withHash contentHash: String, model: String) throws -> Job? {
        try doneJobs(withHash: contentHash, model: model, limit: 1).first
    }
}
