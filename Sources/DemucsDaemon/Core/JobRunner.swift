import AudioIO
import DemucsEngine
import Foundation
import JobStore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Turns one claimed job into published stems: checks the input, reuses the stems of identical
/// content, decodes, separates (reporting progress, stopping at the next segment when asked),
/// encodes every stem into a staging folder and publishes it with one rename.
struct JobRunner: Sendable {
    let layout: DataLayout
    let store: JobStore
    let models: ModelProvider
    let logger: Logger

    /// How the run ended, for the worker loop.
    enum Outcome { case done, failed, requeued, cancelled }

    /// A failure that retrying cannot fix (a corrupt or oversized file): the job fails at once.
    struct PermanentFailure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    func run(_ job: Job, bag: ModelBag, settings: WorkSettings, stopRequested: @escaping @Sendable () -> Bool) -> Outcome {
        let started = Date()
        let meta: Logger.Metadata = ["job": "\(job.id)", "file": "\(job.inputName)"]
        logger.info("job started: \(job.inputName)", metadata: meta)
        var staging: String?
        defer { if let staging { try? FileManager.default.removeItem(atPath: staging) } }
        do {
            let name = try store.allocateOutputName(for: job.id, preferred: AudioNames.outputName(for: job.inputName))
            let dir = try OutputPublisher.makeStaging(layout, jobID: job.id)
            staging = dir
            let outputs: [String]
            var audioSeconds: Double?
            var reusedFrom: Int64?
            if let prior = try store.doneJob(withHash: job.contentHash, model: job.model), prior.id != job.id,
               let priorName = prior.outputName, FileManager.default.fileExists(atPath: layout.output + "/" + priorName) {
                outputs = try OutputPublisher.reuse(from: layout.output + "/" + priorName, into: dir)
                audioSeconds = prior.audioSeconds
                reusedFrom = prior.id
            } else {
                let input = try checkedInput(job, settings: settings)
                // Only the mix tensor is kept during the separation; the decoded buffer is dropped.
                let mix: Tensor
                do {
                    let audio: AudioBuffer
                    do {
                        audio = try AudioDecoder.load(path: input, sampleRate: bag.samplerate, channels: bag.audioChannels)
                    } catch {
                        throw PermanentFailure("\(error)")
                    }
                    mix = Tensor(shape: [bag.audioChannels, audio.frameCount], data: audio.channels.flatMap { $0 })
                }
                let frames = mix.shape[1]
                let seconds = Double(frames) / Double(bag.samplerate)
                audioSeconds = seconds
                if seconds > settings.maxDuration {
                    throw PermanentFailure(String(format: "the audio lasts %.0f s, over the limit of %.0f s (max_duration_minutes)", seconds, settings.maxDuration))
                }
                guard frames > 0 else { throw PermanentFailure("the file holds no audio") }
                var stems = try separate(consume mix, job: job, bag: bag, settings: settings, stopRequested: stopRequested)
                outputs = try write(&stems, bag: bag, settings: settings, into: dir)
            }
            try OutputPublisher.publish(staging: dir, layout: layout, name: name)
            staging = nil
            guard try store.finish(id: job.id, outputs: outputs.map { name + "/" + $0 }, audioSeconds: audioSeconds, reusedFrom: reusedFrom) else {
                logger.notice("job cancelled while its stems were being written; they stay in output/demucs/\(name)/", metadata: meta)
                return .cancelled
            }
            let elapsed = Date().timeIntervalSince(started)
            var line = String(format: "job done: %@ -> output/demucs/%@/ in %.1f s", job.inputName, name, elapsed)
            if let audioSeconds, elapsed > 0, reusedFrom == nil {
                line += String(format: " (%.2fx real time)", audioSeconds / elapsed)
            }
            if let reusedFrom { line += " (same content as job \(reusedFrom): stems reused)" }
            logger.notice("\(line)", metadata: meta)
            handleInput(job, action: settings.onSuccess, folder: layout.done)
            return .done
        } catch let error as EngineError where error.kind == .cancelled {
            if stopRequested() {
                _ = try? store.requeue(id: job.id)
                logger.notice("job interrupted by shutdown, queued again: \(job.inputName)", metadata: meta)
                return .requeued
            }
            logger.notice("job cancelled: \(job.inputName)", metadata: meta)
            return .cancelled
        } catch let error as PermanentFailure {
            return fail(job, "\(error)", retryLimit: 0, settings: settings, meta: meta)
        } catch {
            return fail(job, "\(error)", retryLimit: settings.retryLimit, settings: settings, meta: meta)
        }
    }

    private func fail(_ job: Job, _ message: String, retryLimit: Int, settings: WorkSettings, meta: Logger.Metadata) -> Outcome {
        let state = (try? store.fail(id: job.id, error: message, retryLimit: retryLimit)) ?? .failed
        if state == .queued {
            logger.warning("job attempt \(job.attempts) failed, will retry: \(job.inputName): \(message)", metadata: meta)
            return .requeued
        }
        logger.error("job failed: \(job.inputName): \(message)", metadata: meta)
        handleInput(job, action: settings.onFailure, folder: layout.failed)
        return .failed
    }

    /// The input path, after checking it is still the file that was queued and within limits.
    private func checkedInput(_ job: Job, settings: WorkSettings) throws -> String {
        let path = layout.input + "/" + job.inputName
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw PermanentFailure("the input file is gone (\(String(cString: strerror(errno))))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw PermanentFailure("the input is not a regular file")
        }
        if Int64(st.st_size) > settings.maxFileSize {
            throw PermanentFailure("the file is \(st.st_size / (1 << 20)) MB, over the limit of \(settings.maxFileSize / (1 << 20)) MB (max_file_size_mb)")
        }
        return path
    }

    private func separate(_ mix: consuming Tensor, job: Job, bag: ModelBag, settings: WorkSettings,
                          stopRequested: @escaping @Sendable () -> Bool) throws -> Stems {
        let separator = Separator(bag: bag, options: settings.separation)
        let store = self.store
        let throttle = Throttle(interval: 0.5)
        return try separator.separateStems(consume mix, progress: { p in
            if throttle.ready() || p.done == p.total { try? store.updateProgress(id: job.id, progress: p.fraction) }
        }, isCancelled: {
            stopRequested() || ((try? store.isCancelled(id: job.id)) ?? false)
        })
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
        if let two = settings.twoStems, let k = bag.sources.firstIndex(of: two) {
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

    /// Keeps, moves or deletes the input after its job ended.
    private func handleInput(_ job: Job, action: WorkSettings.InputAction, folder: String) {
        let path = layout.input + "/" + job.inputName
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
