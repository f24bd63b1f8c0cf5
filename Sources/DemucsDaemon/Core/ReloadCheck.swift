/// Which settings a SIGHUP cannot change (the threads and the watch are made at start-up).
enum ReloadCheck {
    static func unchangeable(from old: WorkSettings, to new: WorkSettings) -> [String] {
        var names: [String] = []
        if old.workers != new.workers { names.append("jobs.workers (\(old.workers) stays)") }
        if old.settleSeconds != new.settleSeconds { names.append("jobs.settle_seconds (\(old.settleSeconds) stays)") }
        if old.config.data != new.config.data { names.append("data (\(old.config.data) stays)") }
        if old.config.database != new.config.database { names.append("[database] (the queue opened at start-up stays)") }
        if old.config.watch != new.config.watch { names.append("[watch] (the watch made at start-up stays)") }
        return names
    }
}
