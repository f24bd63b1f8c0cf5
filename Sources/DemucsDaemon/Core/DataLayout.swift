import Foundation

/// The folders of a data directory. Users look only at `input/` and `output/demucs/`; everything
/// that may be half-done lives under `state/`, on the same filesystem so that a finished folder
/// is renamed into `output/` in one step.
///
/// ```
/// data/input/              drop songs here
/// data/output/demucs/NAME/ stems appear here, complete
/// data/done/, data/failed/ inputs moved aside (when configured)
/// data/state/jobs.sqlite   the job database (read by demucsctl)
/// data/state/staging/      outputs being written
/// ```
public struct DataLayout: Sendable {
    public let root: String

    public init(root: String) {
        self.root = URL(fileURLWithPath: root).standardizedFileURL.path
    }

    public var input: String { root + "/input" }
    public var output: String { root + "/output/demucs" }
    public var done: String { root + "/done" }
    public var failed: String { root + "/failed" }
    public var state: String { root + "/state" }
    public var database: String { state + "/jobs.sqlite" }
    public var staging: String { state + "/staging" }

    /// Creates the folders that are missing.
    public func create() throws {
        for folder in [input, output, state, staging] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
    }
}
