import AudioIO
import CSystemShims
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's decoder in a child process (`demucsd-decode` of this build): the same samples
/// and errors as decoding in process, and a crash, a hang, a CPU or memory limit of the child
/// as a decode failure with its reason.
@Suite struct IsolatedDecoderTests {
    static var helper: String { E2EPaths.products + "/demucsd-decode" }
    static let ffmpeg = FFmpegDecoder.onPath()

    static func decoder(stall: Double = 30, cpu: Int = 600, memory: Int = 4096) -> IsolatedDecoder {
        IsolatedDecoder(helper: helper, ffmpeg: ffmpeg?.executable, cpuSeconds: cpu, memoryMB: memory, stallSeconds: stall)
    }

    /// The samples of both ways of decoding, block boundaries aside.
    static func samples(_ path: String, isolated: Bool) throws -> [[Float]] {
        var rows: [[Float]] = [[], []]
        let take: (AudioBuffer) throws -> Void = { block in for c in 0..<2 { rows[c] += block.channels[c] } }
        if isolated {
            try decoder().stream(path: path, sampleRate: 44_100, channels: 2, into: take)
        } else {
            try AudioDecoder.stream(path: path, sampleRate: 44_100, channels: 2, ffmpeg: ffmpeg, into: take)
        }
        return rows
    }

    static func folder() throws -> String {
        let path = NSTemporaryDirectory() + "demucsd-isolated-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func theChildGivesTheSamplesOfTheInProcessDecoder() throws {
        // A 48 kHz mono FLAC: channel conversion and resampling happen in the child too.
        for fixture in ["cut_a.flac", "mono48k.flac"] {
            let path = E2EPaths.fixtureAudio + "/" + fixture
            let inProcess = try Self.samples(path, isolated: false)
            let child = try Self.samples(path, isolated: true)
            #expect(child[0].count == inProcess[0].count && child[0].count > 0, "\(fixture)")
            #expect(child == inProcess, "\(fixture): the samples differ")
        }
    }

    @Test(.enabled(if: IsolatedDecoderTests.ffmpeg != nil, "needs ffmpeg (apt install ffmpeg)"))
    func filesOnlyFFmpegReadsAreDecodedInTheChildToo() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let m4a = folder + "/song.m4a"
        let made = try runCommand(try #require(Self.ffmpeg).executable,
                                  ["-loglevel", "error", "-i", E2EPaths.fixtureAudio + "/cut_b.flac", "-c:a", "aac", m4a])
        try #require(made.status == 0, "\(made.stderr)")
        #expect(try Self.samples(m4a, isolated: true) == Self.samples(m4a, isolated: false))
    }

    @Test func decodeErrorsComeBackAsTheSameErrors() throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/noise.wav"
        try Data("RIFF but not really a wave file".utf8).write(to: URL(fileURLWithPath: path))
        let inProcess = #expect(throws: AudioIOError.self) { try Self.samples(path, isolated: false) }
        let child = #expect(throws: AudioIOError.self) { try Self.samples(path, isolated: true) }
        #expect(child?.kind == inProcess?.kind && child?.reason == inProcess?.reason,
                "child: \(String(describing: child)); in process: \(String(describing: inProcess))")
        #expect(child?.path == path)
    }

    /// The faults of the helper's test build (DEMUCSD_DECODER_TEST_FAULT, keyed on the file
    /// name so that no other test's decode is touched).
    @Test(arguments: [
        ("crash", "the decoder crashed on signal 11 (Segmentation fault)"),
        ("hang", "the decoder made no progress for 2 s and was stopped"),
        ("spin", "the decoder used up its CPU time limit of 1 s (decoder_cpu_seconds) and was stopped"),
    ])
    func aChildThatMisbehavesFailsTheDecodeWithTheReason(fault: String, reason: String) throws {
        try Self.misbehave(fault: fault, reason: reason)
    }

    /// Apart from the others: the helper of a sanitizer build runs without RLIMIT_AS.
    @Test(.enabled(if: demucsd_sanitizer_reserves_address_space() == 0,
                   "a sanitizer build cannot set RLIMIT_AS (its shadow memory is terabytes of address space)"))
    func aChildThatTakesTooMuchMemoryFailsTheDecode() throws {
        try Self.misbehave(fault: "alloc", reason: "the decoder crashed on signal")
    }

    static func misbehave(fault: String, reason: String) throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let name = "fault-\(fault)-me.flac"
        try FileManager.default.copyItem(atPath: E2EPaths.fixtureAudio + "/cut_a.flac", toPath: folder + "/" + name)
        // Only "spin" is meant to meet the CPU limit: filling 512 MB (the debug build writes it a
        // byte at a time) can take more than a second of CPU on a loaded machine, and "alloc"
        // must meet the memory limit first.
        var decoder = decoder(stall: fault == "hang" ? 2 : 20, cpu: fault == "spin" ? 1 : 10, memory: 512)
        decoder.environment = ["DEMUCSD_DECODER_TEST_FAULT": "\(fault):fault-\(fault)-me"]
        // Under tools/sanitize.sh the sanitizer would catch the SIGSEGV and exit instead.
        if fault == "crash" { decoder.environment.merge(["ASAN_OPTIONS": "handle_segv=0", "TSAN_OPTIONS": "handle_segv=0"]) { $1 } }
        let started = Date()
        let error = #expect(throws: AudioIOError.self) {
            try decoder.stream(path: folder + "/" + name, sampleRate: 44_100, channels: 2) { _ in }
        }
        #expect(error?.kind == .corruptFile && error?.reason.hasPrefix(reason) == true, "\(String(describing: error))")
        #expect(Date().timeIntervalSince(started) < 15)
    }
}
