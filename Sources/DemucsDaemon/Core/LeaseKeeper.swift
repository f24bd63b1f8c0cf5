import Foundation
import JobStore
import Logging

/// The lease side of a shared queue, run by the daemon's `lease` thread every
/// `heartbeat_seconds`: renews the leases of the claims this daemon's workers hold, and
/// rescues every job whose lease ran out, whoever held it (a host that died or froze), removing
/// the staging folder of the attempt it ends. A claim found no longer current is left to its
/// worker, which sees it at its next segment and stops without publishing.
final class LeaseKeeper: @unchecked Sendable {
    let store: any JobQueue
    let held: HeldClaims
    let layout: DataLayout
    let logger: Logger
    /// The last failure reported, so an outage is logged once and its end once.
    private var reported: String?

    init(store: any JobQueue, held: HeldClaims, layout: DataLayout, logger: Logger) {
        self.store = store
        self.held = held
        self.layout = layout
        self.logger = logger
    }

    /// One round. - Returns: whether a job went back to the queue (the workers should look).
    func renewAndRescue(retries: Int) -> Bool {
        var queued = false
        do {
            for claim in held.all where try !store.renew(claim) {
                logger.warning("\(claim) was handed on (its lease ran out, or it was cancelled or retried); the attempt stops")
            }
            for job in try store.rescueExpired(retries: retries) {
                let folder = OutputPublisher.stagingPath(layout, jobID: job.id, sequence: job.claimSequence)
                try? FileManager.default.removeItem(atPath: folder)
                let meta: Logger.Metadata = ["job": "\(job.id)", "file": "\(job.inputName)"]
                if job.state == .failed {
                    logger.error("job \(job.id) (\(job.inputName)): \(job.error ?? "lease ran out"); marked failed", metadata: meta)
                } else {
                    logger.warning("job \(job.id) (\(job.inputName)): \(job.error ?? "lease ran out"); queued again", metadata: meta)
                    queued = true
                }
            }
            if reported != nil { logger.notice("leases renewed again") }
            reported = nil
        } catch {
            let text = "\(error)"
            if reported != text { logger.error("cannot renew leases or rescue jobs: \(text)") }
            reported = text
        }
        return queued
    }
}
