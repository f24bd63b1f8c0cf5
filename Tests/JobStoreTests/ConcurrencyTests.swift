import Foundation
import Testing
@testable import JobStore

@Suite("Concurrent claims")
struct ConcurrencyTests {
    @Test("two stores on the same file claiming from two threads never get the same job")
    func disjointClaims() throws {
        let temp = try TempFolder()
        let jobCount = 60
        let setup = try JobStore(path: temp.databasePath)
        for index in 0..<jobCount { try setup.add("song \(index).mp3") }

        // Two independent stores = two connection pools, as two processes would have.
        let stores = [try JobStore(path: temp.databasePath), try JobStore(path: temp.databasePath)]
        let claimed = LockedBox([[Int64]](repeating: [], count: 2))
        let failures = LockedBox([String]())
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            // Bounded: at most one claim per job plus the final empty claim.
            for _ in 0...jobCount {
                do {
                    guard let job = try stores[worker].claimNext(worker: "w\(worker)") else { break }
                    claimed.mutate { $0[worker].append(job.id) }
                    #expect(try stores[worker].updateProgress(try #require(job.claim), progress: 0.5))
                } catch {
                    failures.mutate { $0.append("\(error)") }
                    break
                }
            }
        }
        #expect(failures.current.isEmpty)
        let all = claimed.current.flatMap { $0 }
        #expect(all.count == jobCount)
        #expect(Set(all).count == jobCount)
        #expect(Set(claimed.current[0]).isDisjoint(with: claimed.current[1]))
        #expect(try setup.counts()[.running] == jobCount)
        #expect(try setup.running().allSatisfy { $0.attempts == 1 })
    }

    @Test("concurrent enqueues of the same file from two stores create one job")
    func concurrentEnqueue() throws {
        let temp = try TempFolder()
        let stores = [try JobStore(path: temp.databasePath), try JobStore(path: temp.databasePath)]
        let created = LockedBox(0)
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            if (try? stores[index % 2].add("same.mp3", content: "S")) != nil {
                created.mutate { $0 += 1 }
            }
        }
        #expect(created.current == 1)
        #expect(try stores[0].jobs().count == 1)
    }
}
