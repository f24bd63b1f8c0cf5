import AudioIO
import DemucsEngine
import Foundation
import JobStore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Turns one claimed job into published stems: reads the input once (hash and decode from the
/// same open file), reuses the stems of identical content where they are provably the same,
/// separates (reporting progress, stopping at the next segment when asked or when its claim is
/// no longer current), encodes every stem into a staging folder and publishes it with one
/// rename inside the transaction that marks the job done.
///
/// Every write names the attempt's ``Claim``: a worker whose job was cancelled, retried or
/// handed on changes nothing and publishes nothing.
struct JobRunner: Sendable {
    let layout: DataLayout
    let store: JobStore
    let logger: Logger
    /// Retries a database write that failed because the database was busy or unwritable.
    let persist: PersistentWrite

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
        let bag = model.bag
        var opened: InputFile?
        do {
            let output = layout.output
            let name = try store.allocateOutputName(for: job.id, preferred: AudioNames.outputName(for: job.inputName)) { candidate in
                var st = stat()
                return lstat(output + "/" + candidate, &st) == 0
            }
            let dir = try OutputPublisher.makeStaging(layout, jobID: job.id)
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
                // Only the mix tensor is kept during the separation; the decoded buffer is dropped.
                let mix: Tensor
                do {
                    let audio: AudioBuffer
                    do {
                        audio = try AudioDecoder.load(path: input.decodePath, sampleRate: bag.samplerate, channels: bag.audioChannels,
                                                      ffmpeg: settings.ffmpeg)
                    } catch let error as AudioIOError {
                        throw PermanentFailure(error.description.replacingOccurrences(of: input.decodePath, with: job.inputName))
                    }
                    try input.checkUnchanged()
                    mix = Tensor(shape: [bag.audioChannels, audio.frameCount], data: audio.channels.flatMap { $0 })
                }
                let frames = mix.shape[1]
                let seconds = Double(frames) / Double(bag.samplerate)
                audioSeconds = seconds
                if seconds > settings.maxDuration {
                    throw PermanentFailure(String(format: "the audio lasts %.0f s, over the limit of %.0f s (max_duration_minutes)", seconds, settings.maxDuration))
                }
                guard frames > 0 else { throw PermanentFailure("the file holds no audio") }
                let stemCount = Self.twoStemIndex(bag, settings) != nil ? 2 : bag.sources.count
                let needed = OutputBudget.bytes(frames: frames, sampleRate: bag.samplerate, channels: bag.audioChannels,
                                                stems: stemCount, formats: settings.formats)
                if let free = OutputBudget.freeBytes(at: dir), needed > free {
                    throw PermanentFailure("its stems need \(OutputBudget.megabytes(needed)), \(OutputBudget.megabytes(free)) free on the data folder's disk")
                }
                var stems = try separate(consume mix, claim: claim, bag: bag, settings: settings, progress: progress,
                                         stopRequested: stopRequested)
                outputs = try write(&stems, bag: bag, settings: settings, into: dir)
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

    private func separate(_ mix: consuming Tensor, claim: Claim, bag: ModelBag, settings: WorkSettings,
                          progress beat: @escaping @Sendable () -> Void,
                          stopRequested: @escaping @Sendable () -> Bool) throws -> Stems {
        let separator = Separator(bag: bag, options: settings.separation)
        let store = self.store
        let throttle = Throttle(interval: 0.5)
        let stale = Flag()
        return try separator.separateStems(consume mix, progress: { p in
            beat()
            if throttle.ready() || p.done == p.total {
                if (try? store.updateProgress(claim, progress: p.fraction)) == false { stale.set() }
            }
        }, isCancelled: {
            // A database that cannot be read right now does not stop the separation.
            stopRequested() || stale.isSet || ((try? store.isCurrent(claim)) == false)
        })
    }

    /// The stem of two-stem mode (`<stem>` and `no_<stem>` are written), when it is one of the
    /// model's; otherwise every stem is written.
    private static func twoStemIndex(_ bag: ModelBag, _ settings: WorkSettings) -> Int? {
        settings.twoStems.flatMap { bag.sources.firstIndex(of: $0) }
    }

    /// Encodes the stems (WAV and/or FLAC, and MP3) into `dir`; returns the file names.
    private func write(_ stems: inout Stems, bag: ModelBag, settings: WorkSettings, into dir: String) throws -> [String] {
        let channels = bag.audioChannels, length = stems.length
        // Each stem's samples are handed to the encoder one stem at a time; plain stems are
        // moved out of `stems`, so memory shrinks as they are written.
        var files: [String] = []
        func encode(_ name: String, _ data: [[Float]]) throws {
            let buffer = AudioBuffer(sampleRate: bag.samplerate, channels: data)
            for (ext, options) in settings.formats {
                let file = "\(name).\(ext)"
                try AudioEncoder.write(buffer, to: dir + "/" + file, options: options)
                files.append(file)
            }
        }
        if let k = Self.twoStemIndex(bag, settings) {
            let two = bag.sources[k]
            var rest = [[Float]](repeating: [Float](repeating: 0, count: length), count: channels)
            for j in bag.sources.indices where j != k {
                for c in 0..<channels {
                    stems.rows[j * channels + c].withUnsafeBufferPointer { s in
                        for i in 0..<length { rest[c][i] += s[i] }
                    }
                }
            }
            try encode(two, stems.take(k))
            try encode("no_" + two, rest)
        } else {
            for (k, name) in bag.sources.enumerated() { try encode(name, stems.take(k)) }
        }
        return files
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
