import Foundation
import ModelStore
import Testing

@Suite struct ModelCacheTests {
    @Test func explicitVariableWins() {
        let environment = ["DEMUCSD_MODELS": "/srv/models", "XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"]
        #expect(ModelCache.defaultRoot(environment: environment) == "/srv/models")
        #expect(ModelCache(environment: environment).root == "/srv/models")
    }

    @Test func xdgCacheHomeIsUsedNext() {
        let environment = ["XDG_CACHE_HOME": "/xdg/cache", "HOME": "/home/u"]
        #expect(ModelCache.defaultRoot(environment: environment) == "/xdg/cache/demucsd/models")
    }

    @Test func homeIsTheFallback() {
        #expect(ModelCache.defaultRoot(environment: ["HOME": "/home/u"]) == "/home/u/.cache/demucsd/models")
        // Empty values count as unset, and a relative XDG_CACHE_HOME is ignored as the spec says.
        #expect(ModelCache.defaultRoot(environment: ["DEMUCSD_MODELS": "", "XDG_CACHE_HOME": "", "HOME": "/home/u"])
                == "/home/u/.cache/demucsd/models")
        #expect(ModelCache.defaultRoot(environment: ["XDG_CACHE_HOME": "rel/cache", "HOME": "/home/u"])
                == "/home/u/.cache/demucsd/models")
    }

    @Test func pathsAreMadeAbsoluteAndClean() {
        let cwd = FileManager.default.currentDirectoryPath
        #expect(ModelCache.defaultRoot(environment: ["DEMUCSD_MODELS": "models"]) == URL(fileURLWithPath: cwd + "/models").standardizedFileURL.path)
        #expect(ModelCache(root: "/a/b/../c/").root == "/a/c")
    }

    @Test func namespacedModelsGetASubfolder() throws {
        let cache = ModelCache(root: "/cache")
        #expect(cache.folder(for: try HubModelName("htdemucs")) == "/cache")
        #expect(cache.folder(for: try HubModelName("adefossez/htdemucs")) == "/cache")
        #expect(cache.folder(for: try HubModelName("someuser/htdemucs")) == "/cache/someuser")
        #expect(cache.manifestPath(for: try HubModelName("someuser/mine")) == "/cache/someuser/mine.sha256")
    }

    @Test func manifestIsSha256sumFormat() throws {
        let a = String(repeating: "a", count: 64), b = String(repeating: "0", count: 63) + "f"
        let manifest = ChecksumManifest(hashes: ["x.yaml": a, "1234.safetensors": b])
        #expect(manifest.text == "\(b)  1234.safetensors\n\(a)  x.yaml\n")
        #expect(try ChecksumManifest(text: manifest.text, source: "m") == manifest)
        // sha256sum's binary marker, upper-case hex, comments and blank lines are accepted.
        let loose = "# made by hand\n\n\(a.uppercased()) *x.yaml\r\n\(b)  1234.safetensors"
        #expect(try ChecksumManifest(text: loose, source: "m") == manifest)
    }

    @Test(arguments: ["nothex  x.yaml", "\(String(repeating: "a", count: 63))  x", "\(String(repeating: "a", count: 64))", "\(String(repeating: "a", count: 64))  "])
    func malformedManifestIsRejected(line: String) {
        do {
            _ = try ChecksumManifest(text: line + "\n", source: "/c/m.sha256")
            Issue.record("accepted \(line)")
        } catch let error as ModelStoreError {
            #expect(error.kind == .invalidModelFile)
            #expect(error.message.contains("/c/m.sha256"))
            #expect(error.message.contains("line 1"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func streamingDigestMatchesKnownAndInMemoryHashes() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let small = folder.path + "/abc"
        try Data("abc".utf8).write(to: URL(fileURLWithPath: small))
        #expect(try FileDigest.sha256(ofFile: small) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // Larger than the 1 MiB read size, and not a multiple of it, so several chunks are hashed.
        let bytes = Data((0..<(3 << 20) + 12345).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 9)) })
        let large = folder.path + "/large"
        try bytes.write(to: URL(fileURLWithPath: large))
        #expect(try FileDigest.sha256(ofFile: large) == sha256Hex(bytes))
        #expect(throws: ModelStoreError.self) { try FileDigest.sha256(ofFile: folder.path + "/absent") }
    }

    @Test func verifyReportsAModelThatIsNotThere() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        do {
            try ModelCache(root: folder.path).verify(name: "htdemucs")
            Issue.record("verify passed on an empty folder")
        } catch let error as ModelStoreError {
            #expect(error.kind == .notInstalled)
            #expect(error.message == "model htdemucs is not installed: htdemucs.yaml is not in \(folder.path)")
        }
    }
}
