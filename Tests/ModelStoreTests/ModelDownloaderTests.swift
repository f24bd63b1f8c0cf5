import DemucsEngine
import Foundation
import ModelStore
import Testing

/// Downloads against `TestHTTPServer` on 127.0.0.1: real HTTP through URLSession, no network.
@Suite struct ModelDownloaderTests {
    /// Server routes serving `files` from the hub repository `namespace/repo`.
    static func routes(namespace: String = "adefossez", repo: String, files: [String: Data]) -> [String: TestHTTPServer.Route] {
        var routes: [String: TestHTTPServer.Route] = [:]
        for (file, data) in files { routes[path(namespace: namespace, repo: repo, file)] = .file(data) }
        return routes
    }

    static func path(namespace: String = "adefossez", repo: String, _ file: String) -> String {
        "/\(namespace)/\(repo)/resolve/main/\(file)"
    }

    static func downloader(_ folder: TemporaryFolder, _ base: URL) -> ModelDownloader {
        ModelDownloader(cache: ModelCache(root: folder.path),
                        hub: HubClient(baseURL: base, environment: [:], timeout: 10, progressInterval: 0))
    }

    static func tiny4Files() throws -> [String: Data] {
        ["tiny4.yaml": try Fixtures.data("tiny4.yaml"), "7e1a4c02.safetensors": try Fixtures.data("7e1a4c02.safetensors")]
    }

    /// Runs `body`, expecting a `ModelStoreError`, and returns it.
    static func storeError(_ body: () async throws -> Void) async -> ModelStoreError? {
        do {
            try await body()
            Issue.record("expected a ModelStoreError, but nothing was thrown")
        } catch let error as ModelStoreError {
            return error
        } catch {
            Issue.record("expected a ModelStoreError, got \(type(of: error)): \(error)")
        }
        return nil
    }

    /// Temporary and lock files are hidden; this is what a person would see in the folder.
    static func partFiles(_ folder: TemporaryFolder) -> [String] {
        folder.contents().filter { $0.hasSuffix(".part") }
    }

    @Test func downloadsABagFollowingRedirectsAndRecordsHashes() async throws {
        let yaml = try Fixtures.data("bag2.yaml")
        let first = try Fixtures.data("7e1a4c02.safetensors")
        let second = try Fixtures.data("b2a1d7e8.safetensors")
        var routes = Self.routes(repo: "Demucs-bag2", files: ["b2a1d7e8.safetensors": second])
        // The hub answers with redirects to a CDN: here one absolute and one relative.
        routes[Self.path(repo: "Demucs-bag2", "bag2.yaml")] = .redirect("{base}/cdn/bag2.yaml")
        routes[Self.path(repo: "Demucs-bag2", "7e1a4c02.safetensors")] = .redirect("/cdn/first")
        routes["/cdn/bag2.yaml"] = .file(yaml)
        routes["/cdn/first"] = .file(first)
        let server = try TestHTTPServer(routes: routes)
        defer { server.stop() }
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let downloader = Self.downloader(folder, server.baseURL)
        let log = ProgressLog()

        let installed = try await downloader.ensure(name: "bag2", progress: { log.record($0) })

        let files = ["bag2.yaml", "7e1a4c02.safetensors", "b2a1d7e8.safetensors"]
        #expect(installed == InstalledModel(name: "bag2", folder: folder.path, files: files, downloaded: files))
        let sizes = [yaml, first, second]
        for (file, data) in zip(files, sizes) {
            #expect(FileManager.default.contents(atPath: folder.path + "/" + file) == data, "\(file) differs")
        }
        #expect(Self.partFiles(folder).isEmpty)

        // The manifest is sha256sum's format, with hashes computed independently here.
        let manifest = try String(contentsOfFile: folder.path + "/bag2.sha256", encoding: .utf8)
        let expected = zip(files, sizes).sorted { $0.0 < $1.0 }.map { "\(sha256Hex($0.1))  \($0.0)\n" }.joined()
        #expect(manifest == expected)
        #expect(try downloader.verify(name: "bag2") == InstalledModel(name: "bag2", folder: folder.path, files: files, downloaded: []))

        // The engine loads what was downloaded.
        let bag = try installed.repository.load(installed.name)
        #expect(bag.models.count == 2)

        // Progress: per file, in download order, starting at 0, strictly increasing, ending complete.
        #expect(log.files == files)
        for (file, data) in zip(files, sizes) {
            let reports = log.reports(for: file)
            let total = Int64(data.count)
            #expect(reports.first?.bytesDone == 0, "\(file): \(reports)")
            #expect(zip(reports, reports.dropFirst()).allSatisfy { $0.bytesDone < $1.bytesDone || $1.isComplete && $0.bytesDone == $1.bytesDone })
            #expect(reports.allSatisfy { $0.bytesTotal == total && $0.bytesDone <= total })
            #expect(reports.last == DownloadProgress(file: file, bytesDone: total, bytesTotal: total, isComplete: true))
            #expect(reports.filter(\.isComplete).count == 1)
        }
        // A 750 kB body arrives in several pieces, each reported.
        #expect(log.reports(for: "b2a1d7e8.safetensors").count > 3)

        // Once installed, ensure verifies and returns without asking the server again.
        let requests = server.requestedPaths
        #expect(requests.count == 5)
        let again = try await downloader.ensure(name: "bag2")
        #expect(again.downloaded.isEmpty)
        #expect(server.requestedPaths == requests)
    }

