import AudioIO
import Foundation
import JobStore
import Logging
import ServiceLifecycle
import UnixSignals
import Watcher

/// The watch-folder service. Threads, each with one job:
/// - **watch**: turns `input/` events into names that are complete (the settle rule, for new
///   arrivals, the start-up scan and overflow rescans alike) and hands them to intake;
/// - **intake**: hashes each name and queues its job; a name whose enqueue met a busy database
///   stays pending and is tried again, so nothing dropped is lost;
/// - **worker-N** (`workers` of them): claim a job, separate it, publish it (`JobRunner`);
/// - **heartbeat**: records liveness for `demucsctl status` and pings systemd's watchdog — only
///   while every thread made progress or is idle (`Liveness`), so a stuck decode or BLAS call
///   stops the pings and systemd restarts the unit;
/// - **lease** (a shared queue only): renews the leases of the jobs this daemon's workers hold
///   and rescues the jobs whose lease ran out, whoever held them, every `heartbeat_seconds`.
///
/// Start-up: create the folders, release the claims a crash left (`requeueInterrupted`), clear
/// staging, install the SIGHUP handler, start the threads, tell systemd READY=1 once the watch
/// exists. SIGTERM/SIGINT: stop taking jobs, stop the running ones at their next segment (they
/// are queued again), close the database, exit 0. SIGHUP: reload the configuration.
public final class Daemon: Service, @unchecked Sendable {
    let layout: DataLayout
    let store: any JobQueue
    /// This daemon's name in the workers table; its workers are `NODE/worker-N`.
    let node: String
    let logger: Logger
    let notifier: SystemdNotifier
    let version: String
    private let reloadSettings: @Sendable () throws -> WorkSettings
    private let models: ModelProvider
    private let lock = NSCondition()
    private var settings: WorkSettings
    /// Settings fixed at start-up (a reload cannot change them): compared on SIGHUP.
    private let startSettings: WorkSettings
    private var stopping = false
    /// Wakes the watch thread out of its wait on the watcher, so a stop is not delayed by it.
    private var watchInterrupter: WatchInterrupter?
    private var wakeups = 0
    private var startedAt = Date()
    private let pause = QueuePause()
    private let liveness = Liveness()
    private let pending = PendingNames()
    private let persist: PersistentWrite
    private let held = HeldClaims()
    private let database: DatabaseConfig
    /// `demucsd-decode`, found beside this executable at start-up.
    private let decoderHelper: String

    /// - Parameter reload: re-reads the configuration on SIGHUP (throws to keep the old one).
    public init(layout: DataLayout, settings: WorkSettings, version: String, logger: Logger,
                reload: @escaping @Sendable () throws -> WorkSettings) throws {
        self.layout = layout
        self.settings = settings
        self.startSettings = settings
        self.version = version
        self.logger = logger
        self.reloadSettings = reload
        guard let helper = IsolatedDecoder.helperBesideExecutable() else {
            throw DaemonError("demucsd-decode is not installed beside demucsd: the daemon decodes its inputs in that helper process; install both (docs/SYSTEMD.md)")
        }
        decoderHelper = helper
        try layout.create()
        database = settings.config.database
        node = database.node ?? "\(ProcessInfo.processInfo.hostName):\(getpid())"
        store = try QueueOpening.open(database, layout: layout, logger: logger)
        notifier = SystemdNotifier()
        models = ModelProvider(settings: settings, logger: logger)
        persist = PersistentWrite(logger: logger)
    }

    var stopRequested: Bool {
        lock.lock(); defer { lock.unlock() }
        return stopping
    }

    private func currentSettings() -> WorkSettings {
        lock.lock(); defer { lock.unlock() }
        return settings
    }

    /// Wakes the workers and intake (a job or name is waiting, the model or settings changed,
    /// the pause ended, or we are stopping).
    private func wake() {
        lock.lock()
        wakeups += 1
        lock.broadcast()
        lock.unlock()
    }

    // MARK: Service

