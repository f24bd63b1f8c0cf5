/// The residual branch of Demucs encoder/decoder layers (`demucs.demucs.DConv`): `depth` blocks
/// of dilated conv → GroupNorm → GELU → [BLSTM] → [LocalState] → 1×1 conv → GroupNorm → GLU →
/// LayerScale, each added to its input. The spectrogram branch runs it on every frequency row as
/// a batch of its own.
///
/// With `lstm` / `attn`, demucs inserts a `BLSTM(hidden, layers=2, max_steps=200, skip=True)`
/// and / or a `LocalState(hidden, heads=4, ndecay=4)` at index 3 of each block's
/// `nn.Sequential` (the LSTM first), so the later modules move up by one or two indices.
struct DConv: Sendable {
    struct Block: Sendable {
        let conv1: Conv
        let norm1: GroupNorm
        let conv2: Conv
        let norm2: GroupNorm
        let scale: Tensor
        let lstm: BLSTM?
        let attn: LocalState?
    }

    let blocks: [Block]
    let gelu: Bool

    /// - Parameters:
    ///   - compress: channel compression inside the branch (`hidden = Int(channels / compress)`).
    ///   - depth: number of blocks; a negative depth turns dilation off, as in demucs.
    ///   - attn, lstm: insert LocalState attention / a BLSTM into every block.
    init(_ w: ScopedWeights, channels: Int, compress: Double, depth: Int, gelu: Bool = true,
         attn: Bool = false, lstm: Bool = false) throws {
        let hidden = Int(Double(channels) / compress)
        let dilate = depth > 0
        var blocks: [Block] = []
        for d in 0..<abs(depth) {
            let dilation = dilate ? 1 << d : 1
            let s = w.scoped("layers.\(d)")
            var index = 3
            var blstm: BLSTM?
            var local: LocalState?
            if lstm {
                blstm = try BLSTM(s.scoped("\(index)"), dim: hidden, layers: 2, maxSteps: 200, skip: true)
                index += 1
            }
            if attn {
                local = try LocalState(s.scoped("\(index)"), channels: hidden, heads: 4, ndecay: 4)
                index += 1
            }
            blocks.append(Block(
                conv1: try Conv(s, "0", cin: channels, cout: hidden, kernel: 3, padding: dilation, dilation: dilation),
                norm1: try GroupNorm(s, "1", groups: 1, channels: hidden),
                conv2: try Conv(s, "\(index)", cin: hidden, cout: 2 * channels, kernel: 1),
                norm2: try GroupNorm(s, "\(index + 1)", groups: 1, channels: 2 * channels),
                scale: try s.take("\(index + 3).scale", [channels]),
                lstm: blstm, attn: local))
        }
        self.blocks = blocks
        self.gelu = gelu
    }

    /// Applies the branch to `[channels, batch, time]`: the waveform branch has one batch item,
    /// the spectrogram branch one per frequency row.
    ///
    /// `input` is consumed: a caller that passes its last reference lets the residual stream be
    /// updated in place instead of copied.
    func callAsFunction(_ input: consuming Tensor, batch: Int) -> Tensor {
        var x = input
        for block in blocks {
            let c1 = block.conv1
            var y = Convolution.convRows(x, batch: batch, weight: c1.weight, bias: c1.bias,
                                         padding: c1.padding, dilation: c1.dilation)
            if gelu {
                FusedDConv.normGELU(&y, batch: batch, weight: block.norm1.weight, bias: block.norm1.bias)
            } else {
                Normalization.groupNormRows(&y, batch: batch, weight: block.norm1.weight, bias: block.norm1.bias)
                Activations.relu(&y)
            }
            if let lstm = block.lstm { y = lstm(y, batch: batch) }
            if let attn = block.attn { y = attn(y, batch: batch) }
            if batch > 1 {
                // The spectrogram branch: the 1×1 conv folded in, block by block of rows.
                FusedDConv.pointwiseNormGLUAdd(y, into: &x, batch: batch, weight: block.conv2.weight,
                                               convBias: block.conv2.bias, normWeight: block.norm2.weight,
                                               normBias: block.norm2.bias, layerScale: block.scale)
                continue
            }
            y = Convolution.convRows(y, batch: batch, weight: block.conv2.weight, bias: block.conv2.bias)
            // x += scale[c] * GLU(norm2(y)), in one pass over y.
            FusedDConv.normGLUAdd(y, into: &x, batch: batch, weight: block.norm2.weight, bias: block.norm2.bias,
                                  layerScale: block.scale)
        }
        return x
    }
}
