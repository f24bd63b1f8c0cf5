import CheckpointImport
import DemucsEngine
import Foundation
import ModelStore

/// Resolves `-n NAME [--repo DIR]` to a loaded model (a demucs bag or a RoFormer): from the
/// folder given with `--repo`, or from the model cache, downloading the model into the cache
/// when it is missing.
enum ModelLocator {
    /// The model cache folder (see `ModelCache` for the order of the environment variables).
    static func defaultCacheFolder() -> String { ModelCache().root }

    static func load(name: String, repo: String?, verbose: Bool) throws -> TrackModel {
        if let repo {
            return try ModelRepository(root: repo).loadModel(name)
        }
        let installed = try ensureInstalled(name: name)
        return try installed.repository.loadModel(installed.name)
    }

    /// `load` for a command: a model that cannot be loaded is reported and exits with status 2.
    static func loadForCommand(name: String, repo: String?, verbose: Bool) throws -> TrackModel {
        do {
            return try load(name: name, repo: repo, verbose: verbose)
        } catch {
            printError("\(error)")
            throw Exit.modelFailed
        }
    }

    /// Runs the (async) download synchronously, drawing a progress line per file.
    static func ensureInstalled(name: String) throws -> InstalledModel {
        let box = ResultBox<InstalledModel>()
        let displays = DisplayTable()
        let semaphore = DispatchSemaphore(value: 0)
        Task {
            do {
                let installed = try await ModelDownloader().ensure(name: name) { p in
                    let display = displays.display(for: p.file)
                    if let fraction = p.fraction { display.update(fraction) }
                    if p.isComplete { display.finish() }
                }
                box.set(.success(installed))
            } catch {
                box.set(.failure(error))
            }
            semaphore.signal()
        }
        semaphore.wait()
        return try box.get()
    }

    /// One progress display per downloaded file.
    final class DisplayTable: @unchecked Sendable {
        private let lock = NSLock()
        private var displays: [String: ProgressDisplay] = [:]
        func display(for file: String) -> ProgressDisplay {
            lock.lock(); defer { lock.unlock() }
            if let d = displays[file] { return d }
            let d = ProgressDisplay(label: "downloading \(file)")
            displays[file] = d
            return d
        }
    }

    final class ResultBox<T: Sendable>: @unchecked Sendable {
        private let lock = NSLock()
        private var result: Result<T, Error>?
        func set(_ r: Result<T, Error>) { lock.lock(); result = r; lock.unlock() }
        func get() throws -> T { lock.lock(); defer { lock.unlock() }; return try result!.get() }
    }
}