    @Test func namespacedModelGoesIntoItsOwnFolderAndLoads() async throws {
        let server = try TestHTTPServer(routes: Self.routes(namespace: "someuser", repo: "Demucs-tiny4", files: try Self.tiny4Files()))
        defer { server.stop() }
        let folder = try TemporaryFolder()
        defer { folder.remove() }

        let installed = try await Self.downloader(folder, server.baseURL).ensure(name: "someuser/tiny4")

        #expect(installed.folder == folder.path + "/someuser")
        #expect(installed.name == "tiny4")
        #expect(folder.contents(installed.folder).filter { !$0.hasPrefix(".") } == ["7e1a4c02.safetensors", "tiny4.sha256", "tiny4.yaml"])
        #expect(folder.contents().filter { !$0.hasPrefix(".") } == ["someuser"])
        let bag = try ModelRepository(root: installed.folder).load("tiny4")
        #expect(bag.models.count == 1)
    }

    @Test func tamperedFileIsReportedNotReplaced() async throws {
        let server = try TestHTTPServer(routes: Self.routes(repo: "Demucs-tiny4", files: try Self.tiny4Files()))
        defer { server.stop() }
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let downloader = Self.downloader(folder, server.baseURL)
        _ = try await downloader.ensure(name: "tiny4")
        try downloader.verify(name: "tiny4")

        // Change one byte in the middle; the size stays the same.
        let weights = folder.path + "/7e1a4c02.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: weights))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: weights))

        let verifyError = await Self.storeError { try downloader.verify(name: "tiny4") }
        #expect(verifyError?.kind == .checksumMismatch)
        #expect(verifyError?.message.contains("\(weights) is damaged or was changed") == true, "\(String(describing: verifyError))")
        #expect(verifyError?.message.hasSuffix("Delete \(weights) and fetch the model again.") == true)

        let requests = server.requestedPaths
        let ensureError = await Self.storeError { _ = try await downloader.ensure(name: "tiny4") }
        #expect(ensureError?.kind == .checksumMismatch)
        #expect(server.requestedPaths == requests)
        #expect(FileManager.default.contents(atPath: weights) == bytes)

        // Deleting the file, as the message says, makes the next ensure fetch it again.
        try FileManager.default.removeItem(atPath: weights)
        let repaired = try await downloader.ensure(name: "tiny4")
        #expect(repaired.downloaded == ["7e1a4c02.safetensors"])
        try downloader.verify(name: "tiny4")
    }

