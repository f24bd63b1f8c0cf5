internal import GRDB

/// Finding earlier results for identical content, so a copy of a song under another name is not
/// separated again — and never handing out stems that are not that content's.
extension JobStore {
    /// Done jobs whose stems may be reused for content `contentHash` separated by `model` with
    /// `recipe`, most recently finished first.
    ///
    /// A candidate must match on all three: the hash is the one recorded from the bytes the
    /// job decoded, the model the one it actually ran, the recipe its stems, formats and
    /// separation settings. Jobs whose folder a later job published over (``Job/superseded``),
    /// jobs that wrote no files and jobs without a recorded recipe (finished by an older
    /// demucsd, whose model label may be wrong) are never offered. Reuses count as candidates:
    /// their files are links to the same stems in their own folder. Whether the files still
    /// exist is for the caller to check; try the candidates in order.
    public func reusableJobs(withHash contentHash: String, model: String, recipe: String, limit: Int = 10) throws -> [Job] {
        try read("find done jobs with hash \(contentHash)") { db in
            try Job.fetchAll(db, sql: """
                \(Job.select)
                WHERE contentHash = ? AND model = ? AND recipe = ? AND state = 'done'
                  AND superseded = 0 AND outputs <> '[]'
                ORDER BY finishedAt DESC, id DESC LIMIT ?
                """, arguments: [contentHash, model, recipe, max(limit, 0)])
        }
    }
}
