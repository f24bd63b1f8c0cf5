import AudioIO
import Foundation
import Testing

/// `demucsctl` with RoFormer models (fixtures from tools/make_fixtures_roformer.py): separating
/// a `--repo` folder's NAME.yaml + NAME.ckpt as audio-separator's driver does, importing a config
/// with its checkpoint into the cache, and refusing what does not fit.
@Suite struct RoFormerCommandTests {
    static var folder: String { TestSupport.fixtures + "/roformer" }
    static var input: String { TestSupport.fixtures + "/audio/cut_a.flac" }
    /// As the reference's driver was run for the fixtures: 1 s chunks (the configs' dim_t).
    static let exact = ["--segment", "1", "--float32", "--clip-mode", "none"]

    static func environment(cache: String) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["DEMUCSD_MODELS"] = cache
        env["DEMUCSD_HUB_URL"] = "http://127.0.0.1:9"
        env["DEMUCSD_ROFORMER_URL"] = "http://127.0.0.1:9"
        return env
    }

    static func compare(_ out: String, model: String, stems: [(String, String)]) throws {
        for (written, reference) in stems {
            let mine = try AudioDecoder.decode(path: "\(out)/\(model)/cut_a/\(written).wav")
            let theirs = try AudioDecoder.decode(path: "\(folder)/\(reference).flac")
            #expect(mine.frameCount == theirs.frameCount)
            let value = TestSupport.snr(reference: theirs, estimate: mine)
            #expect(value >= 75, "\(model) \(written): \(value) dB")  // measured 80–85 dB, as the engine test
        }
    }

    @Test(arguments: [("bs_2stem_linear", ["vocals", "instrumental"]), ("mel_1stem", ["vocals", "other"])])
    func separateFromARepoMatchesTheReferenceDriver(_ model: String, _ stems: [String]) throws {
        let out = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let run = try TestSupport.run(["separate", "--repo", Self.folder, "-n", model, "-o", out] + Self.exact + [Self.input])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("RoFormer"), "\(run.stdout)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: "\(out)/\(model)/cut_a")) == Set(stems.map { $0 + ".wav" }))
        try Self.compare(out, model: model, stems: stems.map { ($0, "\(model).demix.\($0)") })
    }

    @Test func twoStemsGivesTheStemAndTheSumOfTheOthers() throws {
        let out = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let run = try TestSupport.run(["separate", "--repo", Self.folder, "-n", "bs_2stem_linear", "-o", out, "--two-stems", "vocals"]
                                      + Self.exact + [Self.input])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: "\(out)/bs_2stem_linear/cut_a")) == ["vocals.wav", "no_vocals.wav"])
        try Self.compare(out, model: "bs_2stem_linear", stems: [("vocals", "bs_2stem_linear.demix.vocals"),
                                                                 ("no_vocals", "bs_2stem_linear.demix.instrumental")])
    }

    @Test(arguments: [(["--shifts", "1"], "--shifts"), (["--overlap", "0.25"], "--overlap"), (["--no-split"], "--no-split"),
                      (["--two-stems", "drums"], "drums")])
    func flagsThatDoNotApplyAreRefused(_ flags: [String], _ says: String) throws {
        let out = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let run = try TestSupport.run(["separate", "--repo", Self.folder, "-n", "mel_1stem", "-o", out] + flags + [Self.input])
        #expect(run.status == 64, "\(run.stdout) \(run.stderr)")
        #expect(run.stderr.contains(says), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(out)/mel_1stem/cut_a"))
    }

    @Test func importIntoTheCacheThenSeparateListAndRemoveByName() throws {
        let cache = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let env = Self.environment(cache: cache)
        let imported = try TestSupport.run(["models", "import", Self.folder + "/mel_1stem.yaml", Self.folder + "/mel_1stem.ckpt",
                                            "--name", "vox"], environment: env)
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout.contains("vox installed") && imported.stdout.contains("Mel-Band RoFormer"), "\(imported.stdout)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: cache)) == ["vox.yaml", "vox.ckpt", "vox.sha256"])
        #expect(FileManager.default.contentsEqual(atPath: cache + "/vox.ckpt", andPath: Self.folder + "/mel_1stem.ckpt"))

        let listed = try TestSupport.run(["models", "list"], environment: env)
        #expect(listed.stdout.contains("vox") && listed.stdout.contains("Mel-Band RoFormer"), "\(listed.stdout)")
        let verified = try TestSupport.run(["models", "verify", "vox"], environment: env)
        #expect(verified.status == 0 && verified.stdout.contains("2 file(s) match"), "\(verified.stdout) \(verified.stderr)")

        let out = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let run = try TestSupport.run(["separate", "-n", "vox", "-o", out] + Self.exact + [Self.input], environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        try Self.compare(out, model: "vox", stems: [("vocals", "mel_1stem.demix.vocals"), ("other", "mel_1stem.demix.other")])

        let removed = try TestSupport.run(["models", "rm", "vox"], environment: env)
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache).filter { !$0.hasPrefix(".") }.isEmpty)
    }

    @Test func aCheckpointThatDoesNotFitItsConfigIsRefusedNamingTheTensor() throws {
        let repo = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: repo) }
        let run = try TestSupport.run(["models", "import", Self.folder + "/bs_1stem.yaml", Self.folder + "/mel_1stem.ckpt",
                                       "--name", "mixed", "--repo", repo])
        #expect(run.status == 2, "\(run.stdout) \(run.stderr)")
        #expect(run.stderr.contains("does not load") && run.stderr.contains("tensor "), "\(run.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo).isEmpty)
    }

    @Test func aCheckpointWithoutItsConfigIsRefused() throws {
        let repo = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: repo) }
        let run = try TestSupport.run(["models", "import", Self.folder + "/mel_1stem.ckpt", "--repo", repo])
        #expect(run.status == 2, "\(run.stdout) \(run.stderr)")
        #expect(run.stderr.contains("needs its .yaml config"), "\(run.stderr)")
    }
}
