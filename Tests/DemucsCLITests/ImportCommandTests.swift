import AudioIO
import Foundation
import Testing

/// `demucsctl models import` / `models rm`, and separating with what was imported: a demucs
/// `.th` checkpoint and a diffq-quantised hub model (fixtures from tools/make_fixtures_import.py).
@Suite struct ImportCommandTests {
    static var importFixtures: String { TestSupport.fixtures + "/import" }
    static var tiny4Th: String { importFixtures + "/th/7e1a4c02-19380500.th" }

    /// The environment with the model cache in `cache` and no reachable hub.
    static func environment(cache: String) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["DEMUCSD_MODELS"] = cache
        env["DEMUCSD_HUB_URL"] = "http://127.0.0.1:9"
        return env
    }

    /// Separates `input` with `-n model` and compares `stems` with `expected/<stem>.flac`.
    static func separateAndCompare(model: String, repo: String?, env: [String: String]? = nil, input: String,
                                   expected: String, stems: [String]) throws {
        let out = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: out) }
        let run = try TestSupport.run(["separate", "-n", model, "-o", out, "--shifts", "0", "--float32", "--clip-mode", "none"]
                                      + (repo.map { ["--repo", $0] } ?? []) + [input], environment: env)
        #expect(run.status == 0, "separate failed: \(run.stderr)")
        let track = ((input as NSString).lastPathComponent as NSString).deletingPathExtension
        for stem in stems {
            let mine = try AudioDecoder.decode(path: "\(out)/\(model)/\(track)/\(stem).wav")
            let reference = try AudioDecoder.decode(path: "\(expected)/\(stem).flac")
            #expect(mine.frameCount == reference.frameCount)
            let value = TestSupport.snr(reference: reference, estimate: mine)
            #expect(value >= 60, "\(model) \(stem): \(value) dB")
        }
    }

    @Test func importedCheckpointSeparatesLikeDemucs() throws {
        let repo = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: repo) }
        let run = try TestSupport.run(["models", "import", Self.tiny4Th, "--repo", repo])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("7e1a4c02 installed"), "\(run.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo) == ["7e1a4c02.safetensors"])
        // The conversion gives byte for byte the hub-layout fixture made from the same weights.
        #expect(FileManager.default.contentsEqual(atPath: repo + "/7e1a4c02.safetensors", andPath: TestSupport.models + "/7e1a4c02.safetensors"))
        try Self.separateAndCompare(model: "7e1a4c02", repo: repo, input: TestSupport.fixtures + "/audio/cut_a.flac",
                                    expected: TestSupport.fixtures + "/expected/tiny4_cut_a",
                                    stems: ["drums", "bass", "other", "vocals"])
    }

    @Test func importIntoTheCacheThenSeparateByName() throws {
        let cache = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let env = Self.environment(cache: cache)
        let run = try TestSupport.run(["models", "import", Self.tiny4Th, Self.importFixtures + "/hub/tinyq.yaml"], environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: cache))
        #expect(files.isSuperset(of: ["7e1a4c02.safetensors", "7e1a4c02.yaml", "7e1a4c02.sha256",
                                      "tinyq.yaml", "9d1f0c7a.safetensors", "tinyq.sha256"]), "\(files)")
        #expect(files.filter { $0.hasPrefix(".import") }.isEmpty, "staging left behind: \(files)")
        let verify = try TestSupport.run(["models", "verify", "tinyq"], environment: env)
        #expect(verify.status == 0, "\(verify.stderr)")
        // No --repo, no network: found in the cache.
        try Self.separateAndCompare(model: "7e1a4c02", repo: nil, env: env, input: TestSupport.fixtures + "/audio/cut_a.flac",
                                    expected: TestSupport.fixtures + "/expected/tiny4_cut_a", stems: ["vocals"])
        // Importing the same files again changes nothing.
        let again = try TestSupport.run(["models", "import", Self.tiny4Th], environment: env)
        #expect(again.status == 0 && again.stdout.contains("already installed"), "\(again.stdout)\(again.stderr)")
    }

    /// The diffq-quantised hub model, dequantised at load.
    @Test func quantisedModelSeparatesLikeDemucs() throws {
        try Self.separateAndCompare(model: "tinyq", repo: Self.importFixtures + "/hub",
                                    input: TestSupport.fixtures + "/audio/cut_b.flac",
                                    expected: Self.importFixtures + "/expected/tinyq_cut_b", stems: ["vocals"])
    }

    @Test func aBagNeedsItsWeights() throws {
        let repo = try TestSupport.temporaryFolder(), lone = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: repo); try? FileManager.default.removeItem(atPath: lone) }
        try FileManager.default.copyItem(atPath: Self.importFixtures + "/hub/tinyq.yaml", toPath: lone + "/tinyq.yaml")
        let missing = try TestSupport.run(["models", "import", lone + "/tinyq.yaml", "--repo", repo])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("9d1f0c7a.safetensors is neither beside it nor among the files to import"), "\(missing.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo).isEmpty)
        // Given among the arguments, it is found.
        let run = try TestSupport.run(["models", "import", lone + "/tinyq.yaml", Self.importFixtures + "/hub/9d1f0c7a.safetensors", "--repo", repo])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: repo)) == ["tinyq.yaml", "9d1f0c7a.safetensors"])
    }

    @Test func differentContentIsOnlyReplacedWithForce() throws {
        let repo = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: repo) }
        try Data("not a model".utf8).write(to: URL(fileURLWithPath: repo + "/7e1a4c02.safetensors"))
        let run = try TestSupport.run(["models", "import", Self.tiny4Th, "--repo", repo])
        #expect(run.status == 2)
        #expect(run.stderr.contains("already exists with other content"), "\(run.stderr)")
        #expect(try String(contentsOfFile: repo + "/7e1a4c02.safetensors", encoding: .utf8) == "not a model")
        let forced = try TestSupport.run(["models", "import", "--force", Self.tiny4Th, "--repo", repo])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(FileManager.default.contentsEqual(atPath: repo + "/7e1a4c02.safetensors", andPath: TestSupport.models + "/7e1a4c02.safetensors"))
    }

    /// Hostile files: refused with a message that says why, nothing installed.
    @Test(arguments: [
        ("os_system.th", "refusing to load: the pickle asks for global os.system"),
        ("construct.th", "calls demucs.htdemucs.HTDemucs"),
        ("zip_slip.th", "'../evil' lies outside the archive's folder"),
        ("truncated_storage.th", "is truncated"),
        ("shape_mismatch.th", "has shape [1, 1, 9], the architecture in its klass / kwargs needs [1, 1, 8]"),
        ("legacy.th", "legacy torch serialization format"),
        ("evil_class.safetensors", "refusing to load: the 'structure' metadata names the class os.system"),
    ])
    func hostileFilesAreRefused(_ file: String, _ message: String) throws {
        let repo = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: repo) }
        let run = try TestSupport.run(["models", "import", Self.importFixtures + "/hostile/" + file, "--repo", repo])
        #expect(run.status == 2)
        #expect(run.stderr.contains(message), "\(run.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo).isEmpty)
    }

    @Test func removeKeepsWeightsOtherBagsUse() throws {
        let cache = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let env = Self.environment(cache: cache)
        #expect(try TestSupport.run(["models", "import", Self.tiny4Th, Self.importFixtures + "/hub/tinyq.yaml"], environment: env).status == 0)
        // A second bag that shares tinyq's weights.
        try Data("models: ['9d1f0c7a']\n".utf8).write(to: URL(fileURLWithPath: cache + "/other.yaml"))
        let rm = try TestSupport.run(["models", "rm", "tinyq"], environment: env)
        #expect(rm.status == 0, "\(rm.stderr)")
        #expect(rm.stdout.contains("kept 9d1f0c7a.safetensors (still used by other)"), "\(rm.stdout)")
        var files = Set(try FileManager.default.contentsOfDirectory(atPath: cache))
        #expect(!files.contains("tinyq.yaml") && !files.contains("tinyq.sha256") && files.contains("9d1f0c7a.safetensors"))
        // A single model that a bag uses is not removed.
        let single = try TestSupport.run(["models", "rm", "9d1f0c7a"], environment: env)
        #expect(single.status == 2 && single.stderr.contains("is used by other"), "\(single.stderr)")
        #expect(try TestSupport.run(["models", "rm", "other"], environment: env).status == 0)
        #expect(try TestSupport.run(["models", "rm", "7e1a4c02"], environment: env).status == 0)
        files = Set(try FileManager.default.contentsOfDirectory(atPath: cache))
        #expect(files.filter { !$0.hasPrefix(".") }.isEmpty, "\(files)")
        let unknown = try TestSupport.run(["models", "rm", "nothere"], environment: env)
        #expect(unknown.status == 2 && unknown.stderr.contains("is not in"), "\(unknown.stderr)")
    }
}
