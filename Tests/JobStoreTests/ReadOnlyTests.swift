import Foundation
import GRDB
import Testing
@testable import JobStore

@Suite("Read-only access (demucsctl status)")
struct ReadOnlyTests {
    @Test("a read-only store sees the writer's changes while the writer is open")
    func seesLiveChanges() throws {
        let temp = try TempFolder()
        let writer = try JobStore(path: temp.databasePath)
        let reader = try JobStore.openReadOnly(path: temp.databasePath)
        #expect(reader.isReadOnly)
        #expect(try reader.counts()[.queued] == 0)

        let job = try #require(try writer.add("song.mp3"))
        #expect(try reader.job(id: job.id)?.state == .queued)
        _ = try writer.claimNext()
        try writer.updateProgress(id: job.id, progress: 0.42)
        #expect(try reader.running().first?.progress == 0.42)
        try writer.finish(id: job.id, outputs: ["song/vocals.wav"], audioSeconds: 3)
        #expect(try reader.recentDone(limit: 5).map(\.id) == [job.id])
        #expect(try reader.journalMode() == "wal")
    }

    @Test("after the writer is closed, the WAL files stay and readers keep working")
    func worksAfterWriterClosed() throws {
        let temp = try TempFolder()
        let path = temp.databasePath
        var writer: JobStore? = try JobStore(path: path)
        let job = try #require(try writer?.add("song.mp3"))
        try writer?.setDaemonInfo(DaemonInfo(pid: 1, startedAt: 1, version: "v", model: "m", heartbeat: 1, status: "idle"))
        let openReader = try JobStore.openReadOnly(path: path)

        try writer?.close()
        writer = nil

        // SQLITE_FCNTL_PERSIST_WAL: closing the last writer did not delete -wal/-shm, which a
        // reader without write access to the folder could not recreate.
        #expect(FileManager.default.fileExists(atPath: path + "-wal"))
        #expect(FileManager.default.fileExists(atPath: path + "-shm"))

        #expect(try openReader.job(id: job.id)?.inputName == "song.mp3")
        let freshReader = try JobStore.openReadOnly(path: path)
        #expect(try freshReader.counts()[.queued] == 1)
        #expect(try freshReader.daemonInfo()?.status == "idle")
        // The reader closing does not remove them either.
        try freshReader.close()
        #expect(FileManager.default.fileExists(atPath: path + "-wal"))
    }

    @Test("writes through a read-only store fail: API calls with a clear error, raw SQL in SQLite")
    func writesFail() throws {
        let temp = try TempFolder()
        let writer = try JobStore(path: temp.databasePath)
        let job = try #require(try writer.add("song.mp3"))
        let reader = try JobStore.openReadOnly(path: temp.databasePath)

        let apiError = try #require(throws: JobStoreError.self) { try reader.cancel(id: job.id) }
        #expect(apiError.kind == .readOnly)
        #expect(apiError.description.contains("read-only"))
        #expect(throws: JobStoreError.self) { try reader.add("other.mp3") }
        #expect(throws: JobStoreError.self) { try reader.claimNext() }

        // Bypassing the store's guard: SQLite itself refuses (SQLITE_OPEN_READONLY).
        let sqlError = try #require(throws: DatabaseError.self) {
            try reader.database.write { db in try db.execute(sql: "DELETE FROM job") }
        }
        #expect(sqlError.resultCode == .SQLITE_READONLY)
        #expect(try writer.job(id: job.id)?.state == .queued)
    }

    @Test("a read-only open of a closed daemon's database does not create or migrate anything")
    func noSideEffects() throws {
        let temp = try TempFolder()
        var writer: JobStore? = try JobStore(path: temp.databasePath)
        try writer?.add("a.mp3")
        writer = nil
        let before = try FileManager.default.attributesOfItem(atPath: temp.databasePath)[.modificationDate] as? Date
        let reader = try JobStore.openReadOnly(path: temp.databasePath)
        _ = try reader.jobs()
        _ = try reader.counts()
        let after = try FileManager.default.attributesOfItem(atPath: temp.databasePath)[.modificationDate] as? Date
        #expect(before == after)
        #expect(try reader.appliedSchemaVersions() == ["v1", "v2-claims"])
    }
}
