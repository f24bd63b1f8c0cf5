import AudioIO
import CSystemShims
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// demucsd-decode: the daemon's decoder, in a process of its own, so that a crash or a hang of
// libsndfile or ffmpeg on a hostile file is a failed job, never the daemon's death.
//
//     demucsd-decode --rate R --channels C [--ffmpeg PATH] [--cpu-seconds N] [--memory-mb M] < INPUT
//
// Reads the input on standard input (the daemon's open file, so it decodes exactly what the
// daemon opened), decodes it as `AudioDecoder.stream` does, and writes the samples to standard
// output as raw interleaved native float32 frames at R Hz with C channels. Limits are set on
// itself before anything is read (RLIMIT_CPU, RLIMIT_AS; no core dumps); an ffmpeg it starts
// inherits them. Exit status: 0 done; 2 the input cannot be decoded ("KIND<TAB>REASON" on
// standard error, KIND an `AudioIOError.Kind`); 3 a usage or set-up failure (a message).
//
// Test builds only (DEBUG): DEMUCSD_DECODER_TEST_FAULT=KIND:TEXT makes it misbehave before
// decoding when the input's file name contains TEXT — crash (SIGSEGV), hang (sleep), spin
// (burn CPU), alloc (take memory until refused) — so that the tests can show what the daemon
// does then. Release builds ignore the variable.

func fail(_ status: Int32, _ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(status)
}

var rate = 0, channels = 0, cpuSeconds = 0, memoryMB = 0
var ffmpegPath: String?
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst() else { fail(3, "\(flag) needs a value") }
    switch flag {
    case "--rate": rate = Int(value) ?? 0
    case "--channels": channels = Int(value) ?? 0
    case "--ffmpeg": ffmpegPath = value
    case "--cpu-seconds": cpuSeconds = Int(value) ?? 0
    case "--memory-mb": memoryMB = Int(value) ?? 0
    default: fail(3, "unknown option \(flag)")
    }
}
guard rate > 0, channels > 0 else { fail(3, "usage: demucsd-decode --rate R --channels C [--ffmpeg PATH] [--cpu-seconds N] [--memory-mb M] < INPUT") }

/// Lowers a limit of this process to `soft` / `hard` (never above what it already is).
func limit(_ resource: __rlimit_resource, soft: rlim_t, hard: rlim_t, _ what: String) {
    var current = rlimit()
    getrlimit(__rlimit_resource_t(resource.rawValue), &current)
    var wanted = rlimit(rlim_cur: min(soft, current.rlim_max), rlim_max: min(hard, current.rlim_max))
    guard setrlimit(__rlimit_resource_t(resource.rawValue), &wanted) == 0 else {
        fail(3, "cannot limit its \(what): \(String(cString: strerror(errno)))")
    }
}
limit(RLIMIT_CORE, soft: 0, hard: 0, "core dumps")
// The soft CPU limit sends SIGXCPU (its default action ends the process, whatever the parent
// left it as); the hard one, a second later, SIGKILL.
signal(SIGXCPU, SIG_DFL)
var xcpu = sigset_t()
sigemptyset(&xcpu)
sigaddset(&xcpu, SIGXCPU)
sigprocmask(SIG_UNBLOCK, &xcpu, nil)
if cpuSeconds > 0 { limit(RLIMIT_CPU, soft: rlim_t(cpuSeconds), hard: rlim_t(cpuSeconds + 1), "CPU time") }
// A build with AddressSanitizer or ThreadSanitizer (tools/sanitize.sh only) cannot run under
// any RLIMIT_AS: its shadow memory is terabytes of reserved address space. It goes without.
if memoryMB > 0, demucsd_sanitizer_reserves_address_space() == 0 {
    limit(RLIMIT_AS, soft: rlim_t(memoryMB) << 20, hard: rlim_t(memoryMB) << 20, "memory")
}

#if DEBUG
if let fault = ProcessInfo.processInfo.environment["DEMUCSD_DECODER_TEST_FAULT"],
   let colon = fault.firstIndex(of: ":") {
    let kind = fault[..<colon], text = String(fault[fault.index(after: colon)...])
    let name = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/0")) ?? ""
    if !text.isEmpty, name.contains(text) {
        switch kind {
        case "crash": raise(SIGSEGV)
        case "hang": while true { sleep(60) }
        case "spin": var x = 0.0; while true { x = (x + 1).squareRoot(); if x < 0 { print(x) } }
        case "alloc":
            var hold: [[UInt8]] = []
            while true { hold.append([UInt8](repeating: 1, count: 64 << 20)) }
        default: break
        }
    }
}
#endif

let ffmpeg = ffmpegPath.map { FFmpegDecoder(executable: $0) }
var buffer: [Float] = []
do {
    try AudioDecoder.stream(path: "/proc/self/fd/0", sampleRate: rate, channels: channels, ffmpeg: ffmpeg) { block in
        let n = block.frameCount
        if buffer.count < n * channels { buffer = [Float](repeating: 0, count: n * channels) }
        buffer.withUnsafeMutableBufferPointer { out in
            for c in 0..<channels {
                block.channels[c].withUnsafeBufferPointer { row in
                    for f in 0..<n { out[f * channels + c] = row[f] }
                }
            }
        }
        try buffer.withUnsafeBytes { raw in
            var done = 0
            let bytes = n * channels * 4
            while done < bytes {
                let w = write(STDOUT_FILENO, raw.baseAddress! + done, bytes - done)
                if w < 0 {
                    if errno == EINTR { continue }
                    // The daemon stopped reading (a cancel): nothing to report.
                    exit(errno == EPIPE ? 0 : 3)
                }
                done += w
            }
        }
    }
} catch let error as AudioIOError {
    fail(2, "\(error.kind.rawValue)\t\(error.reason)")
} catch {
    fail(3, "\(error)")
}
exit(0)
