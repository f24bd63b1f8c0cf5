import Foundation

/// A task executor with threads of its own, on which the blocking bridge runs the database
/// work (``PostgresJobQueue``): its callers block their threads while they wait, and the
/// cooperative pool may be busy or small (two threads on a two-core machine), so the answer
/// must not need a thread of that pool.
final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    init(name: String, threads: Int = 2) {
        for i in 0..<threads {
            let thread = Thread { [self] in loop() }
            thread.name = "\(name)-\(i)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
