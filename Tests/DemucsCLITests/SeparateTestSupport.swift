import AudioIO
import Foundation
import Testing

/// Helpers for the `demucsctl separate` tests: fixture lookup (tolerant of the fixtures being
/// regenerated while the tests run), generated inputs, and inspection of the output folder.
enum SeparateSupport {
    // MARK: - Fixtures

    /// The fixture model folder, once `tiny4`, `tiny6` and `bag2` are all there. The fixtures may
    /// be mid-regeneration (the script deletes and rewrites them), so wait up to two minutes.
    static var models: String {
        let names = ["tiny4.yaml", "tiny6.yaml", "bag2.yaml"]
        waitFor { names.allSatisfy { FileManager.default.fileExists(atPath: TestSupport.models + "/" + $0) } && !signatures("tiny4").isEmpty }
        return TestSupport.models
    }

    /// The safetensors signatures a fixture bag lists (`models: ['7e1a4c02']`), each present.
    static func signatures(_ bag: String) -> [String] {
        guard let text = try? String(contentsOfFile: TestSupport.models + "/\(bag).yaml", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("models:") })
        else { return [] }
        let sigs = line.dropFirst("models:".count).split(separator: ",").map {
            $0.trimmingCharacters(in: CharacterSet(charactersIn: " []'\""))
        }.filter { !$0.isEmpty }
        guard sigs.allSatisfy({ FileManager.default.fileExists(atPath: TestSupport.models + "/\($0).safetensors") })
        else { return [] }
        return sigs
    }

    /// A fixture audio file (`Tests/Fixtures/audio/BASE.flac` or `.wav`), waiting while the
    /// folder is being rewritten; nil if it is not there.
    static func fixtureAudio(_ base: String) -> String? {
        let folder = TestSupport.fixtures + "/audio/"
        func found() -> String? {
            ["flac", "wav"].map { folder + base + "." + $0 }.first { FileManager.default.fileExists(atPath: $0) }
        }
        waitFor {
            found() != nil || ((try? FileManager.default.contentsOfDirectory(atPath: folder))?.count ?? 0) >= 3
        }
        return found()
    }

    /// `/work/shared/test-audio/test.mp3` (20 s of music) if this machine has it.
    static var realMusic: String? {
        let path = URL(fileURLWithPath: TestSupport.repoRoot + "/../shared/test-audio/test.mp3").standardizedFileURL.path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    private static func waitFor(seconds: Double = 120, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() && Date() < deadline { usleep(500_000) }
    }

    /// A copy of the `tiny4` model (its yaml and safetensors) in `folder`, to be damaged by a test.
    /// Returns the path of the copied safetensors file.
    static func copyTiny4(to folder: String) throws -> String {
        let source = models
        let sig = try #require(signatures("tiny4").first)
        let fm = FileManager.default
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try fm.copyItem(atPath: source + "/tiny4.yaml", toPath: folder + "/tiny4.yaml")
        let weights = folder + "/\(sig).safetensors"
        try fm.copyItem(atPath: source + "/\(sig).safetensors", toPath: weights)
        return weights
    }

    /// Rewrites the JSON header of a safetensors file (8-byte little-endian length + JSON); the
    /// tensor data, addressed relative to the end of the header, is kept as it is.
    static func rewriteSafetensorsHeader(_ path: String, _ edit: (inout [String: Any]) throws -> Void) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var header = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any])
        try edit(&header)
        let json = try JSONSerialization.data(withJSONObject: header)
        var out = Data((0..<8).map { UInt8(truncatingIfNeeded: json.count >> (8 * $0)) })
        out.append(json)
        out.append(data.subdata(in: (8 + length)..<data.count))
        try out.write(to: URL(fileURLWithPath: path))
    }

    // MARK: - Running

    /// `demucsctl separate --repo <fixtures> -n MODEL ARGS...`.
    @discardableResult
    static func separate(_ arguments: [String], model: String = "tiny4", repo: String? = nil, cwd: String? = nil) throws -> TestSupport.Run {
        try TestSupport.run(["separate", "--repo", repo ?? models, "-n", model] + arguments, cwd: cwd)
    }

    /// The lines of stderr that are error messages (`error: ...`).
    static func errorLines(_ run: TestSupport.Run) -> [String] {
        run.stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("error:") || $0.hasPrefix("Error:") }
    }

    // MARK: - Generated inputs

    /// A deterministic music-like signal: a few partials with slow tremolo plus seeded noise, peak
    /// about `peak`. Channels differ (different phases and noise).
    static func synth(frames: Int, channels: Int, sampleRate: Int, peak: Float = 0.5, seed: UInt64 = 1) -> AudioBuffer {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func noise() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_000) / 1_000_000 - 1
        }
        let freqs: [Float] = [110, 220, 329.6, 440, 659.3, 1318.5, 3520]
        var out = [[Float]](repeating: [Float](repeating: 0, count: frames), count: channels)
        for c in 0..<channels {
            for i in 0..<frames {
                let t = Float(i) / Float(sampleRate)
                var x: Float = 0
                for (k, f) in freqs.enumerated() {
                    let tremolo = 0.6 + 0.4 * sinf(2 * .pi * (1.5 + Float(k)) * t)
                    x += tremolo * sinf(2 * .pi * f * t + Float(c * 3 + k)) / Float(k + 1)
                }
                out[c][i] = x + 0.3 * noise()
            }
        }
        let m = out.flatMap { $0 }.reduce(Float(0)) { max($0, abs($1)) }
        for c in 0..<channels { for i in 0..<frames { out[c][i] *= peak / m } }
        return AudioBuffer(sampleRate: sampleRate, channels: out)
    }

    /// Writes a synthesised input with AudioIO (format from the extension; WAV as float32).
    @discardableResult
    static func writeInput(_ path: String, frames: Int, channels: Int = 2, sampleRate: Int = 44100, seed: UInt64 = 1) throws -> AudioBuffer {
        let buffer = synth(frames: frames, channels: channels, sampleRate: sampleRate, seed: seed)
        try AudioEncoder.write(buffer, to: path, options: EncodeOptions(clip: .none, bitsPerSample: 24, asFloat: true))
        return try AudioDecoder.decode(path: path)
    }

    /// A 32-bit float WAV written by hand, so that samples beyond ±1 are kept (AudioEncoder clamps).
    static func writeRawFloatWAV(_ buffer: AudioBuffer, to path: String) throws {
        func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func le16(_ v: Int) -> [UInt8] { (0..<2).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        let channels = buffer.channelCount
        let dataBytes = buffer.frameCount * channels * 4
        var bytes: [UInt8] = Array("RIFF".utf8) + le32(4 + 24 + 8 + dataBytes) + Array("WAVE".utf8)
        bytes += Array("fmt ".utf8) + le32(16) + le16(3) + le16(channels) + le32(buffer.sampleRate)
        bytes += le32(buffer.sampleRate * channels * 4) + le16(channels * 4) + le16(32)
        bytes += Array("data".utf8) + le32(dataBytes)
        for x in buffer.interleaved() { bytes += le32(Int(x.bitPattern)) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    // MARK: - Output inspection

    /// Every file under `folder` (recursively, hidden ones included), relative to it, sorted.
    static func files(under folder: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return [] }
        var out: [String] = []
        while let item = walker.nextObject() as? String {
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: folder + "/" + item, isDirectory: &isDir)
            if !isDir.boolValue { out.append(item) }
        }
        return out.sorted()
    }

    /// Staging folders or partial files left under `folder`.
    static func leftovers(under folder: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return [] }
        var out: [String] = []
        while let item = walker.nextObject() as? String {
            let name = (item as NSString).lastPathComponent
            if name.hasPrefix(".demucsctl-staging-") || name.hasSuffix(".partial") { out.append(item) }
        }
        return out
    }

    /// The stems (file name without extension → decoded audio) in one track folder.
    static func stems(in folder: String) throws -> [String: AudioBuffer] {
        var out: [String: AudioBuffer] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) where !name.hasPrefix(".") {
            out[(name as NSString).deletingPathExtension] = try AudioDecoder.decode(path: folder + "/" + name)
        }
        return out
    }

    /// The `fmt ` chunk of a WAV file: format tag (the sub-format for WAVE_FORMAT_EXTENSIBLE),
    /// channels, sample rate, bits per sample.
    struct WAVFormat: Equatable {
        var format: Int
        var channels: Int
        var sampleRate: Int
        var bitsPerSample: Int
    }

    static func wavFormat(_ path: String) throws -> WAVFormat {
        let d = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func u16(_ o: Int) -> Int { Int(d[o]) | Int(d[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        guard d.count >= 12, String(decoding: d[8..<12], as: UTF8.self) == "WAVE" else {
            throw CLIError("not a WAV file: \(path)")
        }
        var o = 12
        while o + 8 <= d.count {
            let id = String(decoding: d[o..<(o + 4)], as: UTF8.self)
            let size = u32(o + 4)
            if id == "fmt " {
                var tag = u16(o + 8)
                if tag == 0xFFFE { tag = u16(o + 8 + 24) }
                return WAVFormat(format: tag, channels: u16(o + 10), sampleRate: u32(o + 12), bitsPerSample: u16(o + 22))
            }
            o += 8 + size + (size & 1)
        }
        throw CLIError("no fmt chunk in \(path)")
    }

    struct CLIError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// Largest |a − b| over all samples (lengths must agree).
    static func maxDifference(_ a: [[Float]], _ b: [[Float]]) -> Float {
        var m: Float = 0
        for (x, y) in zip(a, b) { for (p, q) in zip(x, y) { m = max(m, abs(p - q)) } }
        return m
    }
}
