import Foundation
import Testing
@testable import AudioIO

/// Decoding real and generated files of every supported format, and every failure mode.
@Suite struct AudioDecoderTests {
    @Test(.enabled(if: TestSupport.sharedTestMP3 != nil, "../shared/test-audio/test.mp3 is not there"))
    func decodesSharedMP3() throws {
        let path = try #require(TestSupport.sharedTestMP3)
        let buffer = try AudioDecoder.decode(path: path)
        #expect(buffer.sampleRate == 44100)
        #expect(buffer.channelCount == 2)
        // 20 s; gapless decoding (LAME tag) should make it exact, allow one frame + delay anyway.
        #expect(abs(buffer.frameCount - 20 * 44100) <= 1152 + 1105)
        #expect(buffer.peak > 0.1 && buffer.peak <= 1.01)
        #expect(TestSupport.rms(buffer.channels[0][...]) > 0.01)
        // Real stereo music: the channels differ.
        #expect(TestSupport.maxAbsDifference(buffer.channels[0], buffer.channels[1]) > 0.01)
    }

    /// Every input layout libsndfile must read: write it, decode it, compare with the source.
    /// Lossless layouts and the largest error their quantisation allows: demucs scales by
    /// 2^(n-1) - 1 and truncates, libsndfile reads back dividing by 2^(n-1), so a sample x comes
    /// back within (1 + |x|) / 2^(n-1).
    static let losslessLayouts: [(SndFileLayout, Float)] = [
        (.wavInt16, 2.0 / 32768),
        (.wavInt24, 2.0 / 8388608),
        (.wavInt32, 1e-7),
        (.wavFloat, 0),
        (.flacInt16, 2.0 / 32768),
        (.flacInt24, 2.0 / 8388608),
        (.aiffInt16, 2.0 / 32768),
    ]

    @Test(arguments: losslessLayouts)
    func decodesLosslessFormats(layout: SndFileLayout, tolerance: Float) throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let source = TestSupport.stereoTones(rate: 44100, frames: 10000)
        let path = folder + "/input.audio"
        try AudioEncoder.writeSndFile(source, to: path, layout: layout)

