import AudioIO
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a job's stems will take on disk, estimated from the decoded length before the
/// separation starts, so that a job that cannot fit fails at once with what it needs and what
/// is free, instead of separating for minutes and then meeting a full disk.
///
/// The estimate is an upper bound: WAV is exact (header aside), FLAC is taken as large as the
/// integer WAV it encodes (it is smaller on music), MP3 as its bitrate plus 10%; 1 MiB of
/// slack covers headers and the filesystem's blocks. The streaming separation also writes
/// float32 spools into the staging folder: the decoded mix (removed once separated) and one
/// per output stem (each removed once encoded); the check counts them all at once.
enum OutputBudget {
    static let slack: Int64 = 1 << 20

    /// Bytes of `spools` float32 spools of a track of `frames` frames.
    static func spoolBytes(frames: Int, channels: Int, spools: Int) -> Int64 {
        PCMSpool.bytes(frames: frames, channels: channels) * Int64(spools)
    }

    static func bytes(frames: Int, sampleRate: Int, channels: Int, stems: Int,
                      formats: [(ext: String, options: EncodeOptions)]) -> Int64 {
        let samples = Int64(frames) * Int64(channels)
        var perStem: Int64 = 0
        for (_, options) in formats {
            switch options.format {
            case .mp3?:
                let seconds = Double(frames) / Double(max(sampleRate, 1))
                perStem += Int64(seconds * Double(options.mp3Bitrate) * 1000 / 8 * 1.1) + 4096
            case .wav? where options.asFloat:
                perStem += samples * 4 + 4096
            default:
                perStem += samples * Int64((options.bitsPerSample + 7) / 8) + 4096
            }
        }
        return perStem * Int64(stems) + slack
    }

    /// Bytes an unprivileged writer may still use on the filesystem holding `path`.
    static func freeBytes(at path: String) -> Int64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    static func megabytes(_ bytes: Int64) -> String {
        String(format: "%.1f MB", Double(bytes) / 1_048_576)
    }
}
