import Foundation
import JobStore
import Logging
import ServiceLifecycle
import UnixSignals
import Watcher

/// The watch-folder service: one intake thread turning `input/` events into jobs, `workers`
/// threads separating them, a heartbeat for `demucsctl status` and systemd's watchdog.
///
/// Start-up: create the folders, put back jobs a crash left running, clear staging, scan
/// `input/` for files dropped while the daemon was down, then tell systemd READY=1.
/// SIGTERM/SIGINT: stop taking jobs, stop the running ones at their next segment (they are
/// queued again), close the database, exit 0. SIGHUP: reload the configuration.
public final class Daemon: Service, @unchecked Sendable {
    let layout: DataLayout
    let store: JobStore
    let logger: Logger
    let notifier: SystemdNotifier
    let version: String
    private let reloadSettings: @Sendable () throws -> WorkSettings
    private let models: ModelProvider
    private let lock = NSCondition()
    private var settings: WorkSettings
    private var stopping = false
    /// Wakes the intake thread out of its wait on the watcher, so a stop is not delayed by it.
    private var intakeInterrupter: WatchInterrupter?
    private var wakeups = 0
    private var startedAt = Date()

    /// - Parameter reload: re-reads the configuration on SIGHUP (throws to keep the old one).
    public init(layout: DataLayout, settings: WorkSettings, version: String, logger: Logger,
                reload: @escaping @Sendable () throws -> WorkSettings) throws {
        self.layout = layout
        self.settings = settings
        self.version = version
        self.logger = logger
        self.reloadSettings = reload
        try layout.create()
        store = try JobStore(path: layout.database)
        notifier = SystemdNotifier()
        models = ModelProvider(settings: settings, logger: logger)
    }

    var stopRequested: Bool {
        lock.lock(); defer { lock.unlock() }
        return stopping
    }

    private func currentSettings() -> WorkSettings {
        lock.lock(); defer { lock.unlock() }
        return settings
    }

    /// Wakes the workers (a job was queued, the model or settings changed, or we are stopping).
    private func wake() {
        lock.lock()
        wakeups += 1
        lock.broadcast()
        lock.unlock()
    }

    // MARK: Service