        let decoded = try AudioDecoder.decode(path: path)
        #expect(decoded.sampleRate == 44100)
        #expect(decoded.channelCount == 2)
        #expect(decoded.frameCount == 10000)
        for c in 0..<2 {
            #expect(TestSupport.maxAbsDifference(decoded.channels[c], source.channels[c]) <= tolerance + 1e-7)
        }
    }

    /// Lossy Ogg formats: right rate, channels, length and level (not sample equality).
    static let oggLayouts: [(SndFileLayout, Int)] = [(.oggVorbis, 44100), (.oggOpus, 48000)]

    @Test(arguments: oggLayouts)
    func decodesOggFormats(layout: SndFileLayout, rate: Int) throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let frames = rate  // one second
        let source = TestSupport.stereoTones(rate: rate, frames: frames)
        let path = folder + "/input.ogg"
        try AudioEncoder.writeSndFile(source, to: path, layout: layout)

        let decoded = try AudioDecoder.decode(path: path)
        #expect(decoded.sampleRate == rate)
        #expect(decoded.channelCount == 2)
        #expect(abs(decoded.frameCount - frames) <= 1024)
        let middle = frames / 4..<frames * 3 / 4
        for c in 0..<2 {
            let expected = TestSupport.rms(source.channels[c][middle])
            let got = TestSupport.rms(decoded.channels[c][middle])
            #expect(abs(got - expected) < 0.05 * expected, "channel \(c): rms \(got) vs \(expected)")
        }
    }

    @Test func sixteenBitIsNormalisedBy32768() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/full-scale.wav"
        // 1.0 quantises to 32767 (demucs), which libsndfile reads back as 32767/32768.
        try AudioEncoder.write(AudioBuffer(sampleRate: 8000, channels: [[1, -1, 0.5]]), to: path,
                               options: EncodeOptions(clip: .none))
        let decoded = try AudioDecoder.decode(path: path)
        let expected: [Float] = [32767, -32767, 16383].map { $0 / 32768 }
        #expect(decoded.channels[0] == expected)
    }

    // MARK: - Errors

    @Test func missingFile() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/nope.wav"
        let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: path) }
        #expect(error.kind == .fileNotFound)
        #expect(error.description.contains(path))
        #expect(error.description.contains("No such file"))
    }

    @Test func emptyFile() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/empty.wav"
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: path) }
        #expect(error.kind == .emptyFile)
        #expect(error.description.contains(path) && error.description.contains("empty"))
    }

    @Test func headerOnlyWAVHasNoAudio() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/silent.wav"
        try AudioEncoder.write(AudioBuffer(sampleRate: 44100, channelCount: 2, frameCount: 0), to: path)
        let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: path) }
        #expect(error.kind == .emptyFile)
        #expect(error.description.contains(path) && error.description.contains("no audio frames"))
    }

    @Test func textFileNamedMP3() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/song.mp3"
        try "this is not an mp3, just some text\n".write(toFile: path, atomically: false, encoding: .utf8)
        let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: path) }
        #expect(error.kind == .unsupportedFormat)
        #expect(error.description.contains(path))
        #expect(error.description.contains("not a recognised audio format"))
    }

    @Test func randomBytes() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        var generator = SystemRandomNumberGenerator()
        let junk = Data((0..<8192).map { _ in UInt8.random(in: 0...255, using: &generator) })
        for name in ["junk.wav", "junk.flac", "junk.mp3", "junk.ogg"] {
            let path = folder + "/" + name
            try junk.write(to: URL(fileURLWithPath: path))
            let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: path) }
            #expect(error.description.contains(path))
        }
    }

    /// Writes `frames` frames of stereo tones in the format of `name`'s extension,
    /// lets `damage` edit its bytes and stores them as `folder/name`, whose path it returns.
    static func damagedCopy(in folder: String, _ name: String, frames: Int, _ damage: (inout Data) throws -> Void) throws -> String {
        let good = folder + "/good." + (name as NSString).pathExtension
        try AudioEncoder.write(TestSupport.stereoTones(frames: frames), to: good)
        var data = try Data(contentsOf: URL(fileURLWithPath: good))
        try damage(&data)
        let bad = folder + "/" + name
        try data.write(to: URL(fileURLWithPath: bad))
        return bad
    }

    @Test func wavWithTruncatedHeader() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let bad = try Self.damagedCopy(in: folder, "cut.wav", frames: 1000) { $0 = $0.prefix(30) }
        let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: bad) }
        #expect(error.description.contains(bad))
        #expect(error.kind == .corruptFile || error.kind == .unsupportedFormat)
    }

    @Test func truncatedFLAC() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let bad = try Self.damagedCopy(in: folder, "cut.flac", frames: 44100) { $0 = $0.prefix($0.count / 2) }
        let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: bad) }
        #expect(error.kind == .corruptFile)
        #expect(error.description.contains(bad) && error.description.contains("truncated"))
    }

    @Test func corruptFLACPayload() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let bad = try Self.damagedCopy(in: folder, "damaged.flac", frames: 44100) { data in
            // Overwrite a stretch of audio frames (past the metadata) with a fixed garbage pattern.
            for i in 2000..<6000 { data[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 7) }
        }
        let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: bad) }
        #expect(error.kind == .corruptFile)
        #expect(error.description.contains(bad))
    }

    /// A FLAC whose STREAMINFO declares 4 Hz: resampled to 44.1 kHz, one second of samples
    /// would become three hours of audio to separate (found by HostileFileSweepTests).
    @Test func flacDeclaringAnImplausibleSampleRate() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let bad = try Self.damagedCopy(in: folder, "4hz.flac", frames: 44100) { data in
            // STREAMINFO follows "fLaC" and its 4-byte block header; the sample rate is the top 20
            // bits of the 64-bit big-endian word at its byte 10.
            var word = data[18..<26].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect(word >> 44 == 44100)
            word = word & ((1 << 44) - 1) | 4 << 44
            for i in 0..<8 { data[18 + i] = UInt8(truncatingIfNeeded: word >> (56 - 8 * UInt64(i))) }
        }
        let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: bad) }
        #expect(error.kind == .corruptFile)
        #expect(error.description.contains(bad) && error.description.contains("4 Hz"), "\(error)")
    }

    @Test func directory() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: folder) }
        #expect(error.kind == .notARegularFile)
        #expect(error.description.contains(folder) && error.description.contains("directory"))
    }

    @Test(.enabled(if: geteuid() != 0, "root ignores file permissions"))
    func unreadableFile() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/secret.wav"
        try AudioEncoder.write(TestSupport.stereoTones(frames: 100), to: path)
        #expect(chmod(path, 0o000) == 0)
        let error = try #require(throws: AudioIOError.self) { try AudioDecoder.decode(path: path) }
        #expect(error.kind == .permissionDenied)
        #expect(error.description.contains(path))
    }

    // MARK: - load (decode -> channels -> resample)

    @Test func loadConvertsChannelsThenResamples() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/in.wav"
        try AudioEncoder.write(TestSupport.stereoTones(rate: 48000, frames: 4800), to: path,
                               options: EncodeOptions(asFloat: true))
        let loaded = try AudioDecoder.load(path: path, sampleRate: 44100, channels: 1)
        let manual = try AudioDecoder.decode(path: path).convertingChannels(to: 1).resampled(to: 44100)
        #expect(loaded == manual)
        #expect(loaded.sampleRate == 44100 && loaded.channelCount == 1 && loaded.frameCount == 4410)

        let error = try #require(throws: AudioIOError.self) {
            try AudioDecoder.load(path: path, sampleRate: 44100, channels: 3)
        }
        #expect(error.kind == .unsupportedChannelConversion)
        #expect(error.description.contains(path))
    }
}
