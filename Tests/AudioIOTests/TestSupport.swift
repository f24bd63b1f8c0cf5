import Foundation
@testable import AudioIO

/// Helpers shared by the AudioIO tests: private temporary folders, generated signals and the
/// location of the shared real-music clip.
enum TestSupport {
    /// A fresh empty folder under the system temporary directory; call `remove` when done.
    static func makeTemporaryFolder(_ label: String = #function) throws -> String {
        let safe = label.filter { $0.isLetter || $0.isNumber }
        let path = NSTemporaryDirectory() + "audioio-\(safe)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func remove(_ path: String) {
        // Make sure permission tests cannot leave an undeletable folder behind.
        _ = chmod(path, 0o755)
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Names in `folder` (hidden ones included), to prove no temporary file was left behind.
    static func contents(of folder: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: folder))?.sorted() ?? []
    }

    /// `amplitude * sin(2 pi f t + phase)` sampled at `rate`.
    static func sine(frequency: Double, rate: Int, frames: Int, amplitude: Double = 0.5, phase: Double = 0) -> [Float] {
        (0..<frames).map { Float(amplitude * sin(2 * Double.pi * frequency * Double($0) / Double(rate) + phase)) }
    }

    /// A deterministic stereo test buffer: different tones on left and right.
    static func stereoTones(rate: Int = 44100, frames: Int = 44100) -> AudioBuffer {
        AudioBuffer(sampleRate: rate, channels: [
            sine(frequency: 440, rate: rate, frames: frames, amplitude: 0.5),
            sine(frequency: 660, rate: rate, frames: frames, amplitude: 0.3, phase: 1),
        ])
    }

    static func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "length mismatch \(a.count) vs \(b.count)")
        var m: Float = 0
        for i in a.indices { m = max(m, abs(a[i] - b[i])) }
        return m
    }

    static func rms(_ x: ArraySlice<Float>) -> Double {
        guard !x.isEmpty else { return 0 }
        return (x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(x.count)).squareRoot()
    }

    /// The repository root: this file is `<repo>/Tests/AudioIOTests/TestSupport.swift`.
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `<repo>/../shared/test-audio/test.mp3` (20 s of stereo 44.1 kHz music), if present.
    static var sharedTestMP3: String? {
        let path = repositoryRoot.deletingLastPathComponent()
            .appendingPathComponent("shared/test-audio/test.mp3").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// `Tests/AudioIOTests/Fixtures/<name>`.
    static func fixture(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name).path
    }

    /// Raw little-endian float32 samples from a file.
    static func readFloat32(_ path: String) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }

    /// The payload of the first RIFF chunk named `id` in a WAV file, read without libsndfile so
    /// tests can check the exact bytes the encoder stored.
    static func wavChunk(_ id: String, in path: String) throws -> Data? {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count >= 12, String(decoding: data[0..<4], as: UTF8.self) == "RIFF" else { return nil }
        var offset = 12
        while offset + 8 <= data.count {
            let name = String(decoding: data[offset..<offset + 4], as: UTF8.self)
            let size = Int(data[offset + 4]) | Int(data[offset + 5]) << 8 | Int(data[offset + 6]) << 16 | Int(data[offset + 7]) << 24
            let start = offset + 8
            if name == id { return data.subdata(in: start..<min(start + size, data.count)) }
            offset = start + size + (size & 1)
        }
        return nil
    }
}
