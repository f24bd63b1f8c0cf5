import Crypto
import Foundation
import ModelStore

/// Paths of the committed test models (`Tests/Fixtures/models`: small real models the engine loads).
enum Fixtures {
    static let models: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent("models").path
    }()

    static func data(_ file: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: models + "/" + file))
    }
}

/// A fresh empty folder under the system temporary folder, removed by `remove()`.
struct TemporaryFolder {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("ModelStoreTests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// The names in `folder` (default: this folder), sorted.
    func contents(_ folder: String? = nil) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder ?? path)) ?? []).sorted()
    }
}

/// Collects progress reports, which arrive on URLSession's thread.
final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [DownloadProgress] = []

    func record(_ progress: DownloadProgress) {
        lock.withLock { reports.append(progress) }
    }

    func reports(for file: String) -> [DownloadProgress] {
        lock.withLock { reports.filter { $0.file == file } }
    }

    /// The files reported on, in the order their first report arrived.
    var files: [String] {
        lock.withLock {
            var seen: [String] = []
            for report in reports where !seen.contains(report.file) { seen.append(report.file) }
            return seen
        }
    }
}

/// sha256 of bytes in memory, as lowercase hex: an independent check of the streaming hasher.
func sha256Hex(_ data: Data) -> String {
    SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
}
