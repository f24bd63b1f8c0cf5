import AudioIO
import DemucsEngine
import Foundation
import Testing
@testable import DemucsDaemon

/// The configuration file: defaults, a full file, every kind of mistake, and the shipped example.
@Suite struct ConfigTests {
    /// `etc/demucsd.conf` of this repository.
    private static let shippedConfig: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("etc/demucsd.conf").path
    }()

    /// The error `text` produces (failing the test when it parses).
    private func error(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
        do {
            _ = try DaemonConfig.parse(text, file: "demucsd.conf")
            Issue.record("expected a ConfigError for:\n\(text)", sourceLocation: sourceLocation)
            return nil
        } catch let error as ConfigError {
            return error
        } catch {
            Issue.record("expected a ConfigError, got \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    @Test func defaults() throws {
        let config = DaemonConfig()
        #expect(config.data == "./data")
        #expect(config.model == ModelConfig(name: "htdemucs", repo: nil, cache: nil))
        #expect(config.separation.shifts == 1)
        #expect(config.separation.overlap == 0.25)
        #expect(config.separation.segment == nil)
        #expect(config.separation.twoStems == nil)
        #expect(config.output.wav && config.output.mp3 && !config.output.flac)
        #expect(config.output.wavFormat == .int16)
        #expect(config.output.mp3Bitrate == 320)
        #expect(config.output.mp3Preset == 2)
        #expect(config.output.clipMode == .rescale)
        #expect(config.jobs == JobsConfig(workers: 1, threads: 0, retryLimit: 3, onSuccess: .keep, onFailure: .keep,
                                          maxFileSizeMB: 2048, maxDurationMinutes: 0, settleSeconds: 1.0))
        #expect(try DaemonConfig.load(path: nil) == config)
        #expect(try DaemonConfig.parse("") == config)
        #expect(try DaemonConfig.parse("# nothing but a comment\n[model]\n[jobs]\n") == config)
        #expect(ConfigError.exitCode == 78)
    }

    @Test func fullFileParses() throws {
        let text = """
        data = "/srv/demucs"

        [model]
        name = "htdemucs_ft"
        repo = "/opt/models"
        cache = "/var/cache/demucsd"

        [separation]
        shifts = 2
        overlap = 0.5
        segment = 7.5
        two_stems = "vocals"

        [output]
        wav = false
        wav_format = "float32"
        mp3 = true
        mp3_bitrate = 192
        mp3_preset = 5
        flac = true
        clip_mode = "clamp"

        [jobs]
        workers = 2
        threads = 8
        retry_limit = 0
        on_success = "move"
        on_failure = "move"
        max_file_size_mb = 0
        max_duration_minutes = 120
        settle_seconds = 2
        ffmpeg = "/opt/ffmpeg/bin/ffmpeg"
        """
        let config = try DaemonConfig.parse(text)
        #expect(config.data == "/srv/demucs")
        #expect(config.model == ModelConfig(name: "htdemucs_ft", repo: "/opt/models", cache: "/var/cache/demucsd"))
        #expect(config.separation == SeparationConfig(shifts: 2, overlap: 0.5, segment: 7.5, twoStems: "vocals"))
        #expect(config.output == OutputConfig(wav: false, wavFormat: .float32, mp3: true, mp3Bitrate: 192, mp3Preset: 5,
                                              flac: true, clipMode: .clamp))
        #expect(config.jobs == JobsConfig(workers: 2, threads: 8, retryLimit: 0, onSuccess: .move, onFailure: .move,
                                          maxFileSizeMB: 0, maxDurationMinutes: 120, settleSeconds: 2,
                                          ffmpeg: "/opt/ffmpeg/bin/ffmpeg"))

        // Derived values the daemon uses.
        #expect(config.output.formats == [.flac, .mp3])
        #expect(config.output.encodeOptions(for: .flac) == EncodeOptions(format: .flac, clip: .clamp, bitsPerSample: 16,
                                                                         asFloat: false, mp3Bitrate: 192, mp3Preset: 5))
        #expect(config.output.encodeOptions(for: .wav).asFloat)
        #expect(config.jobs.maxFileSizeBytes == nil)
        #expect(config.jobs.maxDuration == .seconds(7200))
        #expect(config.jobs.settle == .seconds(2))
        #expect(DaemonConfig().jobs.maxFileSizeBytes == Int64(2_147_483_648))
        let options = config.separation.engineOptions(threads: 8)
        #expect(options.shifts == 2 && options.overlap == 0.5 && options.threads == 8 && options.jobs == 0)
        #expect(options.segment == Fraction(15, 2))
        #expect(DaemonConfig().separation.engineOptions(threads: 0).segment == nil)
    }

    @Test func loadsAFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("demucsd-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("demucsd.conf").path
        try "[jobs]\nworkers = 3\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try DaemonConfig.load(path: path).jobs.workers == 3)

        let missing = folder.appendingPathComponent("absent.conf").path
        #expect(throws: ConfigError(file: missing, key: nil, problem: "cannot be opened: No such file or directory")) {
            try DaemonConfig.load(path: missing)
        }
        try "[jobs]\nworkers = 0\n".write(toFile: path, atomically: true, encoding: .utf8)
        let error = try #require(throws: ConfigError.self) { try DaemonConfig.load(path: path) }
        #expect(error.description == "\(path): [jobs] workers = 0 is not a valid number of workers (1..64)")
    }

    @Test func outOfRangeNamesKeyAndRange() throws {
        let e = try #require(error("[output]\nmp3_bitrate = 1000\n"))
        #expect(e.description == "demucsd.conf: [output] mp3_bitrate = 1000 is not a valid MP3 bitrate (8..320)")
        #expect(e.file == "demucsd.conf")
        #expect(e.key == "[output] mp3_bitrate")

        for (text, key) in [
            ("[output]\nmp3_preset = 1", "[output] mp3_preset"),
            ("[separation]\noverlap = 1.0", "[separation] overlap"),
            ("[separation]\nsegment = -2", "[separation] segment"),
            ("[separation]\nshifts = -1", "[separation] shifts"),
            ("[jobs]\nthreads = -1", "[jobs] threads"),
            ("[jobs]\nsettle_seconds = nan", "[jobs] settle_seconds"),
            ("[model]\nname = \"../etc\"", "[model] name"),
            ("[separation]\ntwo_stems = \"vo cals\"", "[separation] two_stems"),
            ("[separation]\nprecision = \"fp8\"", "[separation] precision"),
            ("data = \"\"", "data"),
        ] {
            let e = try #require(error(text))
            #expect(e.key == key, "\(text)")
            #expect(e.description.hasPrefix("demucsd.conf: \(key) = "), "\(e)")
        }
    }

    /// `precision = "bf16"` turns the engine's bf16 matrix multiplies on where the CPU has them,
    /// and is a configuration error naming the missing instructions where it has not.
    @Test func bf16PrecisionFollowsTheCPU() throws {
        let text = "[separation]\nprecision = \"bf16\"\n"
        if EnginePrecision.bf16Available {
            let config = try DaemonConfig.parse(text)
            #expect(config.separation.precision == .bf16)
            #expect(config.separation.engineOptions(threads: 0).precision == .bf16)
        } else {
            let e = try #require(error(text))
            #expect(e.problem.contains("AVX512_BF16"), "\(e)")
        }
        #expect(try DaemonConfig.parse("").separation.precision == .float32)
    }

    @Test func wrongTypeNamesKeyAndType() throws {
        let e = try #require(error("[output]\nmp3 = \"yes\"\n"))
        #expect(e.description == "demucsd.conf: [output] mp3 = \"yes\" must be true or false, not a string")
        let f = try #require(error("[jobs]\nworkers = 1.5\n"))
        #expect(f.description == "demucsd.conf: [jobs] workers = 1.5 must be a whole number, not a fractional number")
        let g = try #require(error("data = 5\n"))
        #expect(g.description == "demucsd.conf: data = 5 must be a string, not a whole number")
        let h = try #require(error("model = \"htdemucs\"\n"))
        #expect(h.key == "model")
        #expect(h.problem.contains("must be a section ([model]"))
    }

    @Test func badEnumValueListsChoices() throws {
        let e = try #require(error("[output]\nwav_format = \"int32\"\n"))
        #expect(e.description == "demucsd.conf: [output] wav_format = \"int32\" is not one of \"int16\", \"int24\", \"float32\"")
        let f = try #require(error("[jobs]\non_failure = \"delete\"\n"))
        #expect(f.description == "demucsd.conf: [jobs] on_failure = \"delete\" is not one of \"keep\", \"move\"")
        let g = try #require(error("[output]\nclip_mode = \"soft\"\n"))
        #expect(g.key == "[output] clip_mode")
    }

    @Test func unknownKeysAndSections() throws {
        let typo = try #require(error("[output]\nmp3_bitrat = 128\n"))
        #expect(typo.description == "demucsd.conf: [output] mp3_bitrat is not a known key; did you mean mp3_bitrate?")

        let misplaced = try #require(error("[model]\nname = \"htdemucs\"\nshifts = 2\n"))
        #expect(misplaced.description == "demucsd.conf: [model] shifts is not a known key; it belongs in [separation]")

        let dataAfterHeader = try #require(error("[jobs]\ndata = \"/srv\"\n"))
        #expect(dataAfterHeader.key == "[jobs] data")
        #expect(dataAfterHeader.problem.contains("top of the file"))

        let topLevel = try #require(error("workers = 2\n"))
        #expect(topLevel.description == "demucsd.conf: workers is not a known key; it belongs in [jobs]")

        let nonsense = try #require(error("[jobs]\nfrobnicate = true\n"))
        #expect(nonsense.key == "[jobs] frobnicate")
        #expect(nonsense.problem.hasPrefix("is not a known key (known keys: workers, threads,"))

        let section = try #require(error("[outptu]\nmp3 = false\n"))
        #expect(section.description == "demucsd.conf: [outptu] is not a known section; did you mean [output]?")
        let other = try #require(error("[logging]\nlevel = \"debug\"\n"))
        #expect(other.description == "demucsd.conf: [logging] is not a known section (known sections: [model], [separation], [output], [jobs], [database], [watch])")

        let nested = try #require(error("[output.extra]\nx = 1\n"))
        #expect(nested.key == "[output] extra")
    }

    @Test func syntaxErrorsAndEmptyOutput() throws {
        let e = try #require(error("[jobs]\nworkers = \n"))
        #expect(e.key == nil)
        #expect(e.line == 2)
        #expect(e.description.hasPrefix("demucsd.conf: line 2, column"))

        let none = try #require(error("[output]\nwav = false\nmp3 = false\n"))
        #expect(none.description == "demucsd.conf: [output] writes no files: set at least one of wav, mp3, flac to true")
    }

    /// Every key the parsers read is listed in `sectionKeys` (used for "it belongs in" hints) and the
    /// other way round: a value of the wrong type for each listed key must be a type error, not an
    /// unknown key.
    @Test func sectionKeyListMatchesParsers() throws {
        for (section, keys) in DaemonConfig.sectionKeys {
            for key in keys {
                let e = try #require(error("[\(section)]\n\(key) = [1, 2]\n"))
                #expect(e.key == "[\(section)] \(key)")
                #expect(e.problem.contains("not an array"), "\(e)")
            }
        }
    }

    @Test func flagsOverrideTheFile() throws {
        let file = try DaemonConfig.parse("data = \"/srv/a\"\n[model]\nname = \"mdx\"\nrepo = \"/opt/models\"\n")
        #expect(try file.overriding() == file)

        let flagged = try file.overriding(data: "/var/lib/demucsd", modelName: "htdemucs_6s", repo: "/tmp/models")
        #expect(flagged.data == "/var/lib/demucsd")
        #expect(flagged.model.name == "htdemucs_6s")
        #expect(flagged.model.repo == "/tmp/models")
        #expect(flagged.output == file.output)

        #expect(try file.overriding(repo: "").model.repo == nil)
        #expect(throws: ConfigError.self) { try file.overriding(data: "") }
        let e = try #require(throws: ConfigError.self) { try file.overriding(modelName: "a/b/c") }
        #expect(e.key == "-n")
        #expect(e.file == "command line")
    }

    @Test func cacheFolderFollowsTheEnvironment() {
        let environment = ["DEMUCSD_MODELS": "/var/lib/demucsd/models", "HOME": "/home/x"]
        #expect(ModelConfig().resolvedCache(environment: environment) == "/var/lib/demucsd/models")
        #expect(ModelConfig().resolvedCache(environment: ["HOME": "/home/x"]) == "/home/x/.cache/demucsd/models")
        #expect(ModelConfig(cache: "/c").resolvedCache(environment: environment) == "/c")
    }

    /// The shipped file parses to the defaults, and so does the same file with every commented-out
    /// `key = value` line switched on: so it documents each key with its true default.
    @Test func shippedConfigDocumentsTheDefaults() throws {
        #expect(try DaemonConfig.load(path: Self.shippedConfig) == DaemonConfig())

        let text = try String(contentsOfFile: Self.shippedConfig, encoding: .utf8)
        var enabled: [String] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard line.range(of: #"^#[a-z_0-9]+ = "#, options: .regularExpression) != nil else { return String(line) }
            enabled.append(String(line.dropFirst().prefix { $0 != " " }))
            return String(line.dropFirst())
        }
        #expect(try DaemonConfig.parse(lines.joined(separator: "\n")) == DaemonConfig())
        let documented = Set(enabled)
        let known = Set(DaemonConfig.sectionKeys.flatMap(\.keys) + ["data"])
        #expect(documented == known)
        #expect(enabled.count == known.count, "a key is documented twice")
    }
}
