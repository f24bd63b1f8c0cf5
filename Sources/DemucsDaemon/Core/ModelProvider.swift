import CheckpointImport
import DemucsEngine
import Foundation
import Logging
import ModelStore

/// Holds the loaded model for the workers. When the model cannot be loaded (not installed and no
/// network, a broken file), the daemon keeps running: the problem is kept for `demucsctl status`
/// and the journal, jobs stay queued, and loading is tried again later or on SIGHUP.
final class ModelProvider: @unchecked Sendable {
    private let lock = NSLock()
    private var loaded: LoadedModel?
    private var problem: String?
    private var lastAttempt: Date?
    private var settings: WorkSettings
    private let logger: Logger
    /// How long to wait between two attempts to load a missing model.
    let retryInterval: TimeInterval = 60

    init(settings: WorkSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// The model, loading it if needed (at most once per `retryInterval` after a failure).
    func current(force: Bool = false) -> LoadedModel? {
        lock.lock()
        if let loaded { lock.unlock(); return loaded }
        if !force, let lastAttempt, Date().timeIntervalSince(lastAttempt) < retryInterval {
            lock.unlock()
            return nil
        }
        lastAttempt = Date()
        let settings = self.settings
        lock.unlock()
        do {
            let model = LoadedModel(name: settings.modelName, model: try Self.load(settings))
            lock.lock()
            // A reload that changed the model meanwhile wins: this one is already outdated.
            let current = self.settings.modelName == settings.modelName && self.settings.repo == settings.repo
            if current {
                loaded = model
                problem = nil
            }
            lock.unlock()
            guard current else { return nil }
            logger.notice("model loaded: \(model.model.summary)", metadata: ["model": "\(settings.modelName)", "sources": "\(model.model.sources.joined(separator: ","))"])
            return model
        } catch {
            let message = "\(error)"
            lock.lock()
            let changed = problem != message
            problem = message
            lock.unlock()
            if changed {
                logger.error("model unavailable, jobs stay queued until it is installed: \(message)", metadata: ["model": "\(settings.modelName)"])
            }
            return nil
        }
    }

    var currentProblem: String? {
        lock.lock(); defer { lock.unlock() }
        return problem
    }

    /// New settings (SIGHUP): the model is reloaded on next use if its name or folder changed.
    func update(_ new: WorkSettings) {
        lock.lock()
        if new.modelName != settings.modelName || new.repo != settings.repo || new.cache != settings.cache {
            loaded = nil
        }
        settings = new
        lastAttempt = nil
        lock.unlock()
    }

    private static func load(_ s: WorkSettings) throws -> TrackModel {
        if let repo = s.repo {
            return try ModelRepository(root: repo).loadModel(s.modelName)
        }
        let downloader = ModelDownloader(cacheRoot: s.cache)
        let installed = try blocking { try await downloader.ensure(name: s.modelName) }
        return try installed.repository.loadModel(installed.name)
    }
}

/// Runs async work from a plain thread and waits for it.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = BlockingResult<T>()
    let semaphore = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        semaphore.signal()
    }
    semaphore.wait()
    return try box.result!.get()
}

/// The result slot of `blocking`, written by the task and read after the semaphore.
final class BlockingResult<T: Sendable>: @unchecked Sendable {
    var result: Result<T, Error>?
}

/// A model as the workers use it: the model (a demucs bag or a RoFormer) and the name it was
/// loaded under, which is what a job records as the model that separated it.
struct LoadedModel: Sendable {
    let name: String
    let model: TrackModel
}
