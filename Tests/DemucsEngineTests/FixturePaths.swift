import Foundation

/// Where the committed parity fixtures live (`Tests/Fixtures`, made by `tools/make_fixtures.py`).
enum FixturePaths {
    static let root: String = {
        let here = URL(fileURLWithPath: #filePath)
        return here.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
    }()

    static var models: String { root + "/models" }
    static var audio: String { root + "/audio" }
    static var expected: String { root + "/expected" }
    static var debug: String { root + "/debug" }
}

/// Signal-to-noise ratio of `estimate` against `reference`, in dB:
/// 10·log10(Σ ref² / Σ (ref − est)²).
func snr(reference: [Float], estimate: [Float]) -> Double {
    precondition(reference.count == estimate.count, "lengths differ: \(reference.count) vs \(estimate.count)")
    var signal = 0.0, noise = 0.0
    for i in 0..<reference.count {
        let r = Double(reference[i])
        let d = r - Double(estimate[i])
        signal += r * r
        noise += d * d
    }
    if noise == 0 { return .infinity }
    return 10 * log10(signal / noise)
}
