import Foundation
import Testing
@testable import AudioIO

/// Writing stems: demucs quantisation, round trips, MP3 with its LAME tag, atomic failure handling.
@Suite struct AudioEncoderTests {
    // MARK: - Round trips

    @Test func wav16RoundTrip() throws {
        try roundTrip(name: "stem.wav", options: EncodeOptions(clip: .none), tolerance: 2.0 / 32768)
    }

    @Test func wav24RoundTrip() throws {
        try roundTrip(name: "stem.wav", options: EncodeOptions(clip: .none, bitsPerSample: 24), tolerance: 2.0 / 8388608)
    }

    @Test func wavFloatRoundTripIsExact() throws {
        try roundTrip(name: "stem.wav", options: EncodeOptions(clip: .none, asFloat: true), tolerance: 0)
    }

    @Test func flac16RoundTrip() throws {
        try roundTrip(name: "stem.flac", options: EncodeOptions(clip: .none), tolerance: 2.0 / 32768)
    }

    @Test func flac24RoundTrip() throws {
        try roundTrip(name: "stem.FLAC", options: EncodeOptions(clip: .none, bitsPerSample: 24), tolerance: 2.0 / 8388608)
    }

    private func roundTrip(name: String, options: EncodeOptions, tolerance: Float) throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let source = TestSupport.stereoTones(rate: 48000, frames: 12345)
        let path = folder + "/" + name
        try AudioEncoder.write(source, to: path, options: options)
        let decoded = try AudioDecoder.decode(path: path)
        #expect(decoded.sampleRate == 48000)
        #expect(decoded.channelCount == 2)
        #expect(decoded.frameCount == 12345)
        for c in 0..<2 {
            #expect(TestSupport.maxAbsDifference(decoded.channels[c], source.channels[c]) <= tolerance)
        }
        // Only the final file remains: the temporary was renamed, not copied.
        #expect(TestSupport.contents(of: folder) == [name])
    }

    @Test func monoAndManyChannelsRoundTrip() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let channels = (0..<6).map { TestSupport.sine(frequency: 100 * Double($0 + 1), rate: 22050, frames: 2000, amplitude: 0.1 * Double($0 + 1)) }
        for count in [1, 6] {
            let source = AudioBuffer(sampleRate: 22050, channels: Array(channels.prefix(count)))
            let path = folder + "/c\(count).wav"
            try AudioEncoder.write(source, to: path, options: EncodeOptions(clip: .none, asFloat: true))
            #expect(try AudioDecoder.decode(path: path) == source)
        }
    }

    // MARK: - Quantisation semantics

    /// Values chosen to show demucs's `(clamp(x) * 32767).astype(int16)`: scale by 32767,
    /// truncate toward zero (not round), clamp out-of-range values, NaN becomes 0.
    static let int16Cases: [(Float, Int16)] = [
        (0, 0), (0.5, 16383), (-0.5, -16383), (1, 32767), (-1, -32767),
        (1.5, 32767), (-7, -32767), (0.7, 22936), (-0.7, -22936),
        (0.00004, 1), (-0.00004, -1), (0.00003, 0), (.nan, 0),
    ]

    @Test func int16TruncatesLikeNumpy() throws {
        for (x, expected) in Self.int16Cases {
            #expect(PCMQuantizer.int16(x) == expected, "x = \(x)")
        }
        // The same values end up verbatim in the WAV data chunk.
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/q.wav"
        let buffer = AudioBuffer(sampleRate: 44100, channels: [Self.int16Cases.map(\.0)])
        try AudioEncoder.write(buffer, to: path, options: EncodeOptions(clip: .none))
        let data = try #require(try TestSupport.wavChunk("data", in: path))
        let stored = stride(from: 0, to: data.count, by: 2).map {
            Int16(bitPattern: UInt16(data[data.startIndex + $0]) | UInt16(data[data.startIndex + $0 + 1]) << 8)
        }
        #expect(stored == Self.int16Cases.map(\.1))
    }

    @Test func int24TruncatesAndStoresTopBytes() throws {
        #expect(PCMQuantizer.int24(0.5) == 4194303)
        #expect(PCMQuantizer.int24(-1.2) == -8388607)
        #expect(PCMQuantizer.int24(0.3) == 2516582)  // 0.3f * 8388607 = 2516582.0xx, truncated
        let values: [Float] = [0.5, -0.5, 1, -1, 0.3, 1e-7]
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/q24.wav"
        try AudioEncoder.write(AudioBuffer(sampleRate: 44100, channels: [values]), to: path,
                               options: EncodeOptions(clip: .none, bitsPerSample: 24))
        let data = try #require(try TestSupport.wavChunk("data", in: path))
        #expect(data.count == values.count * 3)
        let stored: [Int32] = stride(from: 0, to: data.count, by: 3).map {
            let b = data.startIndex + $0
            let raw = Int32(data[b]) << 8 | Int32(data[b + 1]) << 16 | Int32(data[b + 2]) << 24
            return raw >> 8  // sign-extend the 24-bit value
        }
        #expect(stored == values.map(PCMQuantizer.int24))
    }

    @Test func floatWAVClampsButDoesNotRescale() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/f.wav"
        let values: [Float] = [0.25, -0.75, 1.5, -3, 0.123456789]
        try AudioEncoder.write(AudioBuffer(sampleRate: 44100, channels: [values]), to: path,
                               options: EncodeOptions(clip: .none, asFloat: true))
        let expected: [Float] = [0.25, -0.75, 1, -1, 0.123456789]
        #expect(try AudioDecoder.decode(path: path).channels[0] == expected)
        let fmt = try #require(try TestSupport.wavChunk("fmt ", in: path))
        #expect(fmt[fmt.startIndex] == 3)  // WAVE_FORMAT_IEEE_FLOAT
        #expect(try TestSupport.wavChunk("PEAK", in: path) == nil)
    }

    // MARK: - Clip modes

    @Test func clipModes() {
        let loud = AudioBuffer(sampleRate: 8000, channels: [[2, -1, 0.5], [0, 1.5, -0.25]])
        let rescaled = ClipMode.rescale.apply(to: loud)
        let divisor = Float(1.01) * 2
        #expect(rescaled.channels == loud.channels.map { $0.map { $0 / divisor } })
        #expect(rescaled.peak < 1)

        let quiet = AudioBuffer(sampleRate: 8000, channels: [[0.9, -0.5]])
        #expect(ClipMode.rescale.apply(to: quiet) == quiet)  // 1.01 * 0.9 < 1: untouched

        #expect(ClipMode.clamp.apply(to: loud).channels == [[0.99, -0.99, 0.5], [0, 0.99, -0.25]])
        #expect(ClipMode.none.apply(to: loud) == loud)
        #expect(abs(ClipMode.tanh.apply(to: loud).channels[0][0] - Float(tanh(2.0))) < 1e-6)
    }

    @Test func defaultRescaleAppliesBeforeQuantising() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/loud.wav"
        try AudioEncoder.write(AudioBuffer(sampleRate: 44100, channels: [[3, -1.5, 0]]), to: path)
        let decoded = try AudioDecoder.decode(path: path).channels[0]
        let expected = [Float(3), -1.5, 0].map { Float(PCMQuantizer.int16($0 / (Float(1.01) * 3))) / 32768 }
        #expect(decoded == expected)
    }

    // MARK: - MP3

    @Test(arguments: [(2, 44100), (1, 44100), (2, 48000)])
    func mp3RoundTrip(channelCount: Int, rate: Int) throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let frames = 2 * rate + 123
        let source = AudioBuffer(sampleRate: rate, channels: Array(TestSupport.stereoTones(rate: rate, frames: frames).channels.prefix(channelCount)))
        let path = folder + "/stem.mp3"
        try AudioEncoder.write(source, to: path, options: EncodeOptions(mp3Bitrate: 320, mp3Preset: 2))
        let decoded = try AudioDecoder.decode(path: path)
        #expect(decoded.sampleRate == rate)
        #expect(decoded.channelCount == channelCount)
        // Within one MP3 frame plus the encoder delay; the LAME tag should make it exact.
        #expect(abs(decoded.frameCount - frames) <= 1152 + 576)
        // Gapless: the decoded audio lines up with the input sample for sample (no delay shift).
        let middle = frames / 4..<frames * 3 / 4
        for c in 0..<channelCount {
            var error: Float = 0
            for i in middle { error = max(error, abs(decoded.channels[c][i] - source.channels[c][i])) }
            #expect(error < 0.02, "channel \(c) differs by \(error)")
        }
        #expect(TestSupport.contents(of: folder) == ["stem.mp3"])
    }

    @Test func mp3StartsWithLameInfoTag() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/tagged.mp3"
        try AudioEncoder.write(TestSupport.stereoTones(frames: 44100), to: path)
        let head = try Data(contentsOf: URL(fileURLWithPath: path)).prefix(1000)
        #expect(head.first == 0xFF)  // starts with an MPEG frame, no ID3 tag
        // CBR files carry an "Info" (Xing) frame followed by the LAME extension with delay/padding.
        #expect(head.range(of: Data("Info".utf8)) != nil)
        #expect(head.range(of: Data("LAME".utf8)) != nil || head.range(of: Data("Lavc".utf8)) != nil)
    }

    @Test func mp3RejectsBadSettings() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/bad.mp3"
        let stereo = TestSupport.stereoTones(frames: 1000)
        let cases: [(AudioBuffer, EncodeOptions)] = [
            (AudioBuffer(sampleRate: 44100, channelCount: 3, frameCount: 100), EncodeOptions()),
            (AudioBuffer(sampleRate: 96000, channelCount: 2, frameCount: 100), EncodeOptions()),
            (stereo, EncodeOptions(mp3Preset: 9)),
            (stereo, EncodeOptions(mp3Bitrate: 1000)),
        ]
        for (buffer, options) in cases {
            let error = try #require(throws: AudioIOError.self) { try AudioEncoder.write(buffer, to: path, options: options) }
            #expect(error.kind == .invalidArgument)
            #expect(error.description.contains(path))
        }
        #expect(TestSupport.contents(of: folder).isEmpty)
    }

    // MARK: - Failures leave nothing behind

    @Test func missingOutputFolder() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/does/not/exist/stem.wav"
        let error = try #require(throws: AudioIOError.self) { try AudioEncoder.write(TestSupport.stereoTones(frames: 10), to: path) }
        #expect(error.kind == .fileNotFound)
        #expect(error.description.contains(path) && error.description.contains("No such file"))
        #expect(TestSupport.contents(of: folder).isEmpty)
    }

    @Test func outputFolderIsAFile() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let blocker = folder + "/blocker"
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data("x".utf8)))
        let path = blocker + "/stem.flac"
        let error = try #require(throws: AudioIOError.self) { try AudioEncoder.write(TestSupport.stereoTones(frames: 10), to: path) }
        #expect(error.description.contains(path) && error.description.contains("Not a directory"))
        #expect(TestSupport.contents(of: folder) == ["blocker"])
    }

    @Test(.enabled(if: geteuid() != 0, "root ignores directory permissions"))
    func readOnlyOutputFolder() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        #expect(chmod(folder, 0o555) == 0)
        for name in ["stem.wav", "stem.flac", "stem.mp3"] {
            let path = folder + "/" + name
            let error = try #require(throws: AudioIOError.self) { try AudioEncoder.write(TestSupport.stereoTones(frames: 10), to: path) }
            #expect(error.kind == .permissionDenied)
            #expect(error.description.contains(path) && error.description.contains("Permission denied"))
        }
        #expect(TestSupport.contents(of: folder).isEmpty)
    }

    @Test func outputPathIsADirectory() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/taken.wav"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        let error = try #require(throws: AudioIOError.self) { try AudioEncoder.write(TestSupport.stereoTones(frames: 10), to: path) }
        #expect(error.kind == .notARegularFile)
        #expect(TestSupport.contents(of: folder) == ["taken.wav"])
    }

    /// libsndfile refuses the stream only after the temporary file exists: it must be removed,
    /// and an existing file at the destination must survive untouched.
    @Test func encoderFailureRemovesTemporaryAndKeepsOldFile() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/stem.flac"
        try Data("previous".utf8).write(to: URL(fileURLWithPath: path))
        let tooFast = AudioBuffer(sampleRate: 1_000_000, channelCount: 2, frameCount: 100)
        let error = try #require(throws: AudioIOError.self) { try AudioEncoder.write(tooFast, to: path) }
        #expect(error.description.contains(path))
        #expect(TestSupport.contents(of: folder) == ["stem.flac"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data("previous".utf8))
    }

    @Test func overwritesExistingFile() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/stem.wav"
        try Data("old".utf8).write(to: URL(fileURLWithPath: path))
        try AudioEncoder.write(TestSupport.stereoTones(frames: 100), to: path)
        #expect(try AudioDecoder.decode(path: path).frameCount == 100)
        #expect(TestSupport.contents(of: folder) == ["stem.wav"])
    }

    @Test func rejectsBadArguments() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let stereo = TestSupport.stereoTones(frames: 10)
        let cases: [(AudioBuffer, String, EncodeOptions)] = [
            (stereo, folder + "/x.ogg", EncodeOptions()),
            (stereo, folder + "/noextension", EncodeOptions()),
            (stereo, folder + "/x.wav", EncodeOptions(bitsPerSample: 32)),
            (stereo, folder + "/x.flac", EncodeOptions(bitsPerSample: 8)),
            (AudioBuffer(sampleRate: 44100, channels: [[0, 1], [0]]), folder + "/x.wav", EncodeOptions()),
            (AudioBuffer(sampleRate: 0, channels: [[0]]), folder + "/x.wav", EncodeOptions()),
            (AudioBuffer(sampleRate: 44100, channels: []), folder + "/x.wav", EncodeOptions()),
        ]
        for (buffer, path, options) in cases {
            let error = try #require(throws: AudioIOError.self) { try AudioEncoder.write(buffer, to: path, options: options) }
            #expect(error.kind == .invalidArgument, "\(error)")
            #expect(error.description.contains(path))
        }
        #expect(TestSupport.contents(of: folder).isEmpty)
    }

    @Test func explicitFormatOverridesExtension() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/stem.bin"
        try AudioEncoder.write(TestSupport.stereoTones(frames: 500), to: path, options: EncodeOptions(format: .flac))
        let head = try Data(contentsOf: URL(fileURLWithPath: path)).prefix(4)
        #expect(head == Data("fLaC".utf8))
    }
}
