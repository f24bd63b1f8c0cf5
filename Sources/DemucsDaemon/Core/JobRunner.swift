import AudioIO
import DemucsEngine
import Foundation
import JobStore
import Logging
import SeparationPipeline
#if canImport(Glibc)
import Glibc
#endif

/// Turns one claimed job into published stems: reads the input once (hash and decode from the
/// same open file), reuses the stems of identical content where they are provably the same,
/// separates through the streaming pipeline (`TrackSeparation`: float32 spools and the encoded
/// stems in the job's staging folder; progress reported; stopping at the next segment when
/// asked or when its claim is no longer current) and publishes the staging folder with one
/// rename inside the transaction that marks the job done.
///
/// Every write names the attempt's ``Claim``: a worker whose job was cancelled, retried or
/// handed on changes nothing and publishes nothing.
struct JobRunner: Sendable {
    let layout: DataLayout
    let store: any JobQueue
    let logger: Logger
    /// Retries a database write that failed because the database was busy or unwritable.
    let persist: PersistentWrite
    /// The `demucsd-decode` executable: inputs from the watch folder are decoded in a child
    /// process (`IsolatedDecoder`), so that a decoder crash or hang fails the job, not the daemon.
    let decoderHelper: String

    /// How the run ended, for the worker loop.
    enum Outcome: Equatable {
        case done, failed, requeued, cancelled
        /// The claim was no longer current (cancelled, retried): nothing was recorded.
        case superseded
        /// The machine, not the file, failed: the job waits in the queue and the queue pauses.
        case machineFault(String)
    }

    /// - Parameter progress: called at every sign of progress (a segment done), for liveness.
    func run(_ job: Job, claim: Claim, model: LoadedModel, settings: WorkSettings,
             progress: @escaping @Sendable () -> Void = {},
             stopRequested: @escaping @Sendable () -> Bool) -> Outcome {
        let started = Date()
        let meta: Logger.Metadata = ["job": "\(job.id)", "file": "\(job.inputName)", "attempt": "\(job.attempts)"]
        logger.info("job started: \(job.inputName)", metadata: meta)
        var staging: String?
        // Emptied before anything is written about a failed attempt: on a full disk the
        // staged stems are what keeps the database from recording it.
        func dropStaging() {
            if let staging { try? FileManager.default.removeItem(atPath: staging) }
            staging = nil
        }
        defer { dropStaging() }
        let track = model.model
        var opened: InputFile?
        do {
            let output = layout.output
            let name = try store.allocateOutputName(for: job.id, preferred: AudioNames.outputName(for: job.inputName)) { candidate in
                var st = stat()
                return lstat(output + "/" + candidate, &st) == 0
            }
            let dir = try OutputPublisher.makeStaging(layout, claim: claim)
            staging = dir
            let input = try InputFile(path: layout.input + "/" + job.inputName, maxSize: settings.maxFileSize)
            opened = input
            if input.contentHash != job.contentHash {
                logger.info("input changed since it was queued; separating it as it is now", metadata: meta)
            }
            guard try store.adoptInput(claim, contentHash: input.contentHash, size: input.size, modified: input.modified) else {
                return superseded(job, claim: claim, meta: meta)
            }
            let recipe = settings.recipe
            let outputs: [String]
            var audioSeconds: Double?
            var reusedFrom: Int64?
            if let (prior, folder) = try reusable(hash: input.contentHash, model: model.name, recipe: recipe, except: job.id) {
                outputs = try OutputPublisher.reuse(from: folder, files: prior.outputs.map { String($0.split(separator: "/").last!) }, into: dir)
                audioSeconds = prior.audioSeconds
                reusedFrom = prior.id
            } else {
                let written = try separate(input, job: job, claim: claim, model: track, settings: settings, into: dir,
                                           progress: progress, stopRequested: stopRequested)
                outputs = written.files
                audioSeconds = Double(written.frames) / Double(track.samplerate)
            }
            let result = JobStore.JobResult(outputs: outputs.map { name + "/" + $0 }, audioSeconds: audioSeconds,
                                            reusedFrom: reusedFrom, model: model.name, recipe: recipe)
            let finished = try persist.run("finish job \(job.id)", stop: stopRequested) {
                try store.finish(claim, result: result) {
                    try OutputPublisher.publish(staging: dir, layout: layout, name: name)
                }
            }
            guard finished else {
                dropStaging()
                return superseded(job, claim: claim, meta: meta)
            }
            staging = nil
            let elapsed = Date().timeIntervalSince(started)
            var line = String(format: "job done: %@ -> output/demucs/%@/ in %.1f s", job.inputName, name, elapsed)
            if let audioSeconds, elapsed > 0, reusedFrom == nil {
                line += String(format: " (%.2fx real time)", audioSeconds / elapsed)
            }
            if let reusedFrom { line += " (same content as job \(reusedFrom): stems reused)" }
            logger.notice("\(line)", metadata: meta)
            handleInput(job, input: input, action: settings.onSuccess, folder: layout.done)
            return .done
        } catch let error as EngineError where error.kind == .cancelled {
            dropStaging()
            if stopRequested() {
                if (try? persist.run("requeue job \(job.id)", stop: { false }) { try store.requeue(claim) }) == true {
                    logger.notice("job interrupted by shutdown, queued again: \(job.inputName)", metadata: meta)
                    return .requeued
                }
            }
            return superseded(job, claim: claim, meta: meta)
        } catch {
            dropStaging()
            return handleFailure(error, job: job, claim: claim, input: opened, settings: settings, meta: meta,
                                 stopRequested: stopRequested)
        }
    }

