@testable import CheckpointImport
@testable import DemucsEngine
import Foundation
import Testing

/// `.th` → hub safetensors conversion, against the safetensors fixtures and what demucs's
/// `tools/export_hf.py` writes (Tests/Fixtures/import/exported.json).
@Suite struct LegacyCheckpointTests {
    static func exported(_ sig: String) throws -> [String: Any] {
        let all = try Fixtures.json("exported.json") as! [String: Any]
        return all[sig] as! [String: Any]
    }

    @Test func tiny4ImportsToTheSameTensorsAsTheFixture() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (signature, file) = try LegacyCheckpoint.importFile(path: Fixtures.tiny4Th, into: folder)
        #expect(signature == "7e1a4c02")
        #expect(file == folder + "/7e1a4c02.safetensors")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["7e1a4c02.safetensors"])

        let imported = try SafeTensorsFile(path: file)
        let fixture = try SafeTensorsFile(path: Fixtures.tiny4Safetensors)
        #expect(Set(imported.names) == Set(fixture.names))
        #expect(imported.names.count == 465)
        for name in fixture.names {
            #expect(imported.entries[name]!.dtype == fixture.entries[name]!.dtype, "\(name)")
            #expect(try imported.tensor(name) == fixture.tensor(name), "\(name)")
        }
        // The metadata is what export_hf.py writes, byte for byte (and what the fixture holds).
        let metadata = try Self.exported("7e1a4c02")["metadata"] as! [String: String]
        #expect(imported.metadata == metadata)
        #expect(imported.metadata["kwargs"] == fixture.metadata["kwargs"])
        // And the engine loads it.
        let model = try ModelLoader.load(path: file)
        #expect(model.sources == ["drums", "bass", "other", "vocals"])
    }

    @Test func conversionIsReproducible() throws {
        let a = try LegacyCheckpoint.convert(path: Fixtures.tiny4Th)
        let b = try LegacyCheckpoint.convert(path: Fixtures.tiny4Th)
        #expect(SafeTensorsWriter.data(tensors: a.tensors, metadata: a.metadata) == SafeTensorsWriter.data(tensors: b.tensors, metadata: b.metadata))
    }

    @Test func signatureAndChecksumComeFromTheName() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let plain = folder + "/mymodel.th"
        try FileManager.default.copyItem(atPath: Fixtures.tiny4Th, toPath: plain)
        #expect(try LegacyCheckpoint.signature(ofFile: plain) == "mymodel")
        let wrong = folder + "/7e1a4c02-deadbeef.th"
        try FileManager.default.copyItem(atPath: Fixtures.tiny4Th, toPath: wrong)
        #expect { try LegacyCheckpoint.importFile(path: wrong, into: folder) } throws: {
            ($0 as? CheckpointError)?.message.contains("does not match its content") == true
        }
        #expect(!FileManager.default.fileExists(atPath: folder + "/7e1a4c02.safetensors"))
    }

    /// A diffq UniformQuantizer state of a waveform Demucs: flattened exactly as export_hf.py
    /// does, and dequantised to exactly the weights diffq restores.
    @Test func uniformQuantizedStateMatchesExportAndDiffq() throws {
        let converted = try LegacyCheckpoint.convert(path: Fixtures.uqwaveTh)
        #expect(converted.quantized)
        let reference = try Self.exported("uqwave")
        #expect(converted.metadata == reference["metadata"] as! [String: String])
        let tensors = reference["tensors"] as! [String: [Any]]
        #expect(Set(converted.tensors.keys) == Set(tensors.keys))
        let dtypeNames: [String: RawDType] = ["float32": .f32, "float16": .f16, "int64": .i64]
        for (name, info) in tensors {
            guard let t = converted.tensors[name] else { continue }
            #expect(t.dtype == dtypeNames[info[0] as! String], "\(name)")
            #expect(t.shape == (info[1] as! [Int]), "\(name)")
            #expect(FNV64.of(t.data) == info[2] as! String, "\(name)")
        }
        let state = try StateStructure.unflatten(json: converted.metadata["structure"]!, source: "uqwave") { converted.tensors[$0] }
        let layout = try ParameterLayout.parameters(klass: converted.metadata["klass"]!, kwargsJSON: converted.metadata["kwargs"]!, source: "uqwave")
        let weights = try DiffQ.dequantize(state: state, parameters: layout, source: "uqwave")
        try DiffQTests.checkHashes(weights, "uqwave")
    }

    /// Every hostile file is refused with a message that says why, and nothing is written.
    @Test(arguments: [
        ("os_system.th", "refusing to load: the pickle asks for global os.system"),
        ("construct.th", "calls demucs.htdemucs.HTDemucs"),
        ("zip_slip.th", "refusing to load: the zip entry '../evil' lies outside the archive's folder"),
        ("truncated_storage.th", "is truncated"),
        ("shape_mismatch.th", "tensor encoder.0.0.weight has shape [1, 1, 9], the architecture in its klass / kwargs needs [1, 1, 8]"),
        ("legacy.th", "legacy torch serialization format"),
    ])
    func hostileFilesAreRefused(_ file: String, _ message: String) throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        do {
            _ = try LegacyCheckpoint.importFile(path: Fixtures.hostile(file), into: folder)
            Issue.record("\(file) was imported")
        } catch let error as CheckpointError {
            #expect(error.message.contains(message), "\(error.message)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).isEmpty)
    }

    @Test func notACheckpoint() throws {
        let folder = try Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let bogus = folder + "/bogus.th"
        try Data("hello".utf8).write(to: URL(fileURLWithPath: bogus))
        #expect { try LegacyCheckpoint.convert(path: bogus) } throws: {
            ($0 as? CheckpointError)?.message.contains("not a torch checkpoint") == true
        }
        // A zip cut short.
        let cut = folder + "/cut.th"
        try Data(contentsOf: URL(fileURLWithPath: Fixtures.uqwaveTh)).prefix(20_000).write(to: URL(fileURLWithPath: cut))
        #expect(throws: CheckpointError.self) { try LegacyCheckpoint.convert(path: cut) }
    }
}
