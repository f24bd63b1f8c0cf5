import Foundation
import Testing
@testable import JobStore

@Suite("Output folder names")
struct OutputNameTests {
    @Test("inputs mapping to the same name get numbered folders; the first keeps the plain name")
    func collisions() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let mp3 = try #require(try store.add("song.mp3"))
        let flac = try #require(try store.add("song.flac"))
        let wav = try #require(try store.add("song.wav"))
        #expect(try store.allocateOutputName(for: mp3.id, preferred: "song") == "song")
        #expect(try store.allocateOutputName(for: flac.id, preferred: "song") == "song (2)")
        #expect(try store.allocateOutputName(for: wav.id, preferred: "song") == "song (3)")
        #expect(try store.job(id: flac.id)?.outputName == "song (2)")
    }

    @Test("a job keeps its name when asked again (retry)")
    func stableForJob() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("song.mp3"))
        #expect(try store.allocateOutputName(for: job.id, preferred: "song") == "song")
        _ = try store.claimNext()
        try store.fail(id: job.id, error: "x", retries: 0)
        try store.retry(id: job.id)
        #expect(try store.allocateOutputName(for: job.id, preferred: "something else") == "song")
    }

    @Test("a replaced file reuses its input's previous folder, even a numbered one")
    func replacedFileReusesName() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let mp3 = try #require(try store.add("song.mp3", content: "v1"))
        let flac = try #require(try store.add("song.flac", content: "f1"))
        #expect(try store.allocateOutputName(for: mp3.id, preferred: "song") == "song")
        #expect(try store.allocateOutputName(for: flac.id, preferred: "song") == "song (2)")

        let flacV2 = try #require(try store.add("song.flac", content: "f2"))
        #expect(try store.allocateOutputName(for: flacV2.id, preferred: "song") == "song (2)")
        let mp3V2 = try #require(try store.add("song.mp3", content: "v2"))
        #expect(try store.allocateOutputName(for: mp3V2.id, preferred: "song") == "song")
    }

    @Test("a name held by any job of another input stays taken, whatever that job's state")
    func heldRegardlessOfState() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let first = try #require(try store.add("a.mp3"))
        #expect(try store.allocateOutputName(for: first.id, preferred: "a") == "a")
        try store.cancel(id: first.id)
        let other = try #require(try store.add("a.ogg"))
        #expect(try store.allocateOutputName(for: other.id, preferred: "a") == "a (2)")
    }

    @Test("numbering skips names taken literally by other inputs")
    func skipsLiteralNames() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let literal = try #require(try store.add("song (2).mp3"))
        #expect(try store.allocateOutputName(for: literal.id, preferred: "song (2)") == "song (2)")
        let song = try #require(try store.add("song.mp3"))
        #expect(try store.allocateOutputName(for: song.id, preferred: "song") == "song")
        let flac = try #require(try store.add("song.flac"))
        #expect(try store.allocateOutputName(for: flac.id, preferred: "song") == "song (3)")
    }

    @Test("unusable folder names and unknown jobs are refused", arguments: ["", ".", "..", "a/b", "nul\0byte"])
    func invalidNames(name: String) throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("a.mp3"))
        let error = try #require(throws: JobStoreError.self) {
            try store.allocateOutputName(for: job.id, preferred: name)
        }
        #expect(error.kind == .invalidArgument)
        #expect(throws: JobStoreError.self) { try store.setOutputName(id: job.id, name: name) }
        #expect(try store.job(id: job.id)?.outputName == nil)
    }

    @Test("setOutputName records the given name; unknown ids throw")
    func setOutputName() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("a.mp3"))
        try store.setOutputName(id: job.id, name: "custom")
        #expect(try store.job(id: job.id)?.outputName == "custom")
        let error = try #require(throws: JobStoreError.self) { try store.setOutputName(id: 77, name: "x") }
        #expect(error.kind == .jobNotFound)
        let missing = try #require(throws: JobStoreError.self) {
            try store.allocateOutputName(for: 77, preferred: "x")
        }
        #expect(missing.kind == .jobNotFound)
    }
}
