/// A convolution along one axis (`nn.Conv1d`, or `nn.Conv2d` with a `[K, 1]` kernel acting on
/// frequencies): weights `[cout, cin, K]`, applied to `[batch, cin, length, inner]`.
struct Conv: Sendable {
    let weight: Tensor
    let bias: Tensor?
    let stride: Int
    let padding: Int
    let dilation: Int
    var cout: Int { weight.shape[0] }

    /// Loads `name.weight` (`[cout, cin, K]`, or `[cout, cin, K, 1]` when `freq`) and `name.bias`.
    init(_ w: ScopedWeights, _ name: String, cin: Int, cout: Int, kernel: Int,
         stride: Int = 1, padding: Int = 0, dilation: Int = 1, freq: Bool = false) throws {
        let s = w.scoped(name)
        let shape = freq ? [cout, cin, kernel, 1] : [cout, cin, kernel]
        weight = try s.take("weight", shape).reshaped([cout, cin, kernel])
        bias = try s.take("bias", [cout])
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
    }

    func callAsFunction(_ x: Tensor, batch: Int = 1, inner: Int = 1) -> Tensor {
        Convolution.conv(x, batch: batch, inner: inner, weight: weight, bias: bias,
                         stride: stride, padding: padding, dilation: dilation)
    }
}

/// A transposed convolution along one axis (`nn.ConvTranspose1d`, or `nn.ConvTranspose2d` with a
/// `[K, 1]` kernel), no padding: weights `[cin, cout, K]`.
struct ConvTranspose: Sendable {
    let weight: Tensor
    let bias: Tensor?
    let stride: Int

    init(_ w: ScopedWeights, _ name: String, cin: Int, cout: Int, kernel: Int, stride: Int, freq: Bool) throws {
        let s = w.scoped(name)
        let shape = freq ? [cin, cout, kernel, 1] : [cin, cout, kernel]
        weight = try s.take("weight", shape).reshaped([cin, cout, kernel])
        bias = try s.take("bias", [cout])
        self.stride = stride
    }

    func callAsFunction(_ x: Tensor, inner: Int = 1) -> Tensor {
        Convolution.convTranspose(x, batch: 1, inner: inner, weight: weight, bias: bias, stride: stride)
    }
}

/// A 2-D convolution with stride 1: square (`nn.Conv2d(cin, cout, k, 1, k // 2)`), or
/// `[kh, kw]` with padding `[ph, pw]` (the `context_freq=False` rewrite, `[1, k]` along time).
struct Conv2d: Sendable {
    let weight: Tensor
    let bias: Tensor?
    let padding: (Int, Int)

    init(_ w: ScopedWeights, _ name: String, cin: Int, cout: Int, kernel: Int, padding: Int) throws {
        try self.init(w, name, cin: cin, cout: cout, kernel: (kernel, kernel), padding: (padding, padding))
    }

    init(_ w: ScopedWeights, _ name: String, cin: Int, cout: Int, kernel: (Int, Int), padding: (Int, Int)) throws {
        let s = w.scoped(name)
        weight = try s.take("weight", [cout, cin, kernel.0, kernel.1])
        bias = try s.take("bias", [cout])
        self.padding = padding
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        Convolution.conv2d(x, weight: weight, bias: bias, padding: padding)
    }
}

/// `nn.GroupNorm(groups, channels)` with its affine weights, on `[batch, channels, ...]`.
struct GroupNorm: Sendable {
    let groups: Int
    let weight: Tensor
    let bias: Tensor

    init(_ w: ScopedWeights, _ name: String, groups: Int, channels: Int) throws {
        let s = w.scoped(name)
        self.groups = groups
        weight = try s.take("weight", [channels])
        bias = try s.take("bias", [channels])
    }

    func callAsFunction(_ x: inout Tensor, batch: Int = 1) {
        Normalization.groupNorm(&x, batch: batch, channels: weight.count, groups: groups, weight: weight, bias: bias)
    }
}

/// `nn.LayerNorm(dim)` over the last axis.
struct LayerNorm: Sendable {
    let weight: Tensor
    let bias: Tensor

    init(_ w: ScopedWeights, _ name: String, dim: Int) throws {
        let s = w.scoped(name)
        weight = try s.take("weight", [dim])
        bias = try s.take("bias", [dim])
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        Normalization.layerNormed(x, weight: weight, bias: bias)
    }
}

/// `nn.Linear(inDim, outDim)`.
struct Linear: Sendable {
    let weight: Tensor
    let bias: Tensor?

    init(_ w: ScopedWeights, _ name: String, inDim: Int, outDim: Int, bias hasBias: Bool = true) throws {
        let s = w.scoped(name)
        weight = try s.take("weight", [outDim, inDim])
        bias = hasBias ? try s.take("bias", [outDim]) : nil
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        Attention.linear(x, weight: weight, bias: bias)
    }
}
