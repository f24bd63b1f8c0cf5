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
}
