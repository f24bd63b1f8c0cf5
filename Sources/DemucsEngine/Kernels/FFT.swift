import Foundation

/// An in-place radix-2 complex FFT of one power-of-two size, with its twiddles and bit-reversal
/// table computed once. The spectrogram branch needs only n_fft = 4096 (or a smaller power of two
/// in test models), and the STFT is a small share of the work, so a plain iterative FFT is enough.
struct FFT: Sendable {
    let size: Int
    private let cosTable: [Float]
    private let sinTable: [Float]
    private let bitReversed: [Int]

    init(size: Int) {
        precondition(size > 0 && size & (size - 1) == 0, "FFT size must be a power of two")
        self.size = size
        var cosTable = LargeBuffer.zeros(size / 2)
        var sinTable = LargeBuffer.zeros(size / 2)
        for k in 0..<(size / 2) {
            let angle = -2.0 * Double.pi * Double(k) / Double(size)
            cosTable[k] = Float(cos(angle))
            sinTable[k] = Float(sin(angle))
        }
        self.cosTable = cosTable
        self.sinTable = sinTable
        var bits = 0
        while (1 << bits) < size { bits += 1 }
        self.bitReversed = (0..<size).map { i in
            var r = 0
            for b in 0..<bits where i & (1 << b) != 0 { r |= 1 << (bits - 1 - b) }
            return r
        }
    }

    /// Transforms `re`/`im` in place; `inverse` uses the conjugate twiddles and does not scale.
    func transform(re: UnsafeMutablePointer<Float>, im: UnsafeMutablePointer<Float>, inverse: Bool = false) {
        for i in 0..<size {
            let j = bitReversed[i]
            if j > i {
                swap(&re[i], &re[j])
                swap(&im[i], &im[j])
            }
        }
        let sign: Float = inverse ? -1 : 1
        cosTable.withUnsafeBufferPointer { ct in
            sinTable.withUnsafeBufferPointer { st in
                var half = 1
                while half < size {
                    let step = size / (half * 2)
                    var start = 0
                    while start < size {
                        for k in 0..<half {
                            let wr = ct[k * step], wi = sign * st[k * step]
                            let a = start + k, b = a + half
                            let tr = re[b] * wr - im[b] * wi
                            let ti = re[b] * wi + im[b] * wr
                            re[b] = re[a] - tr
                            im[b] = im[a] - ti
                            re[a] += tr
                            im[a] += ti
                        }
                        start += half * 2
                    }
                    half *= 2
                }
            }
        }
    }
}
