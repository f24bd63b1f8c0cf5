import AudioIO
import Foundation
import Testing

/// Files made hostile at test time, handed to the real `demucsctl`: mutated WAV, FLAC, OGG,
/// AIFF, MP3 and M4A to `separate`; forged safetensors, pickles that try to run a command, zips
/// whose entries climb out of their folder, and bit-flipped or truncated real `.th`
/// checkpoints to `models import`. Each must end within seconds with a status below 128 (no
/// signal, no trap), and when it fails, with one line of error naming what was wrong; nothing
/// may run and nothing may be written outside the output folder (`-o` or `--repo`).
///
/// The files are new on every run: each comes from a random generator seeded afresh (the seed
/// is in every failure message; `DEMUCSD_SWEEP_SEED=N swift test --filter HostileFileSweep`
/// makes the same files again).
@Suite struct HostileFileSweepTests {
    /// Seconds one run may take: the slowest clean refusal on the debug build measures well under
    /// a second; a run past this is a hang.
    static let timeLimit = 20.0

    /// A folder for one run: `inputs` holds the hostile file, the process runs in `cwd`, writes
    /// stems to `out` or models to `repo`. Anything else appearing under `root` is a finding.
    struct Sandbox {
        let root: String
        var inputs: String { root + "/inputs" }
        var cwd: String { root + "/cwd" }
        var out: String { root + "/out" }
        var repo: String { root + "/repo" }
        var cache: String { root + "/cache" }
        var marker: String { root + "/pwned" }

        init() throws {
            root = try TestSupport.temporaryFolder()
            for folder in [inputs, cwd, cache] {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            }
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }

        /// Every path under `root` outside the output folders, with its size.
        func outsideOutput() -> [String: Int] {
            var found: [String: Int] = [:]
            guard let walker = FileManager.default.enumerator(atPath: root) else { return found }
            while let relative = walker.nextObject() as? String {
                if relative == "out" || relative.hasPrefix("out/") || relative == "repo" || relative.hasPrefix("repo/") { continue }
                let attributes = try? FileManager.default.attributesOfItem(atPath: root + "/" + relative)
                found[relative] = (attributes?[.size] as? Int) ?? -1
            }
            return found
        }

        var environment: [String: String] { ImportCommandTests.environment(cache: cache) }
    }