    @Test func missingYamlOf404GivesInstallInstructions() async throws {
        let server = try TestHTTPServer(routes: [:])
        defer { server.stop() }
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let base = server.baseURL.absoluteString

        let error = await Self.storeError { _ = try await Self.downloader(folder, server.baseURL).ensure(name: "htdemucs") }

        #expect(error?.kind == .notInstalled)
        #expect(error?.message == "model htdemucs is not installed and could not be downloaded (HTTP 404 (not found) for \(base)/adefossez/HTDemucs/resolve/main/htdemucs.yaml). Put htdemucs.yaml and 955717e8.safetensors from \(base)/adefossez/HTDemucs into \(folder.path), or pass --repo DIR.")
        #expect(folder.contents().filter { !$0.hasPrefix(".") }.isEmpty)
        #expect(Self.partFiles(folder).isEmpty)
        #expect(server.requestedPaths == ["/adefossez/HTDemucs/resolve/main/htdemucs.yaml"])
    }

    @Test func missingWeightsListOnlyWhatIsMissingAndResume() async throws {
        let yaml = try Fixtures.data("bag2.yaml")
        let first = try Fixtures.data("7e1a4c02.safetensors")
        let second = try Fixtures.data("b2a1d7e8.safetensors")
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        do {
            let server = try TestHTTPServer(routes: Self.routes(repo: "Demucs-bag2", files: ["bag2.yaml": yaml, "7e1a4c02.safetensors": first]))
            defer { server.stop() }
            let base = server.baseURL.absoluteString
            let error = await Self.storeError { _ = try await Self.downloader(folder, server.baseURL).ensure(name: "bag2") }
            #expect(error?.kind == .notInstalled)
            #expect(error?.message == "model bag2 is not installed and could not be downloaded (HTTP 404 (not found) for \(base)/adefossez/Demucs-bag2/resolve/main/b2a1d7e8.safetensors). Put b2a1d7e8.safetensors from \(base)/adefossez/Demucs-bag2 into \(folder.path), or pass --repo DIR.")
            #expect(folder.contents().filter { !$0.hasPrefix(".") } == ["7e1a4c02.safetensors", "bag2.sha256", "bag2.yaml"])
            #expect(Self.partFiles(folder).isEmpty)
        }
        // Once the file is available, only it is fetched; what was fetched before is kept.
        let server = try TestHTTPServer(routes: Self.routes(repo: "Demucs-bag2", files: ["bag2.yaml": yaml, "7e1a4c02.safetensors": first, "b2a1d7e8.safetensors": second]))
        defer { server.stop() }
        let installed = try await Self.downloader(folder, server.baseURL).ensure(name: "bag2")
        #expect(installed.downloaded == ["b2a1d7e8.safetensors"])
        #expect(server.requestedPaths == [Self.path(repo: "Demucs-bag2", "b2a1d7e8.safetensors")])
        try ModelCache(root: folder.path).verify(name: "bag2")
    }

    @Test func bodyCutShortLeavesNoFile() async throws {
        let weights = try Fixtures.data("7e1a4c02.safetensors")
        var routes = Self.routes(repo: "Demucs-tiny4", files: ["tiny4.yaml": try Fixtures.data("tiny4.yaml")])
        routes[Self.path(repo: "Demucs-tiny4", "7e1a4c02.safetensors")] = .truncated(declaredLength: weights.count, body: weights.prefix(100_000))
        let server = try TestHTTPServer(routes: routes)
        defer { server.stop() }
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let log = ProgressLog()

        let error = await Self.storeError {
            _ = try await Self.downloader(folder, server.baseURL).ensure(name: "tiny4", progress: { log.record($0) })
        }

        #expect(error?.kind == .notInstalled)
        #expect(error?.message.contains("(the connection was closed after 100000 of \(weights.count) bytes). Put 7e1a4c02.safetensors from") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/7e1a4c02.safetensors"))
        #expect(Self.partFiles(folder).isEmpty)
        #expect(log.reports(for: "7e1a4c02.safetensors").allSatisfy { !$0.isComplete })
    }