    public func run() async throws {
        try startUp()
        // Trap SIGHUP before any thread can send READY=1: systemd may send it right after.
        let hangupSignals = await UnixSignalsSequence(trapping: .sighup)
        let hangups = Task { [self] in
            for await _ in hangupSignals { reload() }
        }
        let workerCount = max(1, currentSettings().workers)
        let finished = DispatchGroup()
        func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
            finished.enter()
            let thread = Thread {
                body()
                finished.leave()
            }
            thread.name = name
            thread.start()
        }
        for i in 0..<workerCount {
            let identity = "\(node)/worker-\(i)"
            let slot = liveness.register("worker-\(i)")
            spawn("worker-\(i)") { [self] in workerLoop(identity: identity, slot: slot) }
        }
        let watchSlot = liveness.register("watch")
        spawn("watch") { [self] in watchLoop(slot: watchSlot) }
        let intakeSlot = liveness.register("intake")
        spawn("intake") { [self] in intakeLoop(slot: intakeSlot) }
        spawn("heartbeat") { [self] in heartbeatLoop() }
        if store.isShared {
            let leaseSlot = liveness.register("lease")
            spawn("lease") { [self] in leaseLoop(slot: leaseSlot) }
        }
        store.listen { [weak self] in self?.wake() }

        await withGracefulShutdownHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                finished.notify(queue: .global()) { continuation.resume() }
            }
        } onGracefulShutdown: { [self] in
            requestStop()
        }
        hangups.cancel()
        try? store.unregister(node: node)
        try? store.close()
        logger.notice("stopped")
    }

    /// Asks every thread to finish: workers stop at the next segment and requeue their job.
    public func requestStop() {
        lock.lock()
        let first = !stopping
        stopping = true
        lock.broadcast()
        let interrupter = watchInterrupter
        lock.unlock()
        interrupter?.interrupt()
        if first {
            logger.notice("stopping: no new jobs; running jobs stop at the next segment and are queued again")
            notifier.stopping()
        }
    }

    private func startUp() throws {
        startedAt = Date()
        let interrupted = try store.recoverAtStart(node: node, retries: currentSettings().retryLimit)
        if interrupted.requeued > 0 {
            logger.warning("\(interrupted.requeued) job(s) were running when the daemon last stopped; queued again")
        }
        if interrupted.failed > 0 {
            logger.error("\(interrupted.failed) job(s) were running when the daemon last stopped and have used up their retries; marked failed")
        }
        // On a shared data folder the other hosts' running attempts stay.
        let running = store.isShared ? Set(try store.running().compactMap(\.claim).map { "\($0.jobID)-\($0.sequence)" }) : []
        let cleaned = OutputPublisher.cleanStaging(layout) { running.contains("\($0)-\($1)") }
        if cleaned > 0 { logger.info("removed \(cleaned) unfinished output folder(s) from staging") }
        let s = currentSettings()
        try store.register(DaemonInfo(pid: getpid(), startedAt: startedAt.timeIntervalSince1970, version: version,
                                      model: s.modelName, heartbeat: Date().timeIntervalSince1970,
                                      status: "starting", problem: nil, node: node))
        let queue = store.isShared ? "shared queue \(store.location) as node \(node)" : "queue \(store.location)"
        logger.notice("started: version \(version), data \(layout.root), model \(s.modelName), \(s.workers) worker(s), \(queue)")
    }

    private func reload() {
        do {
            let new = try reloadSettings()
            notifier.reloading()
            lock.lock()
            settings = new
            lock.unlock()
            models.update(new)
            let fixed = ReloadCheck.unchangeable(from: startSettings, to: new)
            if !fixed.isEmpty {
                logger.warning("configuration reloaded, but \(fixed.joined(separator: ", ")) only change(s) at a restart; the running value(s) stay")
            } else {
                logger.notice("configuration reloaded")
            }
            notifier.ready()
            wake()
        } catch {
            logger.error("configuration not reloaded, keeping the previous one: \(error)")
        }
    }

    // MARK: Watch

    private func watchLoop(slot: Liveness.Slot) {
        var watcher: FolderWatcher?
        var ready = false
        let settle = Duration.milliseconds(Int(startSettings.settleSeconds * 1000))
        let watch = startSettings.config.watch
        var nextRescan = Date().addingTimeInterval(watch.rescanSeconds)
        while !stopRequested {
            liveness.beat(slot, stage: nil)
            if watcher == nil {
                do {
                    try FileManager.default.createDirectory(atPath: layout.input, withIntermediateDirectories: true)
                    let mode = WatchMode.choose(watch, folder: layout.input)
                    logger.info("watching \(layout.input): \(mode.description)")
                    let made = try FolderWatcher(path: layout.input, settle: settle, mode: mode.watcherMode)
                    lock.lock()
                    watchInterrupter = made.interrupter
                    let stopNow = stopping
                    lock.unlock()
                    if stopNow { break }
                    watcher = made
                    handle(try made.armExisting())
                } catch {
                    logger.error("cannot watch \(layout.input): \(error); retrying in 5 s")
                    Thread.sleep(forTimeInterval: 5)
                    continue
                }
                if !ready {
                    ready = true
                    notifier.ready()
                    wake()
                }
            }
            let timeout: Duration = notifier.watchdogInterval.map { min($0 / 4, .seconds(5)) } ?? .seconds(5)
            do {
                let events = try watcher!.next(timeout: timeout)
                var rescan = false
                for event in events {
                    switch event {
                    case .rescanNeeded: rescan = true
                    case .folderGone:
                        logger.error("the input folder \(layout.input) disappeared; recreating it")
                        watcher = nil
                    default: break
                    }
                }
                handle(events)
                if rescan, let watcher {
                    logger.warning("inotify queue overflowed; every file in input/ goes through the settle rule again")
                    handle(try watcher.armExisting())
                }
                // inotify can lose an event: now and then a scan looks for what changed unseen.
                if let watcher, watcher.mode == .inotify, Date() >= nextRescan {
                    nextRescan = Date().addingTimeInterval(watch.rescanSeconds)
                    handle(try watcher.rescan())
                }
            } catch {
                logger.error("watching \(layout.input) failed: \(error); restarting the watch")
                watcher = nil
            }
        }
    }

    /// Passes complete names to intake.
    private func handle(_ events: [WatchEvent]) {
        var added = false
        for event in events {
            switch event {
            case .ready(let name):
                pending.add(name); added = true
            case .ignored(let name, let kind):
                if kind == .undecodableName {
                    logger.warning("ignoring input/\(name): the file name is not valid UTF-8; rename it")
                } else {
                    pending.add(name); added = true
                }
            case .removed(let name):
                pending.remove(name)
            case .rescanNeeded, .folderGone:
                break
            }
        }
        if added { wake() }
    }

    // MARK: Intake

    private func intakeLoop(slot: Liveness.Slot) {
        let intake = Intake(layout: layout, store: store, logger: logger)
        var reported: String?
        while !stopRequested {
            guard let name = pending.next() else {
                liveness.idle(slot)
                waitForWork(seconds: pending.isEmpty ? 30 : 1)
                continue
            }
            liveness.beat(slot, stage: "hashing \(name)")
            switch intake.consider(name, settings: currentSettings()) {
            case .queued:
                pending.done(name)
                wake()
            case .settled:
                pending.done(name)
            case .retryLater(let reason):
                pending.postpone(name, seconds: 2)
                if reported != reason {
                    logger.error("\(reason); keeping \(name) to queue it when the database answers")
                    reported = reason
                }
            }
        }
    }

    // MARK: Heartbeat

    private func heartbeatLoop() {
        let interval = notifier.watchdogPingInterval.map { min($0, .seconds(5)) } ?? .seconds(5)
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        var stalledBefore: [String] = []
        while !stopRequested {
            heartbeat()
            let stalled = liveness.stalled(limit: Liveness.stallLimit)
            if stalled.isEmpty {
                notifier.watchdog()
            } else if stalled != stalledBefore {
                logger.critical("no progress for \(Int(Liveness.stallLimit)) s: \(stalled.joined(separator: "; ")); watchdog pings stop, so systemd restarts the unit")
            }
            stalledBefore = stalled
            lock.lock()
            if !stopping { _ = lock.wait(until: Date().addingTimeInterval(seconds)) }
            lock.unlock()
        }
    }

    /// Records liveness and a one-line status for `demucsctl status` and systemd.
    private func heartbeat() {
        let counts = (try? store.counts()) ?? [:]
        let mine = ((try? store.running()) ?? []).filter { $0.holder?.hasPrefix(node + "/") ?? true }
        let current = mine.map { String(format: "%@ %.0f%%", $0.inputName, $0.progress * 100) }
        var status = current.isEmpty ? "idle" : "separating " + current.joined(separator: ", ")
        status += ", \(counts[.queued] ?? 0) queued, \(counts[.done] ?? 0) done, \(counts[.failed] ?? 0) failed"
        var problem = models.currentProblem
        if let problem { status = "waiting for the model: " + problem }
        if let paused = pause.current() {
            let line = String(format: "queue paused for %.0f s: %@", paused.remaining, paused.cause)
            status = line + "; " + status
            problem = problem.map { line + "; " + $0 } ?? line
        }
        // Jobs queued by another process (`demucsctl retry`) send no event: look for them here.
        if (counts[.queued] ?? 0) > 0 { wake() }
        try? store.heartbeat(node: node, status: status, problem: problem)
        notifier.status(status)
    }

    // MARK: Workers

    private func workerLoop(identity: String, slot: Liveness.Slot) {
        var persist = self.persist
        persist.onWait = { [liveness] in liveness.beat(slot, stage: "waiting for the job database") }
        let runner = JobRunner(layout: layout, store: store, logger: logger, persist: persist, decoderHelper: decoderHelper)
        while !stopRequested {
            liveness.idle(slot)
            if let paused = pause.current() {
                waitForWork(seconds: paused.remaining)
                continue
            }
            guard let model = models.current() else {
                waitForWork(seconds: 10)
                continue
            }
            let job: Job?
            do {
                job = try store.claimNext(worker: identity, model: model.name)
            } catch {
                logger.error("cannot claim a job: \(error)")
                waitForWork(seconds: 5)
                continue
            }
            guard let job, let claim = job.claim else {
                waitForWork(seconds: 30)
                continue
            }
            liveness.beat(slot, stage: "separating \(job.inputName)")
            held.add(claim)
            defer { held.remove(claim) }
            let outcome = runner.run(job, claim: claim, model: model, settings: currentSettings(),
                                     progress: { [liveness] in liveness.beat(slot, stage: "separating \(job.inputName)") },
                                     stopRequested: { [weak self] in self?.stopRequested ?? true })
            switch outcome {
            case .machineFault(let cause):
                let seconds = pause.pause(cause: cause)
                logger.error(Logger.Message(stringLiteral: String(format: "queue paused for %.0f s: %@; jobs wait, none is failed for it", seconds, cause)))
            case .done:
                if pause.current() == nil { pause.clear() }
            default:
                break
            }
        }
    }

    // MARK: Leases

    private func leaseLoop(slot: Liveness.Slot) {
        let keeper = LeaseKeeper(store: store, held: held, layout: layout, logger: logger)
        while !stopRequested {
            liveness.beat(slot, stage: "renewing leases")
            if keeper.renewAndRescue(retries: currentSettings().retryLimit) { wake() }
            liveness.idle(slot)
            lock.lock()
            if !stopping { _ = lock.wait(until: Date().addingTimeInterval(database.heartbeatSeconds)) }
            lock.unlock()
        }
    }

    private func waitForWork(seconds: Double) {
        lock.lock()
        let seen = wakeups
        let deadline = Date().addingTimeInterval(max(seconds, 0.05))
        while !stopping && wakeups == seen {
            if !lock.wait(until: deadline) { break }
        }
        lock.unlock()
    }
}
