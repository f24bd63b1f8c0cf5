import Foundation
import JobStore

/// The claims this daemon's workers hold now, for the thread that renews their leases. A
/// worker adds its claim once it has it and removes it when the attempt is over.
final class HeldClaims: @unchecked Sendable {
    private let lock = NSLock()
    private var claims: Set<Claim> = []

    func add(_ claim: Claim) { lock.withLock { _ = claims.insert(claim) } }
    func remove(_ claim: Claim) { lock.withLock { _ = claims.remove(claim) } }
    var all: [Claim] { lock.withLock { Array(claims) } }
}
