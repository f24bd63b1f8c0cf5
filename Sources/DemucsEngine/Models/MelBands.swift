import Foundation

/// The frequency bins of each band of a Mel-Band RoFormer: where
/// `librosa.filters.mel(sr, n_fft, n_mels=bands)` (Slaney mel scale and norm, 0 Hz to sr / 2) is
/// positive, with the first bin of the first band and the last bin of the last band added, as the
/// reference does. Bands overlap; every bin is in at least one.
///
/// Only the sign of each weight matters, so the computation follows librosa's in double precision
/// step by step (numpy's `rfftfreq` and `linspace`, the slopes `lower` and `upper`) to decide the
/// weights that are exactly zero the same way.
enum MelBands {
    static func bins(sampleRate: Int, nFFT: Int, bands: Int) -> [[Int]] {
        let count = nFFT / 2 + 1
        // np.fft.rfftfreq(n_fft, d=1/sr): i * (1 / (n * d)).
        let spacing = 1.0 / (Double(nFFT) * (1.0 / Double(sampleRate)))
        let fft = (0..<count).map { Double($0) * spacing }
        // mel_frequencies(bands + 2, 0, sr / 2): linspace over the mel scale, back to Hz.
        let points = bands + 2
        let top = hzToMel(Double(sampleRate) / 2)
        let step = top / Double(points - 1)
        var mels = (0..<points).map { Double($0) * step }
        mels[points - 1] = top
        let edges = mels.map(melToHz)
        var result: [[Int]] = []
        for i in 0..<bands {
            let below = edges[i + 1] - edges[i], above = edges[i + 2] - edges[i + 1]
            var band: [Int] = []
            for (f, hz) in fft.enumerated() {
                let lower = -(edges[i] - hz) / below
                let upper = (edges[i + 2] - hz) / above
                if min(lower, upper) > 0 { band.append(f) }
            }
            result.append(band)
        }
        if result[0].first != 0 { result[0].insert(0, at: 0) }
        if result[bands - 1].last != count - 1 { result[bands - 1].append(count - 1) }
        return result
    }

    // librosa's Slaney mel scale: linear below 1 kHz, logarithmic above.
    private static let linearStep = 200.0 / 3
    private static let logStart = 1000.0
    private static let logStartMel = logStart / linearStep
    private static let logStep = log(6.4) / 27

    static func hzToMel(_ hz: Double) -> Double {
        hz >= logStart ? logStartMel + log(hz / logStart) / logStep : hz / linearStep
    }

    static func melToHz(_ mel: Double) -> Double {
        mel >= logStartMel ? logStart * exp(logStep * (mel - logStartMel)) : linearStep * mel
    }
}
