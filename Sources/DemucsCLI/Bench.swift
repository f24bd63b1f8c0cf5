import ArgumentParser
import AudioIO
import DemucsEngine
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `demucsctl bench`: where a separation's time goes, by kind of layer, with peak memory.
/// `tools/bench.py` runs PyTorch on the same file in the same run for the ratio.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time a separation and show the share of each layer kind, peak memory and threads.",
        discussion: """
            Runs the model like `separate --shifts 0` on FILE (the first --seconds of it) and \
            prints wall time per second of audio, CPU time per layer kind (convolutions, \
            transposed convolutions, attention, linear, LSTM, norms, activations, STFT) plus \
            decoding and encoding, the peak RSS and the threads used. Nothing is written.
            """)

    @Argument(help: "Audio file to separate.")
    var file: String

    @Option(name: [.customShort("n"), .long], help: "Model name.")
    var name: String = "htdemucs"

    @Option(help: ArgumentHelp("Model folder (as separate --repo).", valueName: "DIR"))
    var repo: String?

    @Option(help: "Only the first this many seconds of the file (0 = all).")
    var seconds: Double = 0

    @Option(name: [.customShort("j"), .long], help: "Segments side by side (as separate -j; 0 = automatic: one).")
    var jobs: Int = 0

    @Option(help: "Random shifts (as separate --shifts).")
    var shifts: Int = 0

    @Option(help: "Matrix multiply arithmetic (as separate --precision).")
    var precision: EnginePrecision = .float32

    @Flag(help: "Separate the whole track in memory (the engine's separateStems) instead of streaming it in track order as separate and the daemon do: for comparing the two.")
    var inMemory = false

    func run() throws {
        try precision.requireAvailable()
        let model = try ModelLocator.loadForCommand(name: name, repo: repo, verbose: false)
        let separator = model.separator(demucs: SeparationOptions(shifts: shifts, jobs: jobs, precision: precision),
                                        roformer: RoFormerOptions(precision: precision))
        let bag = (samplerate: model.samplerate, audioChannels: model.audioChannels, sources: model.sources)
        let wallStart = Date()
        let decodeStart = Date()
        var audio = try AudioDecoder.load(path: file, sampleRate: bag.samplerate, channels: bag.audioChannels)
        if seconds > 0 {
            let keep = min(audio.frameCount, Int(seconds * Double(bag.samplerate)))
            audio = AudioBuffer(sampleRate: audio.sampleRate, channels: audio.channels.map { Array($0.prefix(keep)) })
        }
        let decodeTime = Date().timeIntervalSince(decodeStart)
        let duration = Double(audio.frameCount) / Double(bag.samplerate)
        let mix = Tensor(shape: [bag.audioChannels, audio.frameCount], data: audio.channels.flatMap { $0 })
        let length = audio.frameCount
        let scratch = NSTemporaryDirectory() + "demucsctl-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // The streaming path, as separate and the daemon run it (or with --in-memory the whole
        // track at once); stems are encoded as float32 WAV, block by block as they come, and
        // that time is counted as encoding: its wall time, and its CPU time (of the thread that
        // encodes) is taken out of the separation's.
        let writers = try bag.sources.map { source in
            try AudioFileWriter(path: scratch + "/\(source).wav", sampleRate: bag.samplerate, channels: bag.audioChannels,
                                frames: length, options: EncodeOptions(clip: .none, asFloat: true), peak: 0)
        }
        var encodeTime = 0.0, encodeCPU = 0.0
        Profile.setEnabled(true)
        let cpuStart = processCPUTime()
        let start = Date()
        if inMemory {
            let stems = try separator.separateStems(mix, progress: nil, isCancelled: nil).tensor
            let encodeStart = Date(), encodeCPUStart = Profile.threadCPUTime()
            for (k, writer) in writers.enumerated() {
                try writer.write(AudioBuffer(sampleRate: bag.samplerate, channels: (0..<bag.audioChannels).map { c in
                    let row = (k * bag.audioChannels + c) * length
                    return Array(stems.data[row..<(row + length)])
                }))
            }
            encodeTime += Date().timeIntervalSince(encodeStart)
            encodeCPU += Profile.threadCPUTime() - encodeCPUStart
        } else {
            try separator.separateStreaming(TensorMixSource(mix), emit: { block in
                let encodeStart = Date(), encodeCPUStart = Profile.threadCPUTime()
                for (k, writer) in writers.enumerated() {
                    try writer.write(AudioBuffer(sampleRate: bag.samplerate,
                                                 channels: Array(block.rows[(k * block.channels)..<((k + 1) * block.channels)])))
                }
                encodeTime += Date().timeIntervalSince(encodeStart)
                encodeCPU += Profile.threadCPUTime() - encodeCPUStart
            }, progress: nil, isCancelled: nil)
        }
        let cpu = processCPUTime() - cpuStart - encodeCPU
        let kinds = Profile.snapshot()
        Profile.setEnabled(false)
        let finishStart = Date()
        for writer in writers { try writer.finish() }
        encodeTime += Date().timeIntervalSince(finishStart)
        let separateTime = Date().timeIntervalSince(start) - encodeTime
        let wall = Date().timeIntervalSince(wallStart)

        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        print("model: \(name) (\(model.summary)); path: \(inMemory ? "in memory" : "streaming"); audio: \(String(format: "%.1f", duration)) s; cores: \(cores); segments side by side: \(max(jobs, 1)); threads per segment: \(max(1, cores / max(1, jobs))); precision: \(precision.rawValue)")
        print(String(format: "separation: %.2f s wall (%.3f s per audio second, %.2fx real time), %.2f s CPU", separateTime, separateTime / duration, duration / separateTime, cpu))
        print(String(format: "whole run: %.2f s wall (decode %.2f s, encode %.2f s wall and %.2f s CPU, not in the separation's)",
                     wall, decodeTime, encodeTime, encodeCPU))
        print(String(format: "peak RSS: %.0f MB", Double(usage.ru_maxrss) / 1024))
        let measured = kinds.reduce(0) { $0 + $1.seconds }
        print("CPU time by layer kind (share of separation CPU time):")
        for entry in kinds.sorted(by: { $0.seconds > $1.seconds }) where entry.calls > 0 {
            print("  " + pad(entry.kind.rawValue) + String(format: " %7.2f s  %5.1f%%  %7d calls", entry.seconds, 100 * entry.seconds / max(cpu, 1e-9), entry.calls))
        }
        print("  " + pad("elsewhere (glue, copies)") + String(format: " %7.2f s  %5.1f%%", max(0, cpu - measured), 100 * max(0, cpu - measured) / max(cpu, 1e-9)))
        print("  " + pad("I/O (decode + encode)") + String(format: " %7.2f s wall", decodeTime + encodeTime))
    }

    private func pad(_ s: String) -> String { s.padding(toLength: 24, withPad: " ", startingAt: 0) }

    private func processCPUTime() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}
