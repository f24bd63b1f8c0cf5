import Foundation
import Testing
@testable import JobStore

@Suite("Enqueue and duplicate detection")
struct EnqueueTests {
    @Test("a new file becomes a queued job with everything recorded")
    func recordsJob() throws {
        let temp = try TempFolder()
        let clock = TestClock(start: 5_000)
        let store = try JobStore(path: temp.databasePath, clock: clock.function)
        let job = try #require(try store.enqueue(
            inputName: "song.mp3", size: 4_321, modified: 1_700_000_123.25,
            contentHash: hash("a"), model: "htdemucs"))
        #expect(job.id > 0)
        #expect(job.inputName == "song.mp3")
        #expect(job.inputSize == 4_321)
        #expect(job.inputModified == 1_700_000_123.25)
        #expect(job.contentHash == hash("a"))
        #expect(job.state == .queued)
        #expect(job.attempts == 0)
        #expect(job.error == nil)
        #expect(job.progress == 0)
        #expect(job.model == "htdemucs")
        #expect(job.outputName == nil)
        #expect(job.outputs == [])
        #expect(job.audioSeconds == nil)
        #expect(job.createdAt == 5_000)
        #expect(job.queuedAt == 5_000)
        #expect(job.startedAt == nil && job.finishedAt == nil && job.reusedFrom == nil)
        #expect(try store.job(id: job.id) == job)
    }

    @Test("same name and same content is already known while queued, running or done")
    func sameNameSameHash() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add("song.mp3", content: "A"))
        #expect(try store.add("song.mp3", content: "A") == nil)           // queued
        _ = try store.claimNext()
        #expect(try store.add("song.mp3", content: "A") == nil)           // running
        try store.finish(id: job.id, outputs: ["song/vocals.wav"], audioSeconds: 3)
        #expect(try store.add("song.mp3", content: "A") == nil)           // done
        #expect(try store.counts()[.queued] == 0)
        #expect(try store.jobs().count == 1)
    }

    @Test("same name with new content (file replaced after it ran) is a new job")
    func sameNameNewHash() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let first = try #require(try store.add("song.mp3", content: "A"))
        _ = try store.claimNext()
        let second = try #require(try store.add("song.mp3", content: "B"))
        #expect(second.id != first.id)
        #expect(second.contentHash == hash("B"))
        #expect(try store.queueLength == 1)
        #expect(try store.job(id: first.id)?.contentHash == hash("A"))
    }

    /// Why (3): an input replaced while its job is queued was separated under the old hash,
    /// then again for the new one. The queued job takes the new content instead.
    @Test("a file replaced while its job waits updates that job instead of queueing a second")
    func replacedWhileQueued() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let first = try #require(try store.add("song.mp3", content: "A", size: 10))
        let updated = try #require(try store.add("song.mp3", content: "B", size: 20))
        #expect(updated.id == first.id)
        #expect(updated.contentHash == hash("B") && updated.inputSize == 20)
        #expect(try store.queueLength == 1)
        #expect(try store.jobs().count == 1)
        #expect(try store.add("song.mp3", content: "B") == nil, "now known under the new hash")
    }

    @Test("same content under another name is a new job")
    func otherNameSameHash() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let first = try #require(try store.add("song.mp3", content: "A"))
        let copy = try #require(try store.add("copy of song.mp3", content: "A"))
        #expect(copy.id != first.id)
        #expect(copy.contentHash == first.contentHash)
    }

    @Test("a failed or cancelled earlier job does not block the same file")
    func failedOrCancelledDoNotBlock() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let failed = try #require(try store.add("bad.mp3"))
        _ = try store.claimNext()
        #expect(try store.fail(id: failed.id, error: "cannot decode", retries: 0) == .failed)
        let again = try #require(try store.add("bad.mp3"))
        #expect(again.id != failed.id)

        #expect(try store.cancel(id: again.id))
        #expect(try store.add("bad.mp3") != nil)
        #expect(try store.latestJob(inputName: "bad.mp3")?.state == .queued)
    }

    @Test("empty name or hash is refused with a clear error")
    func invalidArguments() throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let error = try #require(throws: JobStoreError.self) {
            try store.enqueue(inputName: "", size: 1, modified: 0, contentHash: hash("x"), model: "m")
        }
        #expect(error.kind == .invalidArgument)
        #expect(throws: JobStoreError.self) {
            try store.enqueue(inputName: "a.mp3", size: 1, modified: 0, contentHash: "", model: "m")
        }
    }

    @Test("Unicode, quotes, SQL-looking and leading-dash names round-trip exactly", arguments: [
        "Björk – Jóga (live).flac",
        "日本語の歌.wav",
        "emoji 🎵🎸.mp3",
        "it's \"quoted\".mp3",
        "-rf --leading dash.mp3",
        "x'); DROP TABLE job; --.mp3",
        "  spaces  .ogg",
        "e\u{301}cole vs \u{e9}cole.mp3",
    ])
    func namesRoundTrip(name: String) throws {
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        let job = try #require(try store.add(name))
        #expect(try store.job(id: job.id)?.inputName == name)
        // Exactly one row, found again by the same name (no normalisation, no injection).
        #expect(try store.add(name) == nil)
        #expect(try store.latestJob(inputName: name)?.id == job.id)
        let stem = String(name.split(separator: ".").dropLast().joined(separator: "."))
        #expect(try store.allocateOutputName(for: job.id, preferred: stem) == stem)
        #expect(try store.job(id: job.id)?.outputName == stem)
        try #require(try store.claimNext()?.id == job.id)
        try store.finish(id: job.id, outputs: ["\(stem)/vocals.wav", "\(stem)/drums.wav"], audioSeconds: 1)
        #expect(try store.job(id: job.id)?.outputs == ["\(stem)/vocals.wav", "\(stem)/drums.wav"])
    }

    @Test("canonically equivalent but differently encoded names are different files")
    func noUnicodeNormalisation() throws {
        // Linux file names are bytes: "é" precomposed and "e + combining accent" are two files.
        let temp = try TempFolder()
        let store = try JobStore(path: temp.databasePath)
        #expect(try store.add("\u{e9}.mp3", content: "A") != nil)
        #expect(try store.add("e\u{301}.mp3", content: "A") != nil)
        #expect(try store.queueLength == 2)
    }
}
