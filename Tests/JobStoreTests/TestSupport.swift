import Foundation
import Testing
@testable import JobStore

/// A fresh folder per test, removed when the value goes away, so tests never share a database.
final class TempFolder: @unchecked Sendable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("JobStoreTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// Path of the database inside a not-yet-existing subfolder, to exercise folder creation.
    var databasePath: String { url.appendingPathComponent("data/state/jobs.sqlite").path }
}

/// A manual clock: every reading returns the current value and then advances it by one second,
/// so timestamps are distinct and ordered without sleeping; `set` jumps to a given time.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Double

    init(start: Double = 1_000) { value = start }

    func set(_ time: Double) { lock.withLock { value = time } }

    var peek: Double { lock.withLock { value } }

    var function: @Sendable () -> Double {
        { [self] in
            lock.withLock {
                defer { value += 1 }
                return value
            }
        }
    }
}

/// Thread-safe accumulator for the concurrency test.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func mutate(_ body: (inout Value) -> Void) { lock.withLock { body(&value) } }
    var current: Value { lock.withLock { value } }
}

/// A plausible SHA-256 hex string derived from a seed.
func hash(_ seed: String) -> String {
    var h: UInt64 = 1469598103934665603
    for byte in seed.utf8 { h = (h ^ UInt64(byte)) &* 1099511628211 }
    return String(repeating: String(h, radix: 16, uppercase: false).leftPadded(to: 16), count: 4)
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

extension JobStore {
    /// Enqueue with defaults that don't matter to most tests.
    @discardableResult
    func add(_ name: String, content: String? = nil, model: String = "htdemucs", size: Int64 = 1234) throws -> Job? {
        try enqueue(inputName: name, size: size, modified: 1_700_000_000.5,
                    contentHash: hash(content ?? name), model: model)
    }
}

/// The worker identity of the tests that are not about claims.
let testWorker = "test-host:1/worker-0"

extension JobStore {
    /// Claims as ``testWorker``.
    func claimNext() throws -> Job? { try claimNext(worker: testWorker) }

    /// The job's current claim, as its worker holds it (for tests that are not about claims).
    func currentClaim(_ id: Int64) throws -> Claim {
        try #require(try job(id: id)?.claim, "job \(id) is not claimed")
    }

    /// Finishes a job as the worker that holds it; `false` when nobody holds it.
    @discardableResult
    func finish(id: Int64, outputs: [String], audioSeconds: Double?, reusedFrom: Int64? = nil,
                recipe: String? = "recipe") throws -> Bool {
        guard let claim = try job(id: id)?.claim else { return false }
        return try finish(claim, result: JobResult(outputs: outputs, audioSeconds: audioSeconds,
                                                   reusedFrom: reusedFrom, recipe: recipe))
    }

    /// Fails a job as the worker that holds it; its state, or nil when nobody holds it.
    @discardableResult
    func fail(id: Int64, error: String, retries: Int) throws -> JobState? {
        guard let claim = try job(id: id)?.claim else { return nil }
        return try fail(claim, error: error, retries: retries)
    }

    func updateProgress(id: Int64, progress: Double) throws {
        try updateProgress(try currentClaim(id), progress: progress)
    }
}
