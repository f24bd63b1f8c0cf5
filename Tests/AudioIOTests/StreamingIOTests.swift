import Foundation
import Testing
@testable import AudioIO

/// The block-by-block halves of the audio I/O give what the whole-buffer ones give: decoding
/// with `stream` (the same samples as `load`, resampled or not, through libsndfile or ffmpeg),
/// resampling in blocks, spooling, and writing a file from blocks (the same bytes).
@Suite struct StreamingIOTests {
    /// Splits `x` into blocks of the given sizes, cycling through them.
    static func blocks(_ x: [Float], sizes: [Int]) -> [[Float]] {
        var out: [[Float]] = [], start = 0, k = 0
        while start < x.count {
            let n = min(sizes[k % sizes.count], x.count - start)
            out.append(Array(x[start..<(start + n)]))
            start += n
            k += 1
        }
        return out
    }

    @Test(arguments: [(48_000, 44_100), (44_100, 22_050), (16_000, 44_100), (44_100, 48_000)])
    func resamplingInBlocksGivesTheSameSamples(_ from: Int, _ to: Int) throws {
        let resampler = try Resampler(from: from, to: to)
        for length in [1, 7, 1_000, 12_345] {
            let x = TestSupport.sine(frequency: 997, rate: from, frames: length)
            let whole = resampler.resample(x)
            var stream = Resampler.Stream(resampler, channels: 1)
            var pieces: [Float] = []
            for block in Self.blocks(x, sizes: [1, 333, 4_096, 17]) { pieces += stream.push([block])[0] }
            pieces += stream.finish()[0]
            #expect(pieces.count == whole.count, "\(from)->\(to), \(length) frames")
            #expect(pieces.map(\.bitPattern) == whole.map(\.bitPattern), "\(from)->\(to), \(length) frames")
        }
    }

    @Test func spoolReadsBackWhatWasWrittenAndItsPeak() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let tones = TestSupport.stereoTones(frames: 10_000)
        let spool = try PCMSpool(path: folder + "/mix.f32", channels: 2, sampleRate: 44_100)
        for (l, r) in zip(Self.blocks(tones.channels[0], sizes: [999]), Self.blocks(tones.channels[1], sizes: [999])) {
            try spool.append([l, r])
        }
        #expect(spool.frames == 10_000)
        #expect(spool.peak == tones.peak)
        let back = try spool.read(from: 1_234, count: 5_000)
        #expect(back.channels[0] == Array(tones.channels[0][1_234..<6_234]))
        #expect(back.channels[1] == Array(tones.channels[1][1_234..<6_234]))
    }

    static func streamed(_ path: String, rate: Int, channels: Int, ffmpeg: FFmpegDecoder? = FFmpegDecoder.onPath()) throws -> AudioBuffer {
        var rows = [[Float]](repeating: [], count: channels)
        let frames = try AudioDecoder.stream(path: path, sampleRate: rate, channels: channels, ffmpeg: ffmpeg) { block in
            #expect(block.sampleRate == rate && block.channelCount == channels)
            for c in 0..<channels { rows[c] += block.channels[c] }
        }
        #expect(frames == rows[0].count)
        return AudioBuffer(sampleRate: rate, channels: rows)
    }

    @Test(arguments: [(44_100, 2), (44_100, 1), (48_000, 2), (22_050, 2)])
    func streamingDecodeGivesTheSamplesOfLoad(_ rate: Int, _ channels: Int) throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/tones.flac"
        try AudioEncoder.write(TestSupport.stereoTones(rate: 44_100, frames: 200_000), to: path,
                               options: EncodeOptions(bitsPerSample: 24))
        let whole = try AudioDecoder.load(path: path, sampleRate: rate, channels: channels)
        let streamed = try Self.streamed(path, rate: rate, channels: channels)
        #expect(streamed.frameCount == whole.frameCount)
        #expect(streamed.channels.map { $0.map(\.bitPattern) } == whole.channels.map { $0.map(\.bitPattern) })
    }

    @Test(.enabled(if: FFmpegDecoder.onPath() != nil, "needs ffmpeg (apt install ffmpeg)"))
    func streamingDecodeThroughFFmpegGivesTheSamplesOfLoad() throws {
        // 48 kHz Opus, resampled by ffmpeg to the model's rate.
        let file = TestSupport.repositoryRoot.appendingPathComponent("Tests/Fixtures/ffmpeg/audio/song48k.webm").path
        let whole = try AudioDecoder.load(path: file, sampleRate: 44_100, channels: 2)
        let streamed = try Self.streamed(file, rate: 44_100, channels: 2)
        #expect(streamed.frameCount == whole.frameCount && whole.frameCount > 0)
        #expect(streamed.channels == whole.channels)
    }

    /// An error of the consumer (a full disk under the spool) comes out as it is, not as a
    /// decoding error of the input.
    @Test func consumerErrorsComeOutUnchanged() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/tones.wav"
        try AudioEncoder.write(TestSupport.stereoTones(frames: 200_000), to: path)
        let full = AudioIOError(.noSpace, .encode, path: "/staging/mix.f32", reason: "No space left on device")
        #expect(throws: full) {
            try AudioDecoder.stream(path: path, sampleRate: 44_100, channels: 2) { _ in throw full }
        }
    }

    @Test(arguments: ["wav", "flac", "mp3"], [ClipMode.rescale, .clamp])
    func writingInBlocksGivesTheSameFile(_ ext: String, _ clip: ClipMode) throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        // Louder than full scale, so rescale divides.
        var loud = TestSupport.stereoTones(frames: 150_000)
        for c in 0..<2 { loud.channels[c] = loud.channels[c].map { $0 * 2.7 } }
        let options = EncodeOptions(clip: clip)
        try AudioEncoder.write(loud, to: folder + "/whole.\(ext)", options: options)
        let writer = try AudioFileWriter(path: folder + "/blocks.\(ext)", sampleRate: 44_100, channels: 2,
                                         frames: loud.frameCount, options: options, peak: loud.peak)
        for (l, r) in zip(Self.blocks(loud.channels[0], sizes: [10_000, 1, 4_321]), Self.blocks(loud.channels[1], sizes: [10_000, 1, 4_321])) {
            try writer.write(AudioBuffer(sampleRate: 44_100, channels: [l, r]))
        }
        #expect(!FileManager.default.fileExists(atPath: folder + "/blocks.\(ext)"), "visible before finish")
        try writer.finish()
        let a = try Data(contentsOf: URL(fileURLWithPath: folder + "/whole.\(ext)"))
        let b = try Data(contentsOf: URL(fileURLWithPath: folder + "/blocks.\(ext)"))
        #expect(a == b && a.count > 1000)
        #expect(TestSupport.contents(of: folder) == ["blocks.\(ext)", "whole.\(ext)"])
    }

    @Test func anAbortedWriterLeavesNothing() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        do {
            let writer = try AudioFileWriter(path: folder + "/x.wav", sampleRate: 44_100, channels: 2, frames: 10,
                                             options: EncodeOptions(), peak: 0)
            try writer.write(TestSupport.stereoTones(frames: 10))
        }
        #expect(TestSupport.contents(of: folder).isEmpty)
    }
}
