import Foundation
import Testing

/// `demucsctl models`: listing a model folder and the offline error of `fetch`.
@Suite struct ModelsCommandTests {
    @Test func listShowsBagsAndSingleModels() throws {
        let run = try TestSupport.run(["models", "list", "--repo", TestSupport.models])
        #expect(run.status == 0)
        for name in ["tiny4", "tiny6", "bag2"] { #expect(run.stdout.contains(name), "\(run.stdout)") }
        #expect(run.stdout.contains("2 model(s)"), "bag2 lists two models: \(run.stdout)")
    }

    @Test func fetchWithoutNetworkSaysWhichFilesToPutWhere() throws {
        let cache = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        var env = ProcessInfo.processInfo.environment
        env["DEMUCSD_MODELS"] = cache
        env["DEMUCSD_HUB_URL"] = "http://127.0.0.1:9"  // the discard port: nothing listens
        let run = try TestSupport.run(["models", "fetch", "htdemucs"], environment: env)
        #expect(run.status == 2)
        #expect(run.stderr.contains("htdemucs.yaml"))
        #expect(run.stderr.contains("955717e8.safetensors"))
        #expect(run.stderr.contains(cache))
        let left = try FileManager.default.contentsOfDirectory(atPath: cache).filter { !$0.hasPrefix(".") || $0.hasSuffix(".part") }
        #expect(left.isEmpty, "nothing half-downloaded is left: \(left)")
    }

    @Test func listOfAnEmptyCacheSaysHowToFetch() throws {
        let cache = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        var env = ProcessInfo.processInfo.environment
        env["DEMUCSD_MODELS"] = cache
        let run = try TestSupport.run(["models", "list"], environment: env)
        #expect(run.status == 0)
        #expect(run.stdout.contains("demucsctl models fetch"))
    }

    /// demucs v2's names come from where v2 kept its files, not from the hub.
    @Test func fetchOfAV2ModelWithoutNetworkNamesItsFileAndTheImport() throws {
        let cache = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        var env = ProcessInfo.processInfo.environment
        env["DEMUCSD_MODELS"] = cache
        env["DEMUCSD_V2_URL"] = "http://127.0.0.1:9/demucs/v3.0"
        let run = try TestSupport.run(["models", "fetch", "tasnet"], environment: env)
        #expect(run.status == 2)
        #expect(run.stderr.contains("http://127.0.0.1:9/demucs/v3.0/tasnet-beb46fac.th"), "\(run.stderr)")
        #expect(run.stderr.contains("demucsctl models import tasnet-beb46fac.th"), "\(run.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache).filter { !$0.hasPrefix(".") }.isEmpty)
    }

    /// An imported checkpoint gets a one-model yaml of its own name; it is listed once.
    @Test func importedModelIsListedOnce() throws {
        let cache = try TestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        var env = ProcessInfo.processInfo.environment
        env["DEMUCSD_MODELS"] = cache
        let th = try #require(try FileManager.default.contentsOfDirectory(atPath: TestSupport.fixtures + "/v2/models")
            .first { $0.hasPrefix("tasnet_small-") })
        let imported = try TestSupport.run(["models", "import", TestSupport.fixtures + "/v2/models/" + th], environment: env)
        #expect(imported.status == 0, "\(imported.stderr)")
        let run = try TestSupport.run(["models", "list"], environment: env)
        #expect(run.status == 0)
        #expect(run.stdout.components(separatedBy: "tasnet_small").count == 2, "\(run.stdout)")
    }
}
