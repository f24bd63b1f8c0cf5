import Foundation

/// A multi-layer LSTM as `torch.nn.LSTM(input, hidden, num_layers, bidirectional=...)` with its
/// default `batch_first=False`: input `[time, batch, input]`, output `[time, batch, dirs·hidden]`
/// (forward direction first), zero initial states.
///
/// Per layer and direction the weights are `weight_ih_l{k}[_reverse]` `[4H, in]`,
/// `weight_hh_l{k}[_reverse]` `[4H, H]` and the two biases `[4H]`, gates in PyTorch's order
/// input, forget, cell (g), output. The input projections of all time steps are one matrix
/// multiply; each step then adds `h · W_hhᵀ` (one small multiply for the whole batch) and runs
/// the gate arithmetic.
struct LSTM: Sendable {
    struct Direction: Sendable {
        let weightIH: Tensor   // [4H, in]
        let weightHH: Tensor   // [4H, H]
        let bias: [Float]      // b_ih + b_hh, [4H]
    }

    let inputSize: Int
    let hidden: Int
    let bidirectional: Bool
    /// `layers[k][d]`: layer `k`, direction `d` (0 forward, 1 reverse).
    let layers: [[Direction]]

    var directions: Int { bidirectional ? 2 : 1 }
    var outputSize: Int { directions * hidden }

    init(_ w: ScopedWeights, inputSize: Int, hidden: Int, layers count: Int, bidirectional: Bool) throws {
        self.inputSize = inputSize
        self.hidden = hidden
        self.bidirectional = bidirectional
        var layers: [[Direction]] = []
        for k in 0..<count {
            let inDim = k == 0 ? inputSize : (bidirectional ? 2 : 1) * hidden
            var dirs: [Direction] = []
            for suffix in bidirectional ? ["", "_reverse"] : [""] {
                let wih = try w.take("weight_ih_l\(k)\(suffix)", [4 * hidden, inDim])
                let whh = try w.take("weight_hh_l\(k)\(suffix)", [4 * hidden, hidden])
                let bih = try w.take("bias_ih_l\(k)\(suffix)", [4 * hidden])
                let bhh = try w.take("bias_hh_l\(k)\(suffix)", [4 * hidden])
                dirs.append(Direction(weightIH: wih, weightHH: whh, bias: zip(bih.data, bhh.data).map { $0 + $1 }))
            }
            layers.append(dirs)
        }
        self.layers = layers
    }

    /// Runs all layers on `[time, batch, inputSize]`; returns `[time, batch, dirs·hidden]`.
    func callAsFunction(_ input: Tensor, time: Int, batch: Int) -> Tensor {
        Profile.measure(.lstm) {
            var x = input
            for dirs in layers {
                x = runLayer(x, dirs, time: time, batch: batch)
            }
            return x
        }
    }

