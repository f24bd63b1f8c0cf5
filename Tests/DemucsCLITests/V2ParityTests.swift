import Foundation
import Testing

/// Parity with demucs 2.0.3 for its two model families (the v2 `Demucs` and Conv-TasNet): the
/// checkpoints in `Tests/Fixtures/v2/models`, saved the way v2 saved them, are imported with
/// `demucsctl models import` and `demucsctl separate` must reproduce v2's own `apply_model`
/// output (made by `tools/make_fixtures_v2.py`) to at least 60 dB SNR on every stored stem.
@Suite(.serialized) struct V2ParityTests {
    static var root: String { TestSupport.fixtures + "/v2" }
    static let cases = ParityCase.load(root: root)

    /// The fixture checkpoints converted once into a temporary model folder.
    static let repo: Result<String, Error> = Result {
        let folder = try TestSupport.temporaryFolder()
        let models = try FileManager.default.contentsOfDirectory(atPath: root + "/models")
            .filter { $0.hasSuffix(".th") }.sorted().map { root + "/models/" + $0 }
        let run = try TestSupport.run(["models", "import", "--repo", folder] + models)
        guard run.status == 0 else { throw ImportFailed(message: run.stderr) }
        return folder
    }

    struct ImportFailed: Error { var message: String }

    @Test func fixturesArePresent() {
        #expect(Self.cases.count >= 5)
        #expect(Set(Self.cases.map(\.model)) == ["v2demucs_small", "v2demucs_q", "tasnet_small", "tasnet_cln"])
    }

    @Test(arguments: cases)
    func stemsMatchDemucsV2(_ c: ParityCase) throws {
        try c.check(root: Self.root, repo: try Self.repo.get())
    }

    /// demucs 2.0.3's separate.py defaulted to `--shifts 0`, so `-n tasnet` without the flag is
    /// one deterministic pass, byte for byte what `--shifts 0` gives (and `--shifts 1` is not).
    @Test func v2ModelsDefaultToNoShifts() throws {
        let repo = try Self.repo.get()
        let input = TestSupport.fixtures + "/audio/cut_b.flac"
        func stems(_ flags: [String]) throws -> Data {
            let out = try TestSupport.temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: out) }
            let run = try TestSupport.run(["separate", "--repo", repo, "-n", "tasnet_small", "-o", out, "--float32"] + flags + [input])
            #expect(run.status == 0, "\(run.stderr)")
            return try Data(contentsOf: URL(fileURLWithPath: out + "/tasnet_small/cut_b/vocals.wav"))
        }
        let byDefault = try stems([])
        #expect(byDefault == (try stems(["--shifts", "0"])))
        #expect(byDefault != (try stems(["--shifts", "1"])))
    }
}
