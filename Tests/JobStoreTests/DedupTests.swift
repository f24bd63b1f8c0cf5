import Foundation
import Testing
@testable import JobStore

@Suite("Reusing stems of identical content")
struct DedupTests {
    @Test("the latest done job with the same hash and model is offered for reuse")
    func findsDoneJob() throws {
        let temp = try TempFolder()
        let clock = TestClock()
        let store = try JobStore(path: temp.databasePath, clock: clock.function)
        let first = try #require(try store.add("a.mp3", content: "X"))
        let second = try #require(try store.add("b.mp3", content: "X"))
        let otherModel = try #require(try store.add("c.mp3", content: "X", model: "htdemucs_ft"))
        let third = try #require(try store.add("d.mp3", content: "X"))
        #expect(try store.doneJob(withHash: hash("X"), model: "htdemucs") == nil)

        _ = try store.claimNext()
        try store.finish(id: first.id, outputs: ["a/vocals.wav"], audioSeconds: 2)
        _ = try store.claimNext()
        try store.finish(id: second.id, outputs: ["b/vocals.wav"], audioSeconds: 2, reusedFrom: first.id)
        _ = try store.claimNext()
        try store.finish(id: otherModel.id, outputs: ["c/vocals.wav"], audioSeconds: 2)

        // Newest first, reuses included, other model excluded, running/queued excluded.
        #expect(try store.doneJob(withHash: hash("X"), model: "htdemucs")?.id == second.id)
        #expect(try store.doneJobs(withHash: hash("X"), model: "htdemucs").map(\.id) == [second.id, first.id])
        #expect(try store.doneJob(withHash: hash("X"), model: "htdemucs_ft")?.id == otherModel.id)
        #expect(try store.doneJob(withHash: hash("Y"), model: "htdemucs") == nil)
        #expect(try store.job(id: third.id)?.state == .queued)
    }

    @Test("done jobs that wrote nothing are not offered")
    func skipsEmptyOutputs() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("a.mp3", content: "X"))
        _ = try store.claimNext()
        try store.finish(id: job.id, outputs: [], audioSeconds: nil)
        #expect(try store.doneJob(withHash: hash("X"), model: "htdemucs") == nil)
    }
}
