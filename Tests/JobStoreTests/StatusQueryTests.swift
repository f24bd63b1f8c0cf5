import Foundation
import Testing
@testable import JobStore

@Suite("Status queries")
struct StatusQueryTests {
    /// a: done, b: failed, c: running, d: cancelled, e and f: queued.
    private func populated(_ temp: TempFolder, clock: TestClock) throws -> (JobStore, [String: Job]) {
        let store = try JobStore(path: temp.databasePath, clock: clock.function)
        var jobs: [String: Job] = [:]
        for name in ["a", "b", "c", "d", "e", "f"] {
            let job = try #require(try store.add("\(name).mp3"))
            jobs[name] = job
        }
        _ = try store.claimNext()
        try store.finish(id: jobs["a"]!.id, outputs: ["a/vocals.wav"], audioSeconds: 1)
        _ = try store.claimNext()
        try store.fail(id: jobs["b"]!.id, error: "broken", retries: 0)
        _ = try store.claimNext()
        try store.cancel(id: jobs["d"]!.id)
        return (store, jobs)
    }

    @Test("counts lists every state, zero included")
    func counts() throws {
        let temp = try TempFolder()
        let empty = try JobStore(path: temp.databasePath)
        #expect(try empty.counts() == [.queued: 0, .running: 0, .done: 0, .failed: 0, .cancelled: 0])

        let other = try TempFolder()
        let (store, _) = try populated(other, clock: TestClock())
        #expect(try store.counts() == [.queued: 2, .running: 1, .done: 1, .failed: 1, .cancelled: 1])
        #expect(try store.queueLength == 2)
    }

    @Test("jobs lists newest first, optionally by state, up to the limit")
    func jobsList() throws {
        let temp = try TempFolder()
        let (store, jobs) = try populated(temp, clock: TestClock())
        #expect(try store.jobs().map(\.inputName) == ["f.mp3", "e.mp3", "d.mp3", "c.mp3", "b.mp3", "a.mp3"])
        #expect(try store.jobs(limit: 2).map(\.inputName) == ["f.mp3", "e.mp3"])
        #expect(try store.jobs(state: .queued, limit: 10).map(\.id) == [jobs["f"]!.id, jobs["e"]!.id])
        #expect(try store.jobs(state: .running, limit: 10).map(\.id) == [jobs["c"]!.id])
        #expect(try store.jobs(limit: 0).isEmpty)
        #expect(try store.jobs(limit: -3).isEmpty)
        #expect(try store.queued().map(\.id) == [jobs["e"]!.id, jobs["f"]!.id])
        #expect(try store.running().map(\.id) == [jobs["c"]!.id])
        #expect(try store.job(id: 9_999) == nil)
    }

    @Test("recent done and failed lists are ordered by finish time, newest first")
    func recentLists() throws {
        let temp = try TempFolder()
        let clock = TestClock()
        let store = try JobStore(path: temp.databasePath, clock: clock.function)
        var ids: [Int64] = []
        for index in 0..<4 { ids.append(try #require(try store.add("\(index).mp3")).id) }
        // Finish in the order 2, 0 (done) and 3, 1 (failed).
        for _ in ids { _ = try store.claimNext() }
        try store.finish(id: ids[2], outputs: ["2/v.wav"], audioSeconds: 1)
        try store.finish(id: ids[0], outputs: ["0/v.wav"], audioSeconds: 1)
        try store.fail(id: ids[3], error: "e3", retries: 0)
        try store.fail(id: ids[1], error: "e1", retries: 0)
        #expect(try store.recentDone(limit: 10).map(\.id) == [ids[0], ids[2]])
        #expect(try store.recentDone(limit: 1).map(\.id) == [ids[0]])
        #expect(try store.recentFailed(limit: 10).map(\.id) == [ids[1], ids[3]])
        #expect(try store.recentFailed(limit: 10).map(\.error) == ["e1", "e3"])
    }
}