    /// The newest done job whose stems may stand for this content, and its folder, when every
    /// file it recorded is still there.
    private func reusable(hash: String, model: String, recipe: String, except id: Int64) throws -> (Job, String)? {
        for prior in try store.reusableJobs(withHash: hash, model: model, recipe: recipe) where prior.id != id {
            guard let folder = prior.outputName else { continue }
            let path = layout.output + "/" + folder
            if prior.outputs.allSatisfy({ FileManager.default.fileExists(atPath: layout.output + "/" + $0) }) {
                return (prior, path)
            }
        }
        return nil
    }

    private func superseded(_ job: Job, claim: Claim, meta: Logger.Metadata) -> Outcome {
        _ = try? persist.run("release \(claim)", stop: { false }) { try store.release(claim) }
        logger.notice("job cancelled or retried while running: \(job.inputName): this attempt stopped and published nothing", metadata: meta)
        return .superseded
    }

    private func handleFailure(_ error: any Error, job: Job, claim: Claim, input: InputFile?, settings: WorkSettings,
                               meta: Logger.Metadata, stopRequested: @escaping @Sendable () -> Bool) -> Outcome {
        let message = "\(error)"
        switch FailurePolicy.classify(error) {
        case .machine(let cause):
            logger.error("job paused, the machine is at fault, not the file: \(job.inputName): \(message)", metadata: meta)
            _ = try? persist.run("requeue job \(job.id)", stop: stopRequested) {
                try store.requeue(claim, reason: "waiting: \(message)")
            }
            return .machineFault(cause)
        case .inputChanged:
            logger.warning("job restarted: \(job.inputName): \(message)", metadata: meta)
            _ = try? persist.run("requeue job \(job.id)", stop: stopRequested) { try store.requeue(claim, reason: message) }
            return .requeued
        case .permanent:
            return fail(job, claim: claim, input: input, message, retries: 0, settings: settings, meta: meta,
                        stopRequested: stopRequested)
        case .retryable:
            return fail(job, claim: claim, input: input, message, retries: settings.retryLimit, settings: settings,
                        meta: meta, stopRequested: stopRequested)
        }
    }

    private func fail(_ job: Job, claim: Claim, input: InputFile?, _ message: String, retries: Int, settings: WorkSettings,
                      meta: Logger.Metadata, stopRequested: @escaping @Sendable () -> Bool) -> Outcome {
        let state: JobState?
        do {
            state = try persist.run("record failure of job \(job.id)", stop: stopRequested) {
                try store.fail(claim, error: message, retries: retries)
            }
        } catch {
            // Stopping while the database stays unwritable: the row still says running, and the
            // next start-up's recovery queues it again. The input stays where it is.
            logger.error("cannot record the failure of \(job.inputName) (\(message)): \(error)", metadata: meta)
            return .requeued
        }
        switch state {
        case .queued?:
            logger.warning("job attempt \(job.attempts) failed, will retry: \(job.inputName): \(message)", metadata: meta)
            return .requeued
        case .failed?:
            logger.error("job failed: \(job.inputName): \(message)", metadata: meta)
            handleInput(job, input: input, action: settings.onFailure, folder: layout.failed)
            return .failed
        default:
            logger.notice("job cancelled or retried while its attempt was failing: \(job.inputName)", metadata: meta)
            return .superseded
        }
    }

