import Foundation
import Testing
@testable import AudioIO
#if canImport(Glibc)
import Glibc
#endif

/// Formats libsndfile does not read, decoded through the system ffmpeg as demucs does, and the
/// ways a child decoder can fail. The expected samples are ffmpeg's own raw float output of
/// demucs's command (`-map 0:a:0 -threads 1 -f f32le -ar RATE`), read back here.
@Suite(.enabled(if: FFmpegDecoder.onPath() != nil, "ffmpeg is not installed (tools/install-deps.sh installs it)"))
struct FFmpegDecoderTests {
    static let ffmpeg = FFmpegDecoder.onPath()!

    static func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ffmpeg.executable)
        process.arguments = ["-nostdin", "-loglevel", "error", "-y"] + arguments
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "ffmpeg \(arguments.joined(separator: " "))")
    }

    /// demucs's decode of `path`: interleaved float32 at `rate`, de-interleaved into `channels`.
    static func demucsDecode(_ path: String, rate: Int, channels: Int, in folder: String) throws -> [[Float]] {
        let raw = folder + "/expected.f32"
        try run(["-i", path, "-map", "0:a:0", "-threads", "1", "-f", "f32le", "-ar", String(rate), raw])
        let data = try Data(contentsOf: URL(fileURLWithPath: raw))
        let floats = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return (0..<channels).map { c in stride(from: c, to: floats.count, by: channels).map { floats[$0] } }
    }

    /// A WAV of two tones to encode into the other formats.
    static func source(_ folder: String, rate: Int = 44100, seconds: Double = 1.5) throws -> String {
        let path = folder + "/source.wav"
        let frames = Int(Double(rate) * seconds)
        try AudioEncoder.write(TestSupport.stereoTones(rate: rate, frames: frames), to: path,
                               options: EncodeOptions(format: .wav))
        return path
    }

    @Test(arguments: [
        ("song.m4a", ["-c:a", "aac"], 44100),
        ("song.webm", ["-c:a", "libopus"], 48000),
        ("video.mp4", ["-c:a", "aac"], 44100),
    ])
    func decodesAsDemucsDoes(_ name: String, _ codec: [String], _ sourceRate: Int) throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/" + name
        try Self.run(["-i", try Self.source(folder, rate: sourceRate)] + codec + [path])
        let audio = try AudioDecoder.load(path: path, sampleRate: 44100, channels: 2)
        let expected = try Self.demucsDecode(path, rate: 44100, channels: 2, in: folder)
        #expect(audio.sampleRate == 44100)
        #expect(audio.channelCount == 2)
        #expect(audio.frameCount == expected[0].count && audio.frameCount > 40_000)
        #expect(audio.channels == expected, "the samples are ffmpeg's, bit for bit")
    }

    @Test func takesTheFirstOfTwoAudioStreamsAndConvertsChannelsByDemucsRule() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let mono = folder + "/mono.wav", other = folder + "/other.wav", path = folder + "/two.mkv"
        try AudioEncoder.write(AudioBuffer(sampleRate: 44100, channels: [TestSupport.sine(frequency: 440, rate: 44100, frames: 44100)]),
                               to: mono, options: EncodeOptions(format: .wav))
        try AudioEncoder.write(TestSupport.stereoTones(), to: other, options: EncodeOptions(format: .wav))
        try Self.run(["-i", mono, "-i", other, "-map", "0:a", "-map", "1:a", "-c:a", "flac", path])
        let audio = try AudioDecoder.load(path: path, sampleRate: 44100, channels: 2)
        let first = try Self.demucsDecode(path, rate: 44100, channels: 1, in: folder)[0]
        // demucs: a mono source is repeated on both channels.
        #expect(audio.channels == [first, first])
    }

    /// No file name reaches ffmpeg's command line: a name it would read as a protocol or an
    /// option is just a name, and the daemon's `/proc/self/fd/N` of its open input works.
    @Test func oddNamesAndOpenFileDescriptors() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let plain = folder + "/song.m4a", odd = folder + "/http:-i x.m4a"
        try Self.run(["-i", try Self.source(folder), "-c:a", "aac", plain])
        try FileManager.default.copyItem(atPath: plain, toPath: odd)
        let expected = try Self.demucsDecode(plain, rate: 44100, channels: 2, in: folder)
        #expect(try AudioDecoder.load(path: odd, sampleRate: 44100, channels: 2).channels == expected)
        let fd = open(plain, O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(try AudioDecoder.load(path: "/proc/self/fd/\(fd)", sampleRate: 44100, channels: 2).channels == expected)
    }

    @Test func withoutFFmpegTheReasonSaysHowToInstallIt() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let path = folder + "/song.m4a"
        try Self.run(["-i", try Self.source(folder), "-c:a", "aac", path])
        let error = try #require(throws: AudioIOError.self) {
            _ = try AudioDecoder.load(path: path, sampleRate: 44100, channels: 2, ffmpeg: nil)
        }
        #expect(error.kind == .unsupportedFormat)
        #expect(error.description.contains(path) && error.description.contains("apt install ffmpeg"))
    }

    @Test func notAudioAndTruncatedFilesFailWithAReason() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let text = folder + "/notes.m4a"
        try Data("these are not the droids\n".utf8).write(to: URL(fileURLWithPath: text))
        let notAudio = try #require(throws: AudioIOError.self) {
            _ = try AudioDecoder.load(path: text, sampleRate: 44100, channels: 2)
        }
        #expect(notAudio.kind == .unsupportedFormat && notAudio.description.contains("ffmpeg"))

        let whole = folder + "/song.m4a", cut = folder + "/cut.m4a"
        try Self.run(["-i", try Self.source(folder), "-c:a", "aac", whole])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: whole))
        try bytes.prefix(bytes.count / 3).write(to: URL(fileURLWithPath: cut))
        let truncated = try #require(throws: AudioIOError.self) {
            _ = try AudioDecoder.load(path: cut, sampleRate: 44100, channels: 2)
        }
        #expect(truncated.description.contains(cut))
    }

    /// Stand-ins for a broken ffmpeg: a script that writes garbage, one that crashes, one that hangs.
    static func script(_ folder: String, _ name: String, _ body: String) throws -> FFmpegDecoder {
        let path = folder + "/" + name
        try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return FFmpegDecoder(executable: path, timeLimit: 2)
    }

    @Test func aChildThatWritesGarbageCrashesOrHangsFailsThisDecodeOnly() throws {
        let folder = try TestSupport.makeTemporaryFolder()
        defer { TestSupport.remove(folder) }
        let input = folder + "/song.m4a"
        try Data("not audio".utf8).write(to: URL(fileURLWithPath: input))
        let cases: [(FFmpegDecoder, String)] = [
            (try Self.script(folder, "garbage", "head -c 100000 /dev/urandom"), "not the float WAV"),
            (try Self.script(folder, "crash", "kill -SEGV $$"), "crashed"),
            (try Self.script(folder, "hang", "exec sleep 30"), "did not finish within 2 s"),
        ]
        for (decoder, reason) in cases {
            let started = Date()
            let error = try #require(throws: AudioIOError.self) {
                _ = try AudioDecoder.load(path: input, sampleRate: 44100, channels: 2, ffmpeg: decoder)
            }
            #expect(error.description.contains(reason), "\(decoder.executable): \(error)")
            #expect(Date().timeIntervalSince(started) < 10)
        }
    }
}
