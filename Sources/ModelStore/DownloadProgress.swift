/// How far the download of one file has got, reported to the caller's progress callback.
///
/// Reported per file rather than per model because a model's total size is not known until every
/// file's response has arrived; the CLI draws one bar per file. For each file the callback sees a
/// first report with `bytesDone == 0` when the response headers arrive, then reports with strictly
/// increasing `bytesDone` (at most one per `HubClient.progressInterval`), and finally one with
/// `isComplete == true` once the file is in place under its final name.
public struct DownloadProgress: Sendable, Equatable {
    /// The file being downloaded (`htdemucs.yaml`, `955717e8.safetensors`).
    public var file: String
    /// Bytes received so far.
    public var bytesDone: Int64
    /// The file's size from `Content-Length`, or nil when the server did not say.
    public var bytesTotal: Int64?
    /// Whether the file is fully downloaded and renamed into place.
    public var isComplete: Bool

    public init(file: String, bytesDone: Int64, bytesTotal: Int64?, isComplete: Bool) {
        self.file = file
        self.bytesDone = bytesDone
        self.bytesTotal = bytesTotal
        self.isComplete = isComplete
    }

    /// Fraction done in 0...1, or nil when the total is unknown.
    public var fraction: Double? {
        guard let total = bytesTotal, total > 0 else { return isComplete ? 1 : nil }
        return min(1, Double(bytesDone) / Double(total))
    }
}
