import Foundation

/// The waveform Demucs (`demucs.demucs.Demucs`, demucs v3 and the time-only MDX models, and
/// demucs v2's `demucs.model.Demucs`, see `WaveformDemucsConfig(v2:)`): a U-Net over the raw
/// waveform.
///
/// In demucs's order: normalise by the mono mix's mean and standard deviation, zero-pad to
/// `valid_length` (centred), upsample ×2 with julius's sinc resampler, `depth` encoder layers
/// (strided conv → [GroupNorm] → GELU → [DConv] → 1×1 conv → [GroupNorm] → GLU), an optional
/// bidirectional LSTM at the bottom, `depth` decoder layers (skip added after centre-trimming,
/// conv → [GroupNorm] → GLU → [DConv] → transposed conv → [GroupNorm] → GELU except for the
/// outermost), downsample ×2, de-normalise, centre-trim to the input length.
public struct WaveformDemucs: SeparationModel {
    let config: WaveformDemucsConfig
    let encoder: [WaveEncoderLayer]
    /// Innermost first, as demucs stores and runs them.
    let decoder: [WaveDecoderLayer]
    let lstm: BLSTM?
    let upsample: SincResample
    let downsample: SincResample

    public var sources: [String] { config.sources }
    public var samplerate: Int { config.samplerate }
    public var audioChannels: Int { config.audioChannels }
    public var segment: Fraction
    public var maxSegment: Fraction? { nil }
    public var applyGeneration: ApplyGeneration { config.generation == .v2 ? .v2 : .v4 }

    init(config c: WaveformDemucsConfig, weights: Weights) throws {
        config = c
        segment = c.segment
        let w = weights.scoped("")
        var encoder: [WaveEncoderLayer] = []
        var decoder: [WaveDecoderLayer] = []
        var inChannels = c.audioChannels
        var channels = c.channels
        for index in 0..<c.depth {
            let norm = index >= c.normStarts
            let attn = index >= c.dconvAttn
            let lstm = index >= c.dconvLstm
            encoder.append(try WaveEncoderLayer(w.scoped("encoder.\(index)"), cin: inChannels, cout: channels,
                                                config: c, norm: norm, attn: attn, lstm: lstm))
            let outChannels = index > 0 ? inChannels : c.sources.count * c.audioChannels
            decoder.insert(try WaveDecoderLayer(w.scoped("decoder.\(c.depth - 1 - index)"), cin: channels,
                                                cout: outChannels, config: c, norm: norm, attn: attn, lstm: lstm,
                                                last: index == 0), at: 0)
            inChannels = channels
            channels = Int(c.growth * Double(channels))
        }
        self.encoder = encoder
        self.decoder = decoder
        lstm = c.lstmLayers > 0 ? try BLSTM(w.scoped("lstm"), dim: inChannels, layers: c.lstmLayers) : nil
        upsample = SincResample(from: 1, to: 2)
        downsample = SincResample(from: 2, to: 1)
    }

    public func validLength(_ length: Int) throws -> Int { config.validLength(length) }

    public func forward(_ input: Tensor) throws -> Tensor {
        try forward(input, trace: nil)
    }

