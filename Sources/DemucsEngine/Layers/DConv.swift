/// The residual branch of Demucs encoder/decoder layers (`demucs.demucs.DConv`): `depth` blocks
/// of dilated conv → GroupNorm → GELU → 1×1 conv → GroupNorm → GLU → LayerScale, each added to its
/// input. The spectrogram branch runs it on every frequency row as a batch of its own.
struct DConv: Sendable {
    struct Block: Sendable {
        let conv1: Conv
        let norm1: GroupNorm
        let conv2: Conv
        let norm2: GroupNorm
        let scale: Tensor
    }

    let blocks: [Block]
    let gelu: Bool

    /// - Parameters:
    ///   - compress: channel compression inside the branch (`hidden = Int(channels / compress)`).
    ///   - depth: number of blocks; a negative depth turns dilation off, as in demucs.
    init(_ w: ScopedWeights, channels: Int, compress: Double, depth: Int, gelu: Bool = true) throws {
        let hidden = Int(Double(channels) / compress)
        let dilate = depth > 0
        var blocks: [Block] = []
        for d in 0..<abs(depth) {
            let dilation = dilate ? 1 << d : 1
            let s = w.scoped("layers.\(d)")
            blocks.append(Block(
                conv1: try Conv(s, "0", cin: channels, cout: hidden, kernel: 3, padding: dilation, dilation: dilation),
                norm1: try GroupNorm(s, "1", groups: 1, channels: hidden),
                conv2: try Conv(s, "3", cin: hidden, cout: 2 * channels, kernel: 1),
                norm2: try GroupNorm(s, "4", groups: 1, channels: 2 * channels),
                scale: try s.take("6.scale", [channels])))
        }
        self.blocks = blocks
        self.gelu = gelu
    }

    /// Applies the branch to `[batch, channels, time]`.
    func callAsFunction(_ input: Tensor, batch: Int) -> Tensor {
        var x = input
        let channels = x.shape[1]
        let time = x.count / (batch * channels)
        for block in blocks {
            var y = block.conv1(x, batch: batch)
            block.norm1(&y, batch: batch)
            if gelu { Activations.gelu(&y) } else { Activations.relu(&y) }
            y = block.conv2(y, batch: batch)
            block.norm2(&y, batch: batch)
            y = Activations.glu(y, batch: batch)
            // x += scale[c] * y
            x.data.withUnsafeMutableBufferPointer { xs in
                y.data.withUnsafeBufferPointer { ys in
                    for b in 0..<batch {
                        for c in 0..<channels {
                            let s = block.scale.data[c]
                            let o = (b * channels + c) * time
                            for t in 0..<time { xs[o + t] += s * ys[o + t] }
                        }
                    }
                }
            }
        }
        return x
    }
}