    public func run() async throws {
        try startUp()
        let workerCount = max(1, currentSettings().workers)
        let finished = DispatchGroup()
        for i in 0..<workerCount {
            finished.enter()
            let t = Thread { [self] in
                workerLoop()
                finished.leave()
            }
            t.name = "worker-\(i)"
            t.start()
        }
        finished.enter()
        let intake = Thread { [self] in
            intakeLoop()
            finished.leave()
        }
        intake.name = "intake"
        intake.start()

        let hangups = Task { [self] in
            for await _ in await UnixSignalsSequence(trapping: .sighup) { reload() }
        }
        await withGracefulShutdownHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                finished.notify(queue: .global()) { continuation.resume() }
            }
        } onGracefulShutdown: { [self] in
            requestStop()
        }
        hangups.cancel()
        try? store.clearDaemonInfo()
        logger.notice("stopped")
    }

    /// Asks every thread to finish: workers stop at the next segment and requeue their job.
    public func requestStop() {
        lock.lock()
        let first = !stopping
        stopping = true
        lock.broadcast()
        let interrupter = intakeInterrupter
        lock.unlock()
        interrupter?.interrupt()
        if first {
            logger.notice("stopping: no new jobs; running jobs stop at the next segment and are queued again")
            notifier.stopping()
        }
    }

    private func startUp() throws {
        startedAt = Date()
        let interrupted = try store.requeueInterrupted(retryLimit: currentSettings().retryLimit)
        if interrupted.requeued > 0 {
            logger.warning("\(interrupted.requeued) job(s) were running when the daemon last stopped; queued again")
        }
        if interrupted.failed > 0 {
            logger.error("\(interrupted.failed) job(s) were running when the daemon last stopped and have used up their attempts; marked failed")
        }
        let cleaned = OutputPublisher.cleanStaging(layout)
        if cleaned > 0 { logger.info("removed \(cleaned) unfinished output folder(s) from staging") }
        let s = currentSettings()
        try store.setDaemonInfo(DaemonInfo(pid: getpid(), startedAt: startedAt.timeIntervalSince1970, version: version,
                                           model: s.modelName, heartbeat: Date().timeIntervalSince1970,
                                           status: "starting", problem: nil))
        logger.notice("started: version \(version), data \(layout.root), model \(s.modelName), \(s.workers) worker(s)")
    }

    private func reload() {
        do {
            let new = try reloadSettings()
            notifier.reloading()
            lock.lock()
            settings = new
            lock.unlock()
            models.update(new)
            logger.notice("configuration reloaded")
            notifier.ready()
            wake()
        } catch {
            logger.error("configuration not reloaded, keeping the previous one: \(error)")
        }
    }

    // MARK: Intake

    private func intakeLoop() {
        let intake = Intake(layout: layout, store: store, logger: logger)
        var watcher: FolderWatcher?
        var ready = false
        while !stopRequested {
            if watcher == nil {
                do {
                    try FileManager.default.createDirectory(atPath: layout.input, withIntermediateDirectories: true)
                    watcher = try FolderWatcher(path: layout.input, settle: .milliseconds(Int(currentSettings().settleSeconds * 1000)))
                    lock.lock()
                    intakeInterrupter = watcher!.interrupter
                    let stopNow = stopping
                    lock.unlock()
                    if stopNow { break }
                    scan(intake)
                } catch {
                    logger.error("cannot watch \(layout.input): \(error); retrying in 5 s")
                    Thread.sleep(forTimeInterval: 5)
                    continue
                }
                if !ready {
                    ready = true
                    notifier.ready()
                    heartbeat()
                }
            }
            let timeout: Duration = notifier.watchdogInterval.map { min($0 / 2, .seconds(5)) } ?? .seconds(5)
            do {
                let events = try watcher!.next(timeout: timeout)
                for event in events {
                    switch event {
                    case .ready(let name):
                        if intake.consider(name, settings: currentSettings()) { wake() }
                    case .rescanNeeded:
                        logger.warning("inotify queue overflowed; rescanning input/")
                        scan(intake)
                    case .folderGone:
                        logger.error("the input folder \(layout.input) disappeared; recreating it")
                        watcher = nil
                    case .ignored(let name, let kind):
                        if kind == .undecodableName {
                            logger.warning("ignoring input/\(name): the file name is not valid UTF-8; rename it")
                        } else {
                            intake.consider(name, settings: currentSettings())
                        }
                    case .removed:
                        break
                    }
                }
            } catch {
                logger.error("watching \(layout.input) failed: \(error); restarting the watch")
                watcher = nil
            }
            heartbeat()
        }
    }

    private func scan(_ intake: Intake) {
        let settings = currentSettings()
        do {
            var queued = 0
            for entry in try FolderWatcher.scanEntries(path: layout.input) where FolderWatcher.isCandidate(entry.name) {
                if intake.consider(entry.name, settings: settings) { queued += 1 }
            }
            if queued > 0 { logger.info("start-up scan queued \(queued) file(s)") }
            wake()
        } catch {
            logger.error("cannot scan \(layout.input): \(error)")
        }
    }

    /// Records liveness and a one-line status for `demucsctl status` and systemd.
    private func heartbeat() {
        let counts = (try? store.counts()) ?? [:]
        let current = ((try? store.running()) ?? []).map { String(format: "%@ %.0f%%", $0.inputName, $0.progress * 100) }
        var status = current.isEmpty ? "idle" : "separating " + current.joined(separator: ", ")
        status += ", \(counts[.queued] ?? 0) queued, \(counts[.done] ?? 0) done, \(counts[.failed] ?? 0) failed"
        if let problem = models.currentProblem { status = "waiting for the model: " + problem }
        // Jobs queued by another process (`demucsctl retry`) send no event: look for them here.
        if (counts[.queued] ?? 0) > 0 { wake() }
        _ = try? store.touchHeartbeat(status: status)
        _ = try? store.setDaemonProblem(models.currentProblem)
        notifier.status(status)
        notifier.watchdog()
    }

    // MARK: Workers

    private func workerLoop() {
        let runner = JobRunner(layout: layout, store: store, models: models, logger: logger)
        while !stopRequested {
            guard let bag = models.current() else {
                waitForWork(seconds: 10)
                continue
            }
            let job: Job?
            do {
                job = try store.claimNext()
            } catch {
                logger.error("cannot claim a job: \(error)")
                waitForWork(seconds: 5)
                continue
            }
            guard let job else {
                waitForWork(seconds: 30)
                continue
            }
            let settings = currentSettings()
            _ = runner.run(job, bag: bag, settings: settings, stopRequested: { [weak self] in self?.stopRequested ?? true })
        }
    }

    private func waitForWork(seconds: Double) {
        lock.lock()
        let seen = wakeups
        let deadline = Date().addingTimeInterval(seconds)
        while !stopping && wakeups == seen {
            if !lock.wait(until: deadline) { break }
        }
        lock.unlock()
    }
}
