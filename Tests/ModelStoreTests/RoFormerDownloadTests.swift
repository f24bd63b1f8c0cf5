import CheckpointImport
import DemucsEngine
import Foundation
import ModelStore
import Testing

/// Fetching a published RoFormer by name: its `.yaml` and `.ckpt` come from where audio-separator
/// downloads them (here `TestHTTPServer` serving the fixture model), are loaded before anything
/// is installed, and land as NAME.yaml + NAME.ckpt with their checksums recorded.
@Suite struct RoFormerDownloadTests {
    static let folder: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/roformer").path
    }()

    static let entry = RoFormerModels.Entry(checkpoint: "vox_published.ckpt", config: "config_vox.yaml", description: "test")

    static func downloader(_ cache: TemporaryFolder, _ base: URL) -> ModelDownloader {
        var d = ModelDownloader(cache: ModelCache(root: cache.path),
                                hub: HubClient(baseURL: base, environment: [:], timeout: 10, progressInterval: 0))
        d.roformerBaseURL = base.appendingPathComponent("releases")
        d.roformerModels = ["vox_published": entry]
        return d
    }

    static func file(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name)) }

    @Test func fetchesChecksAndInstallsConfigAndCheckpoint() async throws {
        let server = try TestHTTPServer(routes: [
            "/releases/vox_published.ckpt": .file(try Self.file("mel_1stem.ckpt")),
            "/releases/mdx_model_data/mdx_c_configs/config_vox.yaml": .file(try Self.file("mel_1stem.yaml")),
        ])
        defer { server.stop() }
        let cache = try TemporaryFolder()
        defer { cache.remove() }
        let downloader = Self.downloader(cache, server.baseURL)
        let installed = try await downloader.ensure(name: "vox_published")
        #expect(installed.files == ["vox_published.yaml", "vox_published.ckpt"])
        #expect(Set(cache.contents().filter { !$0.hasPrefix(".") }) == ["vox_published.yaml", "vox_published.ckpt", "vox_published.sha256"])
        #expect(!cache.contents().contains { $0.hasPrefix(".roformer-") })
        guard case .roformer(let model) = try installed.repository.loadModel(installed.name) else {
            Issue.record("not loaded as a RoFormer")
            return
        }
        #expect(model.config.family == .melBand)
        #expect(try downloader.verify(name: "vox_published").files == installed.files)
        let again = try await downloader.ensure(name: "vox_published")
        #expect(again.downloaded.isEmpty)
    }

    @Test func aPairThatDoesNotLoadIsNotInstalled() async throws {
        let server = try TestHTTPServer(routes: [
            "/releases/vox_published.ckpt": .file(try Self.file("bs_1stem.ckpt")),
            "/releases/mdx_model_data/mdx_c_configs/config_vox.yaml": .file(try Self.file("mel_1stem.yaml")),
        ])
        defer { server.stop() }
        let cache = try TemporaryFolder()
        defer { cache.remove() }
        do {
            _ = try await Self.downloader(cache, server.baseURL).ensure(name: "vox_published")
            Issue.record("a mismatched pair was installed")
        } catch let error as ModelStoreError {
            #expect(error.message.contains("does not load") && error.message.contains("tensor"), "\(error.message)")
        }
        #expect(!cache.contents().contains { $0.hasSuffix(".yaml") || $0.hasSuffix(".ckpt") })
    }

    @Test func offlineErrorNamesBothFilesAndTheImportCommand() async throws {
        let cache = try TemporaryFolder()
        defer { cache.remove() }
        let closed = URL(string: "http://127.0.0.1:\(try TestHTTPServer.closedPort())")!
        do {
            _ = try await Self.downloader(cache, closed).ensure(name: "vox_published")
            Issue.record("installed without a server")
        } catch let error as ModelStoreError {
            #expect(error.message.contains("vox_published.ckpt") && error.message.contains("config_vox.yaml")
                    && error.message.contains("demucsctl models import"), "\(error.message)")
        }
    }

    @Test func theKnownListNamesEachModelByItsCheckpoint() {
        #expect(RoFormerModels.known["model_bs_roformer_ep_317_sdr_12.9755"]?.config == "model_bs_roformer_ep_317_sdr_12.9755.yaml")
        #expect(RoFormerModels.known.allSatisfy { $0.key + ".ckpt" == $0.value.checkpoint })
    }
}
