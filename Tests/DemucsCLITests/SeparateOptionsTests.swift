import AudioIO
import Foundation
import Testing

/// The options of `demucsctl separate` (those of `python -m demucs.separate`), each checked on
/// the real binary's output files.
@Suite struct SeparateOptionsTests {
    typealias S = SeparateSupport

    /// Deterministic float output with no clip processing, so stems can be compared numerically.
    static let exact = ["--shifts", "0", "--float32", "--clip-mode", "none"]

    /// A temporary folder with a 1 s stereo 44.1 kHz input `song.wav`.
    struct Setup {
        let dir: String
        let track: String
        let input: AudioBuffer
        var out: String { dir + "/out" }
        var trackFolder: String { out + "/tiny4/song" }

        init(frames: Int = 44100) throws {
            dir = try TestSupport.temporaryFolder()
            track = dir + "/song.wav"
            input = try S.writeInput(track, frames: frames)
        }

        func remove() { try? FileManager.default.removeItem(atPath: dir) }

        func files(_ sub: String = "tiny4/song") -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: out + "/" + sub)) ?? []).sorted()
        }
    }

    // MARK: - Default run and layout

    @Test func defaultRunWritesFourStemsWithProgress() throws {
        let s = try Setup()
        defer { s.remove() }
        let run = try S.separate(["-o", s.out, s.track])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(s.files() == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"])
        #expect(run.stdout.contains("Separated tracks will be stored in \(s.out)/tiny4"))
        #expect(run.stdout.contains("Separating track \(s.track)"))
        // stderr is a pipe, not a terminal: plain progress lines, no carriage returns.
        #expect(run.stderr.contains("song.wav: 100%"), "stderr: \(run.stderr)")
        #expect(!run.stderr.contains("\r"))
        #expect(S.errorLines(run).isEmpty)
        for (name, stem) in try S.stems(in: s.trackFolder) {
            #expect(stem.frameCount == s.input.frameCount, "\(name)")
            #expect(stem.channelCount == 2 && stem.sampleRate == 44100, "\(name)")
            #expect(try S.wavFormat(s.trackFolder + "/\(name).wav") == .init(format: 1, channels: 2, sampleRate: 44100, bitsPerSample: 16))
            #expect(stem.peak > 0.001, "\(name) is silent")
        }
    }

    @Test func outDefaultsToSeparatedInTheWorkingDirectory() throws {
        let s = try Setup(frames: 22050)
        defer { s.remove() }
        let cwd = s.dir + "/work"
        try FileManager.default.createDirectory(atPath: cwd, withIntermediateDirectories: true)
        let run = try S.separate(["--shifts", "0", s.track], cwd: cwd)
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(S.files(under: cwd) == ["separated/tiny4/song/bass.wav", "separated/tiny4/song/drums.wav",
                                        "separated/tiny4/song/other.wav", "separated/tiny4/song/vocals.wav"])
    }

    @Test func filenameTemplate() throws {
        let s = try Setup(frames: 22050)
        defer { s.remove() }
        let run = try S.separate(["-o", s.out, "--shifts", "0", "--filename", "{stem}_{track}.{trackext}.{ext}", s.track])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(S.files(under: s.out) == ["tiny4/bass_song.wav.wav", "tiny4/drums_song.wav.wav",
                                          "tiny4/other_song.wav.wav", "tiny4/vocals_song.wav.wav"])
    }

    @Test func listModels() throws {
        let run = try TestSupport.run(["separate", "--list-models", "--repo", S.models])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        for name in ["tiny4", "tiny6", "bag2"] {
            #expect(run.stdout.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == name },
                    "\(name) not listed:\n\(run.stdout)")
        }
    }

    @Test func helpMentionsEveryFlagOfDemucsSeparate() throws {
        let run = try TestSupport.run(["separate", "--help"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let flags = ["-n", "--repo", "-o", "--filename", "--shifts", "--overlap", "--no-split", "--segment",
                     "--two-stems", "--other-method", "--int24", "--float32", "--clip-mode", "--flac", "--mp3",
                     "--mp3-bitrate", "--mp3-preset", "-j", "-v", "-d", "--list-models"]
        let words = Set(run.stdout.split(whereSeparator: { " ,\n\t".contains($0) }).map(String.init))
        for flag in flags {
            #expect(words.contains(flag), "--help does not mention \(flag)")
        }
        #expect(run.stdout.contains("64 bad usage"))
    }

    @Test func bagOfModels() throws {
        let s = try Setup(frames: 22050)
        defer { s.remove() }
        let run = try S.separate(["-o", s.out, "--shifts", "0", s.track], model: "bag2")
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("Selected model is a bag of 2 models."))
        #expect(s.files("bag2/song") == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"])
    }

    @Test func sixStemModel() throws {
        let s = try Setup(frames: 22050)
        defer { s.remove() }
        let run = try S.separate(["-o", s.out, "--shifts", "0", s.track], model: "tiny6")
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(s.files("tiny6/song").count == 6, "\(s.files("tiny6/song"))")
    }

    // MARK: - Two stems

    @Test(arguments: [("add", ["no_vocals.wav", "vocals.wav"]),
                      ("minus", ["minus_vocals.wav", "vocals.wav"]),
                      ("none", ["vocals.wav"])])
    func twoStemsFiles(_ method: String, _ expected: [String]) throws {
        let s = try Setup(frames: 22050)
        defer { s.remove() }
        let run = try S.separate(["-o", s.out, "--shifts", "0", "--two-stems", "vocals", "--other-method", method, s.track])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(s.files() == expected)
    }

    @Test func twoStemsMatchTheFullSeparation() throws {
        let s = try Setup()
        defer { s.remove() }
        let full = try S.separate(["-o", s.out + "/full"] + Self.exact + [s.track])
        let add = try S.separate(["-o", s.out + "/add", "--two-stems", "vocals"] + Self.exact + [s.track])
        let minus = try S.separate(["-o", s.out + "/minus", "--two-stems", "vocals", "--other-method", "minus"] + Self.exact + [s.track])
        for run in [full, add, minus] { #expect(run.status == 0, "stderr: \(run.stderr)") }

        let stems = try S.stems(in: s.out + "/full/tiny4/song")
        let two = try S.stems(in: s.out + "/add/tiny4/song")
        let minusStems = try S.stems(in: s.out + "/minus/tiny4/song")
        let drums = try #require(stems["drums"]), bass = try #require(stems["bass"])
        let other = try #require(stems["other"]), vocals = try #require(stems["vocals"])
        let noVocals = try #require(two["no_vocals"]), minusVocals = try #require(minusStems["minus_vocals"])

        var sum = drums.channels
        for c in 0..<2 {
            for i in 0..<drums.frameCount {
                let rest: Float = bass.channels[c][i] + other.channels[c][i]
                sum[c][i] += rest
            }
        }
        #expect(noVocals.frameCount == drums.frameCount)
        #expect(S.maxDifference(noVocals.channels, sum) <= 1e-5)
        #expect(S.maxDifference(try #require(two["vocals"]).channels, vocals.channels) <= 1e-5)
        #expect(S.maxDifference(try #require(minusStems["vocals"]).channels, vocals.channels) <= 1e-5)
        var mixMinusVocals = s.input.channels
        for c in 0..<2 { for i in 0..<vocals.frameCount { mixMinusVocals[c][i] -= vocals.channels[c][i] } }
        #expect(S.maxDifference(minusVocals.channels, mixMinusVocals) <= 1e-5)
        // The stems are not trivially equal to each other.
        #expect(S.maxDifference(noVocals.channels, vocals.channels) > 1e-3)
    }

    // MARK: - Output formats

    @Test(arguments: [([String](), 1, 16), (["--int24"], 1, 24), (["--float32"], 3, 32)])
    func wavSampleFormat(_ flags: [String], _ formatTag: Int, _ bits: Int) throws {
        let s = try Setup(frames: 22050)
        defer { s.remove() }
        let run = try S.separate(["-o", s.out, "--shifts", "0"] + flags + [s.track])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(s.files() == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"])
        for file in s.files() {
            let path = s.trackFolder + "/" + file
            #expect(try S.wavFormat(path) == .init(format: formatTag, channels: 2, sampleRate: 44100, bitsPerSample: bits), "\(file)")
            #expect(try AudioDecoder.decode(path: path).frameCount == 22050)
        }
    }

    @Test func int24KeepsMoreResolutionThanInt16() throws {
        let s = try Setup(frames: 22050)
        defer { s.remove() }
        for (name, flags) in [("f32", ["--float32"]), ("i16", []), ("i24", ["--int24"])] {
            let run = try S.separate(["-o", s.out + "/" + name, "--shifts", "0", "--clip-mode", "none"] + flags + [s.track])
            #expect(run.status == 0, "stderr: \(run.stderr)")
        }
        let f32 = try AudioDecoder.decode(path: s.out + "/f32/tiny4/song/vocals.wav")
        let i16 = try AudioDecoder.decode(path: s.out + "/i16/tiny4/song/vocals.wav")
        let i24 = try AudioDecoder.decode(path: s.out + "/i24/tiny4/song/vocals.wav")
        let e16 = S.maxDifference(i16.channels, f32.channels), e24 = S.maxDifference(i24.channels, f32.channels)
        #expect(e16 <= 2.0 / 32768 && e16 > 0)
        #expect(e24 <= 2.0 / 8_388_608)
    }

    @Test func flacOutput() throws {
        let s = try Setup(frames: 22050)
        defer { s.remove() }
        let run = try S.separate(["-o", s.out, "--shifts", "0", "--flac", s.track])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(s.files() == ["bass.flac", "drums.flac", "other.flac", "vocals.flac"])
        for file in s.files() {
            let path = s.trackFolder + "/" + file
            let head = try #require(FileHandle(forReadingAtPath: path)).readData(ofLength: 4)
            #expect(head == Data("fLaC".utf8))
            let stem = try AudioDecoder.decode(path: path)
            #expect(stem.frameCount == 22050 && stem.channelCount == 2 && stem.sampleRate == 44100)
        }
    }

    @Test func mp3Output() throws {
        let s = try Setup(frames: 66150)
        defer { s.remove() }
        let run = try S.separate(["-o", s.out, "--shifts", "0", "--mp3", "--mp3-bitrate", "128", "--mp3-preset", "7", s.track])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(s.files() == ["bass.mp3", "drums.mp3", "other.mp3", "vocals.mp3"])
        for file in s.files() {
            let path = s.trackFolder + "/" + file
            let stem = try AudioDecoder.decode(path: path)
            #expect(abs(stem.frameCount - 66150) <= 1152, "\(file): \(stem.frameCount) frames")
            #expect(stem.channelCount == 2 && stem.sampleRate == 44100)
            // Constant 128 kbit/s for 1.5 s is 24,000 bytes of frames (plus a header frame and padding).
            let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            #expect((20_000...32_000).contains(size), "\(file): \(size) bytes")
        }
    }

    // MARK: - Processing options

    @Test func clipModeRescaleKeepsPeaksBelowOne() throws {
        let dir = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // An input well beyond full scale (float WAV): its stems are beyond full scale too.
        var loud = S.synth(frames: 22050, channels: 2, sampleRate: 44100)
        loud.channels = loud.channels.map { $0.map { $0 * 8 } }
        let track = dir + "/loud.wav"
        try S.writeRawFloatWAV(loud, to: track)
        let out = dir + "/out"
        let clipped = try S.separate(["-o", out + "/none", "--shifts", "0", "--float32", "--clip-mode", "none", track])
        let rescaled = try S.separate(["-o", out + "/rescale", "--shifts", "0", "--float32", "--clip-mode", "rescale", track])
        #expect(clipped.status == 0 && rescaled.status == 0, "stderr: \(clipped.stderr)\(rescaled.stderr)")
        let raw = try S.stems(in: out + "/none/tiny4/loud")
        let scaled = try S.stems(in: out + "/rescale/tiny4/loud")
        #expect(raw.count == 4 && scaled.count == 4)
        // Without a clip mode, the float writer's [-1, 1] clamp shows: some stem hits full scale.
        #expect(raw.values.contains { $0.peak >= 0.9999 }, "\(raw.mapValues(\.peak))")
        for (name, stem) in scaled {
            #expect(stem.peak < 1 && stem.peak > 0.5, "\(name): peak \(stem.peak)")
        }
    }

    @Test func shiftsTwo() throws {
        let s = try Setup(frames: 30000)
        defer { s.remove() }
        let run = try S.separate(["-o", s.out, "--shifts", "2", "--float32", "--clip-mode", "none", s.track])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let stems = try S.stems(in: s.trackFolder)
        #expect(stems.count == 4)
        for (name, stem) in stems {
            #expect(stem.frameCount == 30000 && stem.channelCount == 2, "\(name)")
        }
        // None of them is silent.
        #expect(stems.values.allSatisfy { $0.peak > 0.001 })
    }

    @Test func overlapNoSplitAndJobs() throws {
        let s = try Setup(frames: 66150)
        defer { s.remove() }
        let base = try S.separate(["-o", s.out + "/base"] + Self.exact + [s.track])
        let jobs = try S.separate(["-o", s.out + "/jobs", "-j", "4"] + Self.exact + [s.track])
        let overlap = try S.separate(["-o", s.out + "/overlap", "--overlap", "0.5"] + Self.exact + [s.track])
        let segment = try S.separate(["-o", s.out + "/segment", "--segment", "1"] + Self.exact + [s.track])
        for run in [base, jobs, overlap, segment] { #expect(run.status == 0, "stderr: \(run.stderr)") }
        let b = try #require(try S.stems(in: s.out + "/base/tiny4/song")["vocals"])
        let j = try #require(try S.stems(in: s.out + "/jobs/tiny4/song")["vocals"])
        let o = try #require(try S.stems(in: s.out + "/overlap/tiny4/song")["vocals"])
        let g = try #require(try S.stems(in: s.out + "/segment/tiny4/song")["vocals"])
        #expect(b.frameCount == 66150 && o.frameCount == 66150)
        #expect(S.maxDifference(b.channels, j.channels) <= 1e-5, "-j must not change the result")
        #expect(S.maxDifference(b.channels, g.channels) <= 1e-5, "--segment 1 is the model's own segment")
        #expect(S.maxDifference(b.channels, o.channels) > 1e-6, "--overlap 0.5 must change the chunk weights")
    }

    // MARK: - Inputs

    @Test func resamplesAndUpmixesTo44100Stereo() throws {
        let dir = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let stereo48 = dir + "/stereo48.wav", mono48 = dir + "/mono48.flac"
        try S.writeInput(stereo48, frames: 57_601, channels: 2, sampleRate: 48000)
        try S.writeInput(mono48, frames: 76_800, channels: 1, sampleRate: 48000, seed: 2)
        var tracks = [stereo48, mono48]
        var expected = ["stereo48": 57_601 * 44100 / 48000, "mono48": 76_800 * 44100 / 48000]
        if let fixture = S.fixtureAudio("mono48k") {
            tracks.append(fixture)
            expected["mono48k"] = try AudioDecoder.decode(path: fixture).frameCount * 44100 / 48000
        }
        let out = dir + "/out"
        let run = try S.separate(["-o", out, "--shifts", "0"] + tracks)
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(expected["stereo48"] == 52_920 && expected["mono48"] == 70_560)
        for (name, frames) in expected {
            let stems = try S.stems(in: out + "/tiny4/" + name)
            #expect(stems.count == 4, "\(name)")
            for (stem, audio) in stems {
                #expect(audio.sampleRate == 44100 && audio.channelCount == 2, "\(name)/\(stem)")
                #expect(audio.frameCount == frames, "\(name)/\(stem): \(audio.frameCount) frames, expected \(frames)")
            }
        }
    }

    @Test(.enabled(if: SeparateSupport.realMusic != nil, "needs /work/shared/test-audio/test.mp3"))
    func realMusicMP3() throws {
        let track = try #require(S.realMusic)
        let dir = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try S.separate(["-o", dir, "--shifts", "0", "-j", "4", track])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let frames = try AudioDecoder.decode(path: track).frameCount
        let stems = try S.stems(in: dir + "/tiny4/test")
        #expect(stems.count == 4)
        for (name, stem) in stems {
            #expect(stem.frameCount == frames && stem.channelCount == 2, "\(name)")
        }
    }
}
