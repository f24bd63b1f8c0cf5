#if canImport(Glibc)
import Glibc
#endif

/// Turns SIGINT/SIGTERM into a flag that the separator polls between segments, so that an
/// interrupted run stops at the next segment and cleans up its staging files instead of dying
/// with half-written output.
enum Interruption {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    static var requested: Bool { flag != 0 }

    static func install() {
        let handler: @convention(c) (Int32) -> Void = { _ in
            if Interruption.flag != 0 { _exit(130) }  // a second signal: stop now
            Interruption.flag = 1
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }
}
