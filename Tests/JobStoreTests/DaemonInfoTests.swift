import Foundation
import GRDB
import Testing
@testable import JobStore

@Suite("Daemon info row")
struct DaemonInfoTests {
    @Test("set, heartbeat, problem, clear")
    func lifecycle() throws {
        let temp = try TempFolder()
        let clock = TestClock(start: 2_000)
        let store = try JobStore(path: temp.databasePath, clock: clock.function)
        #expect(try store.daemonInfo() == nil)
        #expect(try store.touchHeartbeat(status: "idle") == false)

        let info = DaemonInfo(pid: 4242, startedAt: 1_999, version: "1.2.3", model: "htdemucs",
                              heartbeat: 1_999, status: "starting",
                              problem: "model htdemucs is not installed: put htdemucs.safetensors into /var/lib/demucsd/models")
        try store.setDaemonInfo(info)
        #expect(try store.daemonInfo() == info)

        clock.set(2_100)
        #expect(try store.touchHeartbeat(status: "separating song.mp3"))
        var read = try #require(try store.daemonInfo())
        #expect(read.heartbeat == 2_100)
        #expect(read.status == "separating song.mp3")
        #expect(read.problem == info.problem)  // heartbeat leaves the problem alone

        #expect(try store.setDaemonProblem(nil))
        read = try #require(try store.daemonInfo())
        #expect(read.problem == nil)

        // Setting again replaces: still a single row.
        var restarted = info
        restarted.pid = 5000
        try store.setDaemonInfo(restarted)
        #expect(try store.daemonInfo()?.pid == 5000)
        let rows = try store.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM daemon") }
        #expect(rows == 1)

        try store.clearDaemonInfo()
        #expect(try store.daemonInfo() == nil)
    }
}