    /// The forward pass; `trace` sees the intermediate tensors under the names of the parity
    /// fixture (`upsampled`, `enc0`…, `lstm`, `dec0`… (innermost first), `output`).
    func forward(_ input: Tensor, trace: ((String, Tensor) -> Void)?) throws -> Tensor {
        let channels = input.shape[0], length = input.shape[1]
        guard channels == config.audioChannels else {
            throw EngineError(.invalidArgument, "the model takes \(config.audioChannels) channels, the input has \(channels)")
        }
        guard length > 0 else { throw EngineError(.invalidArgument, "the input is empty") }
        var mean: Float = 0, std: Float = 1
        var x = input
        if config.normalize {
            var mono = LargeBuffer.zeros(length)
            for c in 0..<channels { for i in 0..<length { mono[i] += input.data[c * length + i] } }
            let n = Float(channels)
            for i in 0..<length { mono[i] /= n }
            let stats = mono.withUnsafeBufferPointer { Normalization.meanStd($0) }
            mean = stats.mean
            std = stats.std
            let divisor = 1e-5 + std
            x.data.withUnsafeMutableBufferPointer { xs in
                for i in 0..<xs.count { xs[i] = (xs[i] - mean) / divisor }
            }
        } else if config.generation == .v2 {
            // v2 divides by `1e-5 + std` with std = 1 even without `normalize` (and never
            // multiplies back): a float32 division by 1.00001.
            let divisor = Float(1 + 1e-5)
            x.data.withUnsafeMutableBufferPointer { xs in
                for i in 0..<xs.count { xs[i] = xs[i] / divisor }
            }
        }
        // v2's model runs on what `apply_model` gives it (already padded to `valid_length`).
        let valid = config.generation == .v2 ? length : try validLength(length)
        if valid > length {
            let delta = valid - length
            x = padBoth(x, left: delta / 2, right: delta - delta / 2)
        }
        if config.resample {
            x = upsample(x)
            trace?("upsampled", x)
        }
        var saved: [Tensor] = []
        for (index, encode) in encoder.enumerated() {
            x = encode(x)
            trace?("enc\(index)", x)
            saved.append(x)
        }
        if let lstm {
            let c = x.shape[0], t = x.shape[1]
            x = lstm(x.reshaped([c, 1, t]), batch: 1).reshaped([c, t])
            trace?("lstm", x)
        }
        for (index, decode) in decoder.enumerated() {
            let skip = centerTrimRows(saved.removeLast(), x.shape[1])
            x.data.withUnsafeMutableBufferPointer { xs in
                skip.data.withUnsafeBufferPointer { ss in
                    for i in 0..<xs.count { xs[i] += ss[i] }
                }
            }
            x = decode(x)
            trace?("dec\(index)", x)
        }
        if config.resample {
            x = downsample(x)
        }
        x.data.withUnsafeMutableBufferPointer { xs in
            for i in 0..<xs.count { xs[i] = xs[i] * std + mean }
        }
        // v2 returns its whole output, which `apply_model` centre-trims (once) to the chunk.
        if config.generation == .v4 { x = centerTrimRows(x, length) }
        return x.reshaped([config.sources.count, channels, x.shape[1]])
    }
}

/// Zero padding on both sides of the last axis of `[rows, length]`.
func padBoth(_ x: Tensor, left: Int, right: Int) -> Tensor {
    let rows = x.shape[0], length = x.shape[1]
    let total = left + length + right
    var out = Tensor(zeros: [rows, total])
    for r in 0..<rows {
        out.data.replaceSubrange((r * total + left)..<(r * total + left + length),
                                 with: x.data[(r * length)..<((r + 1) * length)])
    }
    return out
}

/// demucs's `center_trim` on `[rows, n]`: keeps `length` samples, the extra one (if the
/// difference is odd) taken off the right.
func centerTrimRows(_ x: Tensor, _ length: Int) -> Tensor {
    let rows = x.shape[0], n = x.shape[1]
    precondition(n >= length, "center_trim: \(n) samples cannot be trimmed to \(length)")
    if n == length { return x }
    let start = (n - length) / 2
    var out = Tensor(zeros: [rows, length])
    for r in 0..<rows {
        out.data.replaceSubrange((r * length)..<((r + 1) * length),
                                 with: x.data[(r * n + start)..<(r * n + start + length)])
    }
    return out
}

/// Chooses the checkpoint's name for a module at index 3 of a layer: checkpoints of the previous
/// Demucs generation have it at index 2 (demucs's `Demucs.load_state_dict` renames them).
private func moduleName(_ w: ScopedWeights, _ index: Int) -> String {
    if index == 3 && !w.has("3.weight") && w.has("2.weight") { return "2" }
    return "\(index)"
}

/// One encoder layer of the waveform Demucs (`encoder.N`, an `nn.Sequential`).
struct WaveEncoderLayer: Sendable {
    let conv: Conv
    let norm1: GroupNorm?
    let gelu: Bool
    let dconv: DConv?
    let rewrite: Conv?
    let norm2: GroupNorm?
    let glu: Bool