    /// Runs `demucsctl arguments` in `sandbox` and checks the rules every hostile file obeys.
    @discardableResult
    static func expectCleanOutcome(_ arguments: [String], in sandbox: Sandbox, input: String, mustFail: Bool,
                                   case label: String) throws -> TestSupport.Run {
        let context = "\(label), DEMUCSD_SWEEP_SEED=\(SweepRandom.seed)"
        let before = sandbox.outsideOutput()
        let start = Date()
        let run = try TestSupport.run(arguments, environment: sandbox.environment, cwd: sandbox.cwd, timeout: timeLimit)
        let elapsed = Date().timeIntervalSince(start)
        #expect(!run.timedOut, "\(context): still running after \(timeLimit) s")
        #expect(run.status < 128, "\(context): status \(run.status)\n\(run.stderr.suffix(2000))")
        #expect(!run.stderr.contains("Fatal error") && !run.stderr.contains("Crash"), "\(context): \(run.stderr.suffix(2000))")
        if mustFail { #expect(run.status != 0, "\(context): accepted\n\(run.stdout)") }
        if run.status != 0 && !run.timedOut {
            let lines = run.stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            let errors = lines.filter { ($0.hasPrefix("error: ") || $0.hasPrefix("Error: ")) && !isTrackSummary($0) }
            let other = lines.filter { !$0.hasPrefix("error: ") && !$0.hasPrefix("Error: ") && !isProgress($0) }
            #expect(errors.count == 1, "\(context): expected one error line:\n\(run.stderr)")
            #expect(other.isEmpty, "\(context): stray lines on stderr:\n\(other.joined(separator: "\n"))")
            let name = (input as NSString).lastPathComponent
            #expect(errors.first.map { $0.contains(name) } ?? false, "\(context): the error does not name \(name): \(errors)")
        }
        let after = sandbox.outsideOutput()
        let changed = Set(after.keys).symmetricDifference(before.keys).sorted()
        #expect(after == before, "\(context): written outside the output folder: \(changed)")
        #expect(!FileManager.default.fileExists(atPath: sandbox.marker), "\(context): the payload ran")
        #expect(elapsed < timeLimit, "\(context): \(elapsed) s")
        return run
    }

    static func isTrackSummary(_ line: String) -> Bool { line.hasPrefix("error: ") && line.hasSuffix("track(s) failed") }

    /// `NAME: 40% (0.1s)`, the progress `separate` prints per track.
    static func isProgress(_ line: String) -> Bool {
        line.range(of: #": [0-9]+% \([0-9.]+s\)$"#, options: .regularExpression) != nil
    }

    // MARK: - Audio

    /// The containers `separate` reads (libsndfile, and ffmpeg for M4A), each made by ffmpeg from
    /// one second of a real recording.
    static let audioFormats: [(ext: String, codec: [String])] = [
        ("wav", ["-c:a", "pcm_s16le"]), ("flac", ["-c:a", "flac"]), ("ogg", ["-c:a", "libvorbis"]),
        ("aiff", ["-c:a", "pcm_s16be"]), ("mp3", ["-c:a", "libmp3lame"]), ("m4a", ["-c:a", "aac"]),
    ]

    static func makeAudio(ext: String, codec: [String], in folder: String) throws -> Data {
        let path = "\(folder)/base.\(ext)"
        let ffmpeg = Process()
        ffmpeg.executableURL = URL(fileURLWithPath: FFmpegDecoder.onPath()!.executable)
        ffmpeg.arguments = ["-nostdin", "-loglevel", "error", "-y", "-i", TestSupport.fixtures + "/audio/cut_a.flac",
                            "-t", "1"] + codec + [path]
        try ffmpeg.run()
        ffmpeg.waitUntilExit()
        guard ffmpeg.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    @Test(.enabled(if: FFmpegDecoder.onPath() != nil, "ffmpeg is not installed (tools/install-deps.sh installs it)"),
          arguments: audioFormats.map(\.ext))
    func mutatedAudioIsSeparatedOrRefused(ext: String) throws {
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let base = try Self.makeAudio(ext: ext, codec: Self.audioFormats.first { $0.ext == ext }!.codec, in: sandbox.root)
        var rng = SweepRandom.forCase("audio-\(ext)")
        for mutation in HostileFiles.Mutation.allCases {
            for round in 0..<2 {
                let input = "\(sandbox.inputs)/\(mutation)-\(round).\(ext)"
                try mutation.apply(to: base, rng: &rng).write(to: URL(fileURLWithPath: input))
                try Self.expectCleanOutcome(["separate", "-n", "tiny4", "--repo", TestSupport.models, "-o", sandbox.out,
                                             "--shifts", "0", input],
                                            in: sandbox, input: input, mustFail: false, case: "\(ext) \(mutation) \(round)")
                try FileManager.default.removeItem(atPath: input)
            }
        }
    }

    // MARK: - Safetensors

    @Test(arguments: HostileFiles.Forgery.allCases)
    func forgedSafetensorsAreRefused(forgery: HostileFiles.Forgery) throws {
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let original = try Data(contentsOf: URL(fileURLWithPath: TestSupport.models + "/7e1a4c02.safetensors"))
        var rng = SweepRandom.forCase("safetensors-\(forgery)")
        let input = "\(sandbox.inputs)/7e1a4c02.safetensors"
        try forgery.apply(to: original, rng: &rng).write(to: URL(fileURLWithPath: input))
        try Self.expectCleanOutcome(["models", "import", input, "--repo", sandbox.repo], in: sandbox, input: input,
                                    mustFail: true, case: "safetensors \(forgery)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: sandbox.repo)) ?? [] == [],
                "safetensors \(forgery): something was installed")
        // Loaded for a separation straight from where it lies.
        try Self.expectCleanOutcome(["separate", "-n", "7e1a4c02", "--repo", sandbox.inputs, "-o", sandbox.out, "--shifts", "0",
                                     TestSupport.fixtures + "/audio/cut_b.flac"],
                                    in: sandbox, input: input, mustFail: true, case: "safetensors \(forgery) separate")
    }

    // MARK: - Checkpoints (.th)

    /// The real checkpoint whose entries the archives below reuse.
    static var realCheckpoint: String { TestSupport.fixtures + "/import/th/7e1a4c02-19380500.th" }

    @Test(arguments: HostileFiles.Payload.allCases)
    func picklesThatCallCodeAreRefused(payload: HostileFiles.Payload) throws {
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let pickle = payload.pickle(command: "touch '\(sandbox.marker)'")
        // As the pickle of a torch zip beside the real checkpoint's other entries, and as a bare file.
        var entries = try HostileFiles.entries(ofZip: Self.realCheckpoint)
        entries = entries.map { $0.name == "archive/data.pkl" ? ($0.name, pickle) : $0 }
        let zipped = "\(sandbox.inputs)/\(payload).th"
        try HostileFiles.zip(entries, to: zipped)
        try Self.expectCleanOutcome(["models", "import", zipped, "--repo", sandbox.repo], in: sandbox, input: zipped,
                                    mustFail: true, case: "pickle \(payload) in a zip")
        let bare = "\(sandbox.inputs)/\(payload)-bare.th"
        try pickle.write(to: URL(fileURLWithPath: bare))
        try Self.expectCleanOutcome(["models", "import", bare, "--repo", sandbox.repo], in: sandbox, input: bare,
                                    mustFail: true, case: "pickle \(payload) bare")
    }

    @Test func zipEntriesThatClimbOutWriteNothingThere() throws {
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let outside = NSTemporaryDirectory() + "demucsd-zipslip-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let real = try HostileFiles.entries(ofZip: Self.realCheckpoint)
        let climbs = ["../../zipslip", "archive/../../../zipslip", "archive/data/../../../../zipslip", outside,
                      "../" + String(repeating: "../", count: 40) + "tmp/zipslip"]
        // Climbing entries added to a whole checkpoint, and a checkpoint whose own entries climb.
        let cases: [(String, [(name: String, data: Data)])] = [
            ("added", real + climbs.map { ($0, Data("written by a zip entry\n".utf8)) }),
            ("renamed", real.map { ($0.name.hasPrefix("archive/data/") ? "../" + $0.name : $0.name, $0.data) }),
            ("root-climbs", real.map { ("../../" + $0.name, $0.data) }),
        ]
        for (label, entries) in cases {
            let input = "\(sandbox.inputs)/\(label).th"
            try HostileFiles.zip(entries, to: input)
            try Self.expectCleanOutcome(["models", "import", input, "--repo", sandbox.repo], in: sandbox, input: input,
                                        mustFail: label == "renamed", case: "zip \(label)")
            #expect(!FileManager.default.fileExists(atPath: outside), "zip \(label): wrote \(outside)")
            for parent in [sandbox.root, (sandbox.root as NSString).deletingLastPathComponent, "/tmp"] {
                #expect(!FileManager.default.fileExists(atPath: parent + "/zipslip"), "zip \(label): wrote \(parent)/zipslip")
            }
            let installed = (try? FileManager.default.contentsOfDirectory(atPath: sandbox.repo)) ?? []
            #expect(installed.allSatisfy { $0.hasSuffix(".safetensors") }, "zip \(label): installed \(installed)")
            try? FileManager.default.removeItem(atPath: sandbox.repo)
        }
    }

    @Test(arguments: ["7e1a4c02-19380500.th", "uqwave.th"])
    func damagedCheckpointsImportOrFailCleanly(file: String) throws {
        let sandbox = try Sandbox()
        defer { sandbox.remove() }
        let original = try Data(contentsOf: URL(fileURLWithPath: TestSupport.fixtures + "/import/th/" + file))
        var rng = SweepRandom.forCase("th-\(file)")
        for mutation in HostileFiles.Mutation.allCases {
            for round in 0..<2 {
                let input = "\(sandbox.inputs)/\(mutation)-\(round).th"
                try mutation.apply(to: original, rng: &rng).write(to: URL(fileURLWithPath: input))
                try Self.expectCleanOutcome(["models", "import", input, "--repo", sandbox.repo], in: sandbox, input: input,
                                            mustFail: mutation == .truncatedInHeader, case: "\(file) \(mutation) \(round)")
                try FileManager.default.removeItem(atPath: input)
                try? FileManager.default.removeItem(atPath: sandbox.repo)
            }
        }
    }
}
