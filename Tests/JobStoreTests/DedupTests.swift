import Foundation
import Testing
@testable import JobStore

@Suite("Reusing stems of identical content")
struct DedupTests {
    @Test("the latest done job with the same hash, model and recipe is offered for reuse")
    func findsDoneJob() throws {
        let temp = try TempFolder()
        let clock = TestClock()
        let store = try JobStore(path: temp.databasePath, clock: clock.function)
        let first = try #require(try store.add("a.mp3", content: "X"))
        let second = try #require(try store.add("b.mp3", content: "X"))
        let otherModel = try #require(try store.add("c.mp3", content: "X", model: "htdemucs_ft"))
        let otherRecipe = try #require(try store.add("e.mp3", content: "X"))
        let third = try #require(try store.add("d.mp3", content: "X"))
        #expect(try store.reusableJobs(withHash: hash("X"), model: "htdemucs", recipe: "recipe").isEmpty)

        _ = try store.claimNext()
        try store.finish(id: first.id, outputs: ["a/vocals.wav"], audioSeconds: 2)
        _ = try store.claimNext()
        try store.finish(id: second.id, outputs: ["b/vocals.wav"], audioSeconds: 2, reusedFrom: first.id)
        _ = try store.claimNext()
        try store.finish(id: otherModel.id, outputs: ["c/vocals.wav"], audioSeconds: 2)
        _ = try store.claimNext()
        try store.finish(id: otherRecipe.id, outputs: ["e/vocals.mp3"], audioSeconds: 2, recipe: "mp3 only")

        // Newest first, reuses included, other model / recipe excluded, running/queued excluded.
        #expect(try store.reusableJobs(withHash: hash("X"), model: "htdemucs", recipe: "recipe").map(\.id) == [second.id, first.id])
        #expect(try store.reusableJobs(withHash: hash("X"), model: "htdemucs_ft", recipe: "recipe").map(\.id) == [otherModel.id])
        #expect(try store.reusableJobs(withHash: hash("X"), model: "htdemucs", recipe: "mp3 only").map(\.id) == [otherRecipe.id])
        #expect(try store.reusableJobs(withHash: hash("Y"), model: "htdemucs", recipe: "recipe").isEmpty)
        #expect(try store.job(id: third.id)?.state == .queued)
    }

    @Test("done jobs that wrote nothing, or recorded no recipe, are not offered")
    func skipsEmptyOutputsAndUnknownRecipes() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("a.mp3", content: "X"))
        let old = try #require(try store.add("b.mp3", content: "X"))
        _ = try store.claimNext()
        try store.finish(id: job.id, outputs: [], audioSeconds: nil)
        _ = try store.claimNext()
        try store.finish(id: old.id, outputs: ["b/vocals.wav"], audioSeconds: 1, recipe: nil)
        #expect(try store.reusableJobs(withHash: hash("X"), model: "htdemucs", recipe: "recipe").isEmpty)
    }

    /// Why (1) of the job-semantics issue: `a.wav` replaced with new content gets its new stems
    /// in folder `a`; the done job of the old content must no longer point there, or a later
    /// `b.wav` with the old content would be handed the new song's stems.
    @Test("publishing over a folder supersedes the done job that had it")
    func replacedInputSupersedesOldEntry() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let old = try #require(try store.add("a.wav", content: "old song"))
        _ = try store.claimNext()
        #expect(try store.allocateOutputName(for: old.id, preferred: "a") == "a")
        try store.finish(id: old.id, outputs: ["a/vocals.wav"], audioSeconds: 1)
        #expect(try store.reusableJobs(withHash: hash("old song"), model: "htdemucs", recipe: "recipe").map(\.id) == [old.id])

        let new = try #require(try store.add("a.wav", content: "new song"))
        _ = try store.claimNext()
        #expect(try store.allocateOutputName(for: new.id, preferred: "a") == "a")
        try store.finish(id: new.id, outputs: ["a/vocals.wav"], audioSeconds: 1)

        #expect(try store.reusableJobs(withHash: hash("old song"), model: "htdemucs", recipe: "recipe").isEmpty)
        #expect(try store.job(id: old.id)?.superseded == true)
        #expect(try store.reusableJobs(withHash: hash("new song"), model: "htdemucs", recipe: "recipe").map(\.id) == [new.id])
    }

    /// Why (1), second half: a job queued under one model and run under another (the model
    /// changed by SIGHUP) is recorded with the model it ran.
    @Test("the model recorded is the one the worker used")
    func recordsModelUsed() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("a.wav", content: "S", model: "htdemucs"))
        let claimed = try #require(try store.claimNext(worker: testWorker, model: "htdemucs_ft"))
        #expect(claimed.model == "htdemucs_ft")
        try store.finish(try #require(claimed.claim), result: .init(outputs: ["a/vocals.wav"], audioSeconds: 1,
                                                                    model: "htdemucs_ft", recipe: "r"))
        #expect(try store.job(id: job.id)?.model == "htdemucs_ft")
        #expect(try store.reusableJobs(withHash: hash("S"), model: "htdemucs", recipe: "r").isEmpty)
        #expect(try store.reusableJobs(withHash: hash("S"), model: "htdemucs_ft", recipe: "r").map(\.id) == [job.id])
    }
}