    @Test func unreachableHubGivesTheOfflineMessage() async throws {
        let port = try TestHTTPServer.closedPort()
        let base = "http://127.0.0.1:\(port)"
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let downloader = Self.downloader(folder, URL(string: base)!)

        let known = await Self.storeError { _ = try await downloader.ensure(name: "htdemucs_ft") }
        #expect(known?.kind == .notInstalled)
        #expect(known?.message == "model htdemucs_ft is not installed and could not be downloaded (cannot connect to 127.0.0.1:\(port)). Put htdemucs_ft.yaml, f7e0c4bc.safetensors, d12395a8.safetensors, 92cfc3b6.safetensors and 04573f0d.safetensors from \(base)/adefossez/HTDemucs-ft into \(folder.path), or pass --repo DIR.")

        let unknown = await Self.storeError { _ = try await downloader.ensure(name: "someuser/mymodel") }
        #expect(unknown?.message == "model someuser/mymodel is not installed and could not be downloaded (cannot connect to 127.0.0.1:\(port)). Put mymodel.yaml and the .safetensors files it lists from \(base)/someuser/Demucs-mymodel into \(folder.path)/someuser, or pass --repo DIR.")
        #expect(Self.partFiles(folder).isEmpty)
    }

    @Test func filesInstalledByHandWorkOfflineAndGetRecorded() async throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        for (file, data) in try Self.tiny4Files() {
            try data.write(to: URL(fileURLWithPath: folder.path + "/" + file))
        }
        let offline = URL(string: "http://127.0.0.1:\(try TestHTTPServer.closedPort())")!

        let installed = try await Self.downloader(folder, offline).ensure(name: "tiny4")

        #expect(installed.downloaded.isEmpty)
        let manifest = try ChecksumManifest.load(path: folder.path + "/tiny4.sha256")
        #expect(manifest?.hashes == (try Self.tiny4Files()).mapValues(sha256Hex))
        try ModelCache(root: folder.path).verify(name: "tiny4")
    }

    @Test func signatureThatIsNotAFileNameIsRefused() async throws {
        let server = try TestHTTPServer(routes: Self.routes(repo: "Demucs-evil", files: ["evil.yaml": Data("models: ['../../escape']\n".utf8)]))
        defer { server.stop() }
        let folder = try TemporaryFolder()
        defer { folder.remove() }

        let error = await Self.storeError { _ = try await Self.downloader(folder, server.baseURL).ensure(name: "evil") }

        #expect(error?.kind == .invalidName)
        #expect(error?.message.contains("'../../escape'") == true)
        #expect(server.requestedPaths == [Self.path(repo: "Demucs-evil", "evil.yaml")])
    }

    @Test func cancellingStopsTheDownloadAndRemovesThePart() async throws {
        let weights = try Fixtures.data("7e1a4c02.safetensors")
        var routes = Self.routes(repo: "Demucs-tiny4", files: ["tiny4.yaml": try Fixtures.data("tiny4.yaml")])
        routes[Self.path(repo: "Demucs-tiny4", "7e1a4c02.safetensors")] = .stall(declaredLength: weights.count, body: weights.prefix(50_000), seconds: 15)
        let server = try TestHTTPServer(routes: routes)
        defer { server.stop() }
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let log = ProgressLog()
        let downloader = Self.downloader(folder, server.baseURL)

        let task = Task { try await downloader.ensure(name: "tiny4", progress: { log.record($0) }) }
        // Wait (bounded) until part of the weights has arrived, then cancel.
        for _ in 0..<250 where log.reports(for: "7e1a4c02.safetensors").last?.bytesDone ?? 0 < 50_000 {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(FileManager.default.fileExists(atPath: folder.path + "/.7e1a4c02.safetensors.part"))
        let started = ProcessInfo.processInfo.systemUptime
        task.cancel()
        let error = await Self.storeError { _ = try await task.value }

        #expect(error?.kind == .cancelled)
        #expect(ProcessInfo.processInfo.systemUptime - started < 5)
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/7e1a4c02.safetensors"))
        #expect(Self.partFiles(folder).isEmpty)
    }
}