    init(_ w: ScopedWeights, cin: Int, cout: Int, config c: WaveformDemucsConfig,
         norm: Bool, attn: Bool, lstm: Bool) throws {
        conv = try Conv(w, "0", cin: cin, cout: cout, kernel: c.kernelSize, stride: c.stride)
        norm1 = norm ? try GroupNorm(w, "1", groups: c.normGroups, channels: cout) : nil
        gelu = c.gelu
        var index = 3
        if c.dconvMode & 1 != 0 {
            dconv = try DConv(w.scoped("3"), channels: cout, compress: c.dconvComp, depth: c.dconvDepth,
                              attn: attn, lstm: lstm)
            index += 1
        } else {
            dconv = nil
        }
        glu = c.glu
        if c.rewrite {
            let scale = c.glu ? 2 : 1
            rewrite = try Conv(w, moduleName(w, index), cin: cout, cout: scale * cout, kernel: 1)
            norm2 = norm ? try GroupNorm(w, "\(index + 1)", groups: c.normGroups, channels: scale * cout) : nil
        } else {
            rewrite = nil
            norm2 = nil
        }
    }

    /// `[cin, length]` → `[cout, (length - kernel) / stride + 1]`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        var y = conv(x)
        y = y.reshaped([y.shape[1], y.shape[2]])
        norm1?(&y)
        if gelu { Activations.gelu(&y) } else { Activations.relu(&y) }
        if let dconv {
            let c = y.shape[0], t = y.shape[1]
            y = dconv(y.reshaped([c, 1, t]), batch: 1).reshaped([c, t])
        }
        guard let rewrite else { return y }
        var z = rewrite(y)
        z = z.reshaped([z.shape[1], z.shape[2]])
        norm2?(&z)
        if glu {
            return Activations.gluChannels(z)
        }
        Activations.relu(&z)
        return z
    }
}

/// One decoder layer of the waveform Demucs (`decoder.N`, an `nn.Sequential`).
struct WaveDecoderLayer: Sendable {
    let rewrite: Conv?
    let norm1: GroupNorm?
    let glu: Bool
    let dconv: DConv?
    let convTr: ConvTranspose
    let norm2: GroupNorm?
    let gelu: Bool
    let last: Bool

    init(_ w: ScopedWeights, cin: Int, cout: Int, config c: WaveformDemucsConfig,
         norm: Bool, attn: Bool, lstm: Bool, last: Bool) throws {
        var index = 0
        glu = c.glu
        if c.rewrite {
            let scale = c.glu ? 2 : 1
            // v2's context convolution is unpadded with kernel `context`; v3/v4 pad a `2·context + 1` kernel.
            rewrite = c.generation == .v2
                ? try Conv(w, "0", cin: cin, cout: scale * cin, kernel: c.context)
                : try Conv(w, "0", cin: cin, cout: scale * cin, kernel: 2 * c.context + 1, padding: c.context)
            norm1 = norm ? try GroupNorm(w, "1", groups: c.normGroups, channels: scale * cin) : nil
            index = 3
        } else {
            rewrite = nil
            norm1 = nil
        }
        if c.dconvMode & 2 != 0 {
            dconv = try DConv(w.scoped("\(index)"), channels: cin, compress: c.dconvComp, depth: c.dconvDepth,
                              attn: attn, lstm: lstm)
            index += 1
        } else {
            dconv = nil
        }
        convTr = try ConvTranspose(w, moduleName(w, index), cin: cin, cout: cout, kernel: c.kernelSize,
                                   stride: c.stride, freq: false)
        norm2 = (norm && !last) ? try GroupNorm(w, "\(index + 1)", groups: c.normGroups, channels: cout) : nil
        gelu = c.gelu
        self.last = last
    }

    /// `[cin, length]` (skip already added) → `[cout, (length - 1) * stride + kernel]`.
    func callAsFunction(_ input: Tensor) -> Tensor {
        var y = input
        if let rewrite {
            var r = rewrite(y)
            r = r.reshaped([r.shape[1], r.shape[2]])
            norm1?(&r)
            if glu {
                y = Activations.gluChannels(r)
            } else {
                Activations.relu(&r)
                y = r
            }
        }
        if let dconv {
            let c = y.shape[0], t = y.shape[1]
            y = dconv(y.reshaped([c, 1, t]), batch: 1).reshaped([c, t])
        }
        var z = convTr(y)
        z = z.reshaped([z.shape[1], z.shape[2]])
        if !last {
            norm2?(&z)
            if gelu { Activations.gelu(&z) } else { Activations.relu(&z) }
        }
        return z
    }
}
