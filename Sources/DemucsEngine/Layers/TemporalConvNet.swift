/// The pieces of Conv-TasNet's temporal convolutional separator (demucs 2.0.3 `tasnet.py`):
/// bias-free 1×1 convolutions, single-parameter PReLU, its two layer norms and the temporal
/// block. Everything works on one item laid out `[channels, frames]`.

/// `nn.Conv1d(cin, cout, 1, bias=False)`: one matrix multiply.
struct PointwiseConv: Sendable {
    let weight: Tensor  // [cout, cin]
    var cout: Int { weight.shape[0] }

    init(_ w: ScopedWeights, _ name: String, cin: Int, cout: Int) throws {
        weight = try w.scoped(name).take("weight", [cout, cin, 1]).reshaped([cout, cin])
    }

    /// `[cin, frames]` → `[cout, frames]`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        Profile.measure(.convolution) {
            let cin = weight.shape[1], frames = x.count / cin
            var out = Tensor(zeros: [cout, frames])
            weight.data.withUnsafeBufferPointer { ws in
                x.data.withUnsafeBufferPointer { xs in
                    out.data.withUnsafeMutableBufferPointer { os in
                        GEMM.multiply(m: cout, n: frames, k: cin, a: ws.baseAddress!, b: xs.baseAddress!, c: os.baseAddress!)
                    }
                }
            }
            return out
        }
    }
}

/// `nn.PReLU()`: one slope shared by all channels.
struct PReLU: Sendable {
    let slope: Float

    init(_ w: ScopedWeights, _ name: String) throws {
        slope = try w.scoped(name).take("weight", [1]).data[0]
    }
}

/// Conv-TasNet's normalisation (`chose_norm`), after a PReLU that it applies first so that the
/// activation costs no pass of its own:
/// - gLN: `gamma · (y - mean) / sqrt(var + 1e-8) + beta`, mean and (biased) variance over all
///   channels and frames of the item;
/// - cLN: the same per frame, over the channels;
/// - id: nothing (the PReLU only).
struct TasNetNorm: Sendable {
    let kind: ConvTasNetConfig.Norm
    let gamma: [Float]
    let beta: [Float]

    init(_ w: ScopedWeights, _ name: String, kind: ConvTasNetConfig.Norm, channels: Int) throws {
        self.kind = kind
        if kind == .identity {
            gamma = []
            beta = []
        } else {
            let s = w.scoped(name)
            gamma = try s.take("gamma", [1, channels, 1]).data
            beta = try s.take("beta", [1, channels, 1]).data
        }
    }

    /// PReLU with `slope` (when given), then the norm, in place on `[channels, frames]`.
    func callAsFunction(_ x: inout Tensor, prelu slope: Float? = nil) {
        Profile.measure(.normalization) {
            let channels = x.shape[0], frames = x.count / channels
            x.data.withUnsafeMutableBufferPointer { xs in
                let p = xs.baseAddress!
                if let slope {
                    for i in 0..<xs.count where p[i] < 0 { p[i] *= slope }
                }
                switch kind {
                case .identity:
                    return
                case .global:
                    TasNetNorm.global(p, channels: channels, frames: frames, gamma: gamma, beta: beta)
                case .channelwise:
                    TasNetNorm.channelwise(p, channels: channels, frames: frames, gamma: gamma, beta: beta)
                }
            }
        }
    }

    static let eps = 1e-8

    static func global(_ p: UnsafeMutablePointer<Float>, channels: Int, frames: Int, gamma: [Float], beta: [Float]) {
        let n = channels * frames
        let (mean, sq) = Normalization.moments(p, count: n)
        let inv = 1 / (sq / Double(n) + eps).squareRoot()
        for c in 0..<channels {
            let g = Double(gamma[c]) * inv
            let scale = Float(g), shift = Float(Double(beta[c]) - mean * g)
            let q = p + c * frames
            for i in 0..<frames { q[i] = q[i] * scale + shift }
        }
    }

    static func channelwise(_ p: UnsafeMutablePointer<Float>, channels: Int, frames: Int, gamma: [Float], beta: [Float]) {
        // Statistics per frame, accumulated over the channel rows (row-major, so frame-vectorised).
        var mean = [Double](repeating: 0, count: frames)
        var sq = [Double](repeating: 0, count: frames)
        for c in 0..<channels {
            let q = p + c * frames
            for i in 0..<frames { mean[i] += Double(q[i]) }
        }
        for i in 0..<frames { mean[i] /= Double(channels) }
        for c in 0..<channels {
            let q = p + c * frames
            for i in 0..<frames { let d = Double(q[i]) - mean[i]; sq[i] += d * d }
        }
        var inv = LargeBuffer.zeros(frames)
        var m = LargeBuffer.zeros(frames)
        for i in 0..<frames {
            inv[i] = Float(1 / (sq[i] / Double(channels) + eps).squareRoot())
            m[i] = Float(mean[i])
        }
        for c in 0..<channels {
            let g = gamma[c], b = beta[c]
            let q = p + c * frames
            for i in 0..<frames { q[i] = g * ((q[i] - m[i]) * inv[i]) + b }
        }
    }
}

/// `TemporalBlock`: `x + pointwise(norm(prelu(depthwise(norm(prelu(conv1x1(x)))))))`, the
/// depthwise convolution dilated by `dilation` and padded to keep the length (causal: on the
/// left only, which is what v2's padding on both sides followed by `Chomp1d` amounts to).
struct TemporalBlock: Sendable {
    let expand: PointwiseConv
    let prelu1: PReLU
    let norm1: TasNetNorm
    let depthwise: Tensor  // [H, P]
    let dilation: Int
    let causal: Bool
    let prelu2: PReLU
    let norm2: TasNetNorm
    let project: PointwiseConv

    init(_ w: ScopedWeights, config c: ConvTasNetConfig, dilation: Int) throws {
        self.dilation = dilation
        causal = c.causal
        expand = try PointwiseConv(w, "net.0", cin: c.b, cout: c.h)
        prelu1 = try PReLU(w, "net.1")
        norm1 = try TasNetNorm(w, "net.2", kind: c.norm, channels: c.h)
        let s = w.scoped("net.3.net")
        depthwise = try s.take("0.weight", [c.h, 1, c.p]).reshaped([c.h, c.p])
        // The causal Sequential has Chomp1d at index 1, pushing the rest one place.
        let shift = c.causal ? 1 : 0
        prelu2 = try PReLU(s, "\(1 + shift)")
        norm2 = try TasNetNorm(s, "\(2 + shift)", kind: c.norm, channels: c.h)
        project = try PointwiseConv(s, "\(3 + shift)", cin: c.h, cout: c.b)
    }

    /// `[B, frames]` → `[B, frames]`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        var y = expand(x)
        norm1(&y, prelu: prelu1.slope)
        let taps = depthwise.shape[1]
        let left = causal ? (taps - 1) * dilation : (taps - 1) * dilation / 2
        var z = Convolution.depthwise(y, weight: depthwise, dilation: dilation, leftPadding: left)
        norm2(&z, prelu: prelu2.slope)
        var out = project(z)
        out.data.withUnsafeMutableBufferPointer { os in
            x.data.withUnsafeBufferPointer { xs in
                for i in 0..<os.count { os[i] += xs[i] }
            }
        }
        return out
    }
}
