import Foundation
import ModelStore
import Testing

@Suite struct HubModelNameTests {
    @Test(arguments: [
        ("htdemucs", "HTDemucs"),
        ("htdemucs_ft", "HTDemucs-ft"),
        ("htdemucs_6s", "HTDemucs-6s"),
        ("hdemucs_mmi", "Demucs-hdemucs_mmi"),
        ("mdx_extra_q", "Demucs-mdx_extra_q"),
        ("mdx", "Demucs-mdx"),
    ])
    func repositoryNameFollowsDemucs(name: String, repository: String) throws {
        let model = try HubModelName(name)
        #expect(model.namespace == "adefossez")
        #expect(model.model == name)
        #expect(model.repository == repository)
        #expect(model.yamlFile == name + ".yaml")
    }

    @Test func namespacedNameUsesItsNamespace() throws {
        let model = try HubModelName("someuser/htdemucs_ft")
        #expect(model.namespace == "someuser")
        #expect(model.model == "htdemucs_ft")
        #expect(model.repository == "HTDemucs-ft")
        #expect(!model.isDefaultNamespace)
        #expect(try HubModelName("adefossez/htdemucs").isDefaultNamespace)
    }

    @Test(arguments: ["", "a/b/c", "../htdemucs", "someuser/..", ".hidden", "html demucs", "x/", "/x", "a\\b"])
    func unsafeNamesAreRejected(name: String) {
        #expect(throws: ModelStoreError.self) { try HubModelName(name) }
        do {
            _ = try HubModelName(name)
        } catch let error as ModelStoreError {
            #expect(error.kind == .invalidName)
            #expect(error.message.contains("'\(name)'"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func fileURLsFollowTheHubLayout() throws {
        let hub = HubClient(baseURL: URL(string: "https://mirror.example/hf/")!)
        let model = try HubModelName("htdemucs_6s")
        #expect(hub.repositoryURL(for: model).absoluteString == "https://mirror.example/hf/adefossez/HTDemucs-6s")
        #expect(hub.fileURL("5c90dfd2.safetensors", of: model).absoluteString
                == "https://mirror.example/hf/adefossez/HTDemucs-6s/resolve/main/5c90dfd2.safetensors")
    }

    @Test func hubAddressComesFromParameterThenEnvironmentThenDefault() {
        let environment = ["DEMUCSD_HUB_URL": "http://127.0.0.1:9999"]
        #expect(HubClient(environment: [:]).baseURL.absoluteString == "https://huggingface.co")
        #expect(HubClient(environment: environment).baseURL.absoluteString == "http://127.0.0.1:9999")
        #expect(HubClient(baseURL: URL(string: "http://10.0.0.1")!, environment: environment).baseURL.absoluteString == "http://10.0.0.1")
        #expect(HubClient(environment: ["DEMUCSD_HUB_URL": "not a url"]).baseURL.absoluteString == "https://huggingface.co")
    }

    @Test func knownModelsListPublishedSignatures() throws {
        #expect(KnownModels.signatures(of: try HubModelName("htdemucs")) == ["955717e8"])
        #expect(KnownModels.signatures(of: try HubModelName("htdemucs_ft"))?.count == 4)
        #expect(KnownModels.signatures(of: try HubModelName("someuser/htdemucs")) == nil)
        #expect(KnownModels.signatures(of: try HubModelName("tiny4")) == nil)
    }
}