    /// Decodes, separates and encodes the input into `dir` through the streaming pipeline
    /// (spools in `dir`, memory independent of the track's length); returns the files written
    /// and the track's length. Once the track is decoded, and before the separation, its
    /// length is checked against `max_duration_minutes` and what the job will write against
    /// the free space.
    private func separate(_ input: InputFile, job: Job, claim: Claim, model: TrackModel, settings: WorkSettings,
                          into dir: String, progress beat: @escaping @Sendable () -> Void,
                          stopRequested: @escaping @Sendable () -> Bool) throws -> (files: [String], frames: Int) {
        let separator = model.separator(demucs: settings.separation, roformer: settings.roformer)
        // A two-stem setting naming no stem of the model writes every stem.
        let recipes = StemRecipe.outputs(sources: model.sources, twoStems: settings.twoStems)
        let jobs = settings.config.jobs
        let decoder = IsolatedDecoder(helper: decoderHelper, ffmpeg: settings.ffmpeg?.executable,
                                      cpuSeconds: jobs.decoderCPUSeconds, memoryMB: jobs.decoderMemoryMB,
                                      stallSeconds: jobs.decoderStallSeconds)
        let pipeline = TrackSeparation(separator: separator, outputs: recipes, formats: settings.formats, ffmpeg: settings.ffmpeg,
                                       isolatedDecoder: decoder)
        let store = self.store
        let throttle = Throttle(interval: 0.5)
        let stale = Flag()
        let channels = model.audioChannels, rate = model.samplerate
        let freeAtStart = OutputBudget.freeBytes(at: dir)
        do {
            return try pipeline.run(input: input.decodePath, staging: dir, decoded: { frames in
                try input.checkUnchanged()
                guard frames > 0 else { throw PermanentFailure("the file holds no audio") }
                let seconds = Double(frames) / Double(rate)
                if seconds > settings.maxDuration {
                    throw PermanentFailure(String(format: "the audio lasts %.0f s, over the limit of %.0f s (max_duration_minutes)", seconds, settings.maxDuration))
                }
                // The mix spool is on the disk already: it counts in what is needed and in what was free.
                let mix = OutputBudget.spoolBytes(frames: frames, channels: channels, spools: 1)
                let needed = mix + OutputBudget.spoolBytes(frames: frames, channels: channels, spools: recipes.count)
                    + OutputBudget.bytes(frames: frames, sampleRate: rate, channels: channels,
                                         stems: recipes.count, formats: settings.formats)
                if let free = OutputBudget.freeBytes(at: dir).map({ $0 + mix }), needed > free {
                    throw PermanentFailure("the job needs \(OutputBudget.megabytes(needed)) (stems and their float32 spools), \(OutputBudget.megabytes(free)) free on the data folder's disk")
                }
            }, progress: { p in
                beat()
                if throttle.ready() || p.fraction >= 1 {
                    if (try? store.updateProgress(claim, progress: p.fraction)) == false { stale.set() }
                }
            }, isCancelled: {
                // A database that cannot be read right now does not stop the separation.
                stopRequested() || stale.isSet || ((try? store.isCurrent(claim)) == false)
            })
        } catch let failure as TrackSeparation.DecodingFailure {
            throw PermanentFailure(failure.description.replacingOccurrences(of: input.decodePath, with: job.inputName))
        } catch let failure as TrackSeparation.MixSpoolFailure {
            // The decoded mix alone used what was free: the track is too long for this disk, a
            // fault of the job. Less than that: something else filled the disk meanwhile.
            if let free = freeAtStart, failure.bytes + OutputBudget.slack >= free,
               (failure.error as? AudioIOError)?.kind == .noSpace {
                throw PermanentFailure("the job needs over \(OutputBudget.megabytes(failure.bytes)) (its decoded mix alone did not fit), \(OutputBudget.megabytes(free)) free on the data folder's disk")
            }
            throw failure.error
        }
    }

    /// Keeps, moves or deletes the input after its job ended — only when the name still holds
    /// the very file the job read: a file replaced meanwhile is new work, never deleted.
    private func handleInput(_ job: Job, input: InputFile?, action: WorkSettings.InputAction, folder: String) {
        let path = layout.input + "/" + job.inputName
        if action != .keep, let input, !input.isStillAtPath() {
            logger.notice("input \(job.inputName) was replaced after it was read; left where it is", metadata: ["job": "\(job.id)"])
            return
        }
        switch action {
        case .keep:
            return
        case .delete:
            if unlink(path) != 0 {
                logger.warning("cannot delete input \(job.inputName): \(String(cString: strerror(errno)))", metadata: ["job": "\(job.id)"])
            }
        case .move:
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                var target = folder + "/" + job.inputName
                if FileManager.default.fileExists(atPath: target) { target += ".\(job.id)" }
                if rename(path, target) != 0 {
                    throw DaemonError(String(cString: strerror(errno)))
                }
            } catch {
                logger.warning("cannot move input \(job.inputName) to \(folder): \(error)", metadata: ["job": "\(job.id)"])
            }
        }
    }
}

/// Lets a callback through at most once per interval.
final class Throttle: @unchecked Sendable {
    private let lock = NSLock()
    private var last = Date.distantPast
    private let interval: TimeInterval
    init(interval: TimeInterval) { self.interval = interval }
    func ready() -> Bool {
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(last) >= interval else { return false }
        last = now
        return true
    }
}

/// A flag set once from any thread.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