    private func runLayer(_ x: Tensor, _ dirs: [Direction], time: Int, batch: Int) -> Tensor {
        let h4 = 4 * hidden
        let inDim = x.count / max(time * batch, 1)
        let outDim = dirs.count * hidden
        var out = Tensor(zeros: [time, batch, outDim])
        var gates = LargeBuffer.zeros(time * batch * h4)
        var h = LargeBuffer.zeros(batch * hidden)
        var c = LargeBuffer.zeros(batch * hidden)
        for (d, dir) in dirs.enumerated() {
            // gates[t, n, :] = x[t, n, :] · W_ihᵀ + b_ih + b_hh, for every step at once.
            gates.withUnsafeMutableBufferPointer { gs in
                dir.bias.withUnsafeBufferPointer { bs in
                    for r in 0..<(time * batch) {
                        (gs.baseAddress! + r * h4).update(from: bs.baseAddress!, count: h4)
                    }
                }
                x.data.withUnsafeBufferPointer { xs in
                    dir.weightIH.data.withUnsafeBufferPointer { ws in
                        GEMM.multiply(transB: true, m: time * batch, n: h4, k: inDim,
                                      a: xs.baseAddress!, b: ws.baseAddress!, beta: 1, c: gs.baseAddress!)
                    }
                }
            }
            for i in 0..<h.count { h[i] = 0; c[i] = 0 }
            gates.withUnsafeMutableBufferPointer { gs in
                dir.weightHH.data.withUnsafeBufferPointer { whh in
                    h.withUnsafeMutableBufferPointer { hs in
                        c.withUnsafeMutableBufferPointer { cs in
                            out.data.withUnsafeMutableBufferPointer { os in
                                for step in 0..<time {
                                    let t = d == 0 ? step : time - 1 - step
                                    let g = gs.baseAddress! + t * batch * h4
                                    if step > 0 && batch == 1 {
                                        // g += W_hh · h
                                        GEMM.multiplyVector(m: h4, n: hidden, a: whh.baseAddress!,
                                                            x: hs.baseAddress!, beta: 1, y: g)
                                    } else if step > 0 {
                                        // g += h · W_hhᵀ
                                        GEMM.multiply(transB: true, m: batch, n: h4, k: hidden,
                                                      a: hs.baseAddress!, b: whh.baseAddress!, beta: 1, c: g)
                                    }
                                    for n in 0..<batch {
                                        LSTMCell.step(gates: g + n * h4, hidden: hidden,
                                                      c: cs.baseAddress! + n * hidden,
                                                      h: hs.baseAddress! + n * hidden,
                                                      out: os.baseAddress! + (t * batch + n) * outDim + d * hidden)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}

/// The gate arithmetic of one LSTM step, 8 lanes at a time.
enum LSTMCell {
    typealias V = VectorMath.V

    /// `i, f, g, o` from the `[4H]` pre-activations; `c = f·c + i·g`, `h = o·tanh(c)`; `h` is
    /// written to both `h` and `out`.
    @inline(__always)
    static func step(gates g: UnsafeMutablePointer<Float>, hidden: Int,
                     c: UnsafeMutablePointer<Float>, h: UnsafeMutablePointer<Float>,
                     out: UnsafeMutablePointer<Float>) {
        var j = 0
        while j < hidden {
            let lanes = min(8, hidden - j)
            let gi = load(g + j, lanes), gf = load(g + hidden + j, lanes)
            let gg = load(g + 2 * hidden + j, lanes), go = load(g + 3 * hidden + j, lanes)
            let cPrev = load(c + j, lanes)
            let cNew = sigmoid(gf) * cPrev + sigmoid(gi) * tanh(gg)
            let hNew = sigmoid(go) * tanh(cNew)
            store(cNew, c + j, lanes)
            store(hNew, h + j, lanes)
            store(hNew, out + j, lanes)
            j += 8
        }
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ lanes: Int) -> V {
        if lanes == 8 { return UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        var v = V(repeating: 0)
        for k in 0..<lanes { v[k] = p[k] }
        return v
    }

    @inline(__always)
    static func load(_ p: UnsafeMutablePointer<Float>, _ lanes: Int) -> V { load(UnsafePointer(p), lanes) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ lanes: Int) {
        if lanes == 8 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self); return }
        for k in 0..<lanes { p[k] = v[k] }
    }

    @inline(__always)
    static func sigmoid(_ x: V) -> V { 1 / (1 + VectorMath.exp(-x)) }

    /// tanh within about 2e-7 relative: an odd polynomial (least squares fit of tanh(x)/x in x²)
    /// below |x| = 0.625, `1 - 2 / (e^{2|x|} + 1)` above, where there is no cancellation to fear.
    @inline(__always)
    static func tanh(_ x: V) -> V {
        let a = x.replacing(with: -x, where: x .< 0)
        let u = a * a
        var p = V(repeating: 0.002170451200255349)
        p = p * u - 0.008205227957705093
        p = p * u + 0.021710712348537924
        p = p * u - 0.05394823720412408
        p = p * u + 0.13333212480079198
        p = p * u - 0.3333333059801446
        p = p * u + 0.9999999998993888
        let small = a * p
        let e = VectorMath.exp(2 * a.replacing(with: 20, where: a .> 20))
        let large = 1 - 2 / (e + 1)
        let y = large.replacing(with: small, where: a .< 0.625)
        return y.replacing(with: -y, where: x .< 0)
    }
}

/// `demucs.demucs.BLSTM`: a bidirectional LSTM with as many hidden units as input channels,
/// followed by a linear layer back to `dim`, on `[dim, batch, time]`.
///
/// With `maxSteps`, a sequence longer than that is cut into frames of `maxSteps` steps with a
/// hop of `maxSteps / 2` (zero-padded at the end, as `demucs.utils.unfold`), every frame runs as
/// a sequence of its own, and the frames are put back together keeping their middle parts (the
/// first frame keeps its start, the last its end). With `skip`, the input is added to the output.
struct BLSTM: Sendable {
    let dim: Int
    let lstm: LSTM
    let linear: Linear
    let maxSteps: Int?
    let skip: Bool

    init(_ w: ScopedWeights, dim: Int, layers: Int, maxSteps: Int? = nil, skip: Bool = false) throws {
        precondition(maxSteps == nil || maxSteps! % 4 == 0)
        self.dim = dim
        lstm = try LSTM(w.scoped("lstm"), inputSize: dim, hidden: dim, layers: layers, bidirectional: true)
        linear = try Linear(w, "linear", inDim: 2 * dim, outDim: dim)
        self.maxSteps = maxSteps
        self.skip = skip
    }

    /// `x` is `[dim, batch, time]` (the batch items are independent sequences); same shape out.
    func callAsFunction(_ x: Tensor, batch: Int) -> Tensor {
        let channels = dim
        let time = x.count / (channels * batch)
        precondition(channels * batch * time == x.count)
        // Frames: sequence s = n * frames + k covers x[:, n, k*stride ..< k*stride + width].
        let framed = maxSteps.map { time > $0 } ?? false
        let width = framed ? maxSteps! : time
        let stride = width / 2
        let frames = framed ? (time + stride - 1) / stride : 1
        let sequences = batch * frames
        // Time-major input [width, sequences, channels], zero past the end of the signal.
        var input = Tensor(zeros: [width, sequences, channels])
        x.data.withUnsafeBufferPointer { xs in
            input.data.withUnsafeMutableBufferPointer { ins in
                for n in 0..<batch {
                    for k in 0..<frames {
                        let s = n * frames + k
                        let start = framed ? k * stride : 0
                        let steps = min(width, time - start)
                        for ch in 0..<channels {
                            let src = xs.baseAddress! + (ch * batch + n) * time + start
                            for t in 0..<steps { ins[(t * sequences + s) * channels + ch] = src[t] }
                        }
                    }
                }
            }
        }
        let hiddenStates = lstm(input, time: width, batch: sequences)
        let y = linear(hiddenStates.reshaped([width * sequences, 2 * channels]))
        // Back to [channels, batch, time], keeping the middle of each frame.
        var out = Tensor(zeros: [channels, batch, time])
        let limit = stride / 2
        y.data.withUnsafeBufferPointer { ys in
            out.data.withUnsafeMutableBufferPointer { os in
                for n in 0..<batch {
                    var position = 0
                    for k in 0..<frames where position < time {
                        let s = n * frames + k
                        let from: Int, to: Int
                        if !framed {
                            from = 0; to = width
                        } else if k == 0 {
                            from = 0; to = width - limit
                        } else if k == frames - 1 {
                            from = limit; to = width
                        } else {
                            from = limit; to = width - limit
                        }
                        let count = min(to - from, time - position)
                        for ch in 0..<channels {
                            let dst = os.baseAddress! + (ch * batch + n) * time + position
                            for t in 0..<count { dst[t] = ys[((from + t) * sequences + s) * channels + ch] }
                        }
                        position += count
                    }
                }
                if skip {
                    x.data.withUnsafeBufferPointer { xs in
                        for i in 0..<os.count { os[i] += xs[i] }
                    }
                }
            }
        }
        return out
    }
}
