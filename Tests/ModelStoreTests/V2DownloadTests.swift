import DemucsEngine
import Foundation
import ModelStore
import Testing

/// Fetching a demucs v2 model by name: its `<name>-<sig>.th` comes from v2's address (here
/// `TestHTTPServer`), is checked against the signature, converted and installed as
/// `<name>.safetensors` + `<name>.yaml`. The fixture checkpoint is a real v2 bare state dict
/// (`Tests/Fixtures/v2`); since v2's own files cannot be served here, the downloader is given
/// that file's name and signature in place of v2's table.
@Suite struct V2DownloadTests {
    static let v2Models: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/v2/models").path
    }()

    /// The bare fixture state `v2demucs_small-<sig>.th`: its name, signature and bytes.
    static func fixture() throws -> (name: String, signature: String, data: Data) {
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: v2Models)
            .first { $0.hasPrefix("v2demucs_small-") })
        let stem = String(file.dropLast(3))
        let dash = try #require(stem.lastIndex(of: "-"))
        return (String(stem[..<dash]), String(stem[stem.index(after: dash)...]),
                try Data(contentsOf: URL(fileURLWithPath: v2Models + "/" + file)))
    }

    static func downloader(_ folder: TemporaryFolder, _ base: URL, signatures: [String: String]) -> ModelDownloader {
        var d = ModelDownloader(cache: ModelCache(root: folder.path),
                                hub: HubClient(baseURL: base, environment: [:], timeout: 10, progressInterval: 0),
                                v2BaseURL: base.appendingPathComponent("demucs/v3.0"))
        d.v2Signatures = signatures
        return d
    }

    @Test func fetchesConvertsAndInstallsAV2Checkpoint() async throws {
        let (name, signature, data) = try Self.fixture()
        let server = try TestHTTPServer(routes: ["/demucs/v3.0/\(name)-\(signature).th": .file(data)])
        defer { server.stop() }
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let downloader = Self.downloader(folder, server.baseURL, signatures: [name: signature])

        let installed = try await downloader.ensure(name: name)
        #expect(installed.files == ["\(name).yaml", "\(name).safetensors"])
        // Nothing else is left behind (the download and its staging folder are gone).
        #expect(Set(folder.contents().filter { !$0.hasPrefix(".") }) == ["\(name).yaml", "\(name).safetensors", "\(name).sha256"])
        #expect(!folder.contents().contains { $0.hasPrefix(".v2-") || $0.hasSuffix(".part") })
        let bag = try installed.repository.load(installed.name)
        #expect(bag.sources == ["drums", "bass", "other", "vocals"])
        #expect(bag.models[0].applyGeneration == .v2)
        // Recorded and verified like a hub model, and not fetched again.
        #expect(try downloader.verify(name: name).files == installed.files)
        let again = try await downloader.ensure(name: name)
        #expect(again.downloaded.isEmpty)
    }

    @Test func aFileThatDoesNotMatchItsSignatureIsRefused() async throws {
        let (name, _, data) = try Self.fixture()
        let server = try TestHTTPServer(routes: ["/demucs/v3.0/\(name)-00000000.th": .file(data)])
        defer { server.stop() }
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let downloader = Self.downloader(folder, server.baseURL, signatures: [name: "00000000"])
        do {
            _ = try await downloader.ensure(name: name)
            Issue.record("a file with the wrong checksum was installed")
        } catch let error as ModelStoreError {
            #expect(error.message.contains("sha256"), "\(error.message)")
        }
        #expect(!folder.contents().contains { $0.hasSuffix(".yaml") || $0.hasSuffix(".safetensors") })
    }

    @Test func offlineErrorSaysWhereTheFileIsAndHowToImportIt() async throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let closed = URL(string: "http://127.0.0.1:\(try TestHTTPServer.closedPort())")!
        let downloader = ModelDownloader(cache: ModelCache(root: folder.path),
                                         hub: HubClient(baseURL: closed, environment: [:], timeout: 5, progressInterval: 0),
                                         v2BaseURL: closed)
        do {
            _ = try await downloader.ensure(name: "demucs")
            Issue.record("expected the download to fail")
        } catch let error as ModelStoreError {
            #expect(error.message.contains("\(closed.absoluteString)/demucs-e07c671f.th"), "\(error.message)")
            #expect(error.message.contains("demucsctl models import demucs-e07c671f.th"), "\(error.message)")
        }
        #expect(folder.contents().filter { !$0.hasPrefix(".") }.isEmpty)
    }

    @Test func v2NamesMapToTheFilesPretrainedPyListed() {
        let base = V2Models.defaultBaseURL
        #expect(V2Models.url(of: V2Models.fileName("demucs", signature: "e07c671f"), base: base).absoluteString
                == "https://dl.fbaipublicfiles.com/demucs/v3.0/demucs-e07c671f.th")
        #expect(Set(V2Models.signatures.keys) == ["demucs", "demucs48_hq", "demucs_extra", "demucs_quantized",
                                                  "tasnet", "tasnet_extra", "demucs_unittest"])
        #expect(V2Models.signature(of: try! HubModelName("someone/demucs")) == nil)
    }
}
