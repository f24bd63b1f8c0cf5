/// A window onto a `[channels, length]` signal, as demucs's `TensorChunk`: taking a padded copy
/// of a chunk fills the padding with the neighbouring samples of the whole signal, and with zeros
/// only past its ends. (Zero-padding every chunk instead costs some 70 dB of parity at chunk
/// borders.)
///
/// The root tensor may hold only part of the signal (`base` is the position of its first
/// sample, `total` the signal's length): the streaming separation keeps a window of the track,
/// and every chunk it takes lies, with its padding, inside that window.
struct AudioChunk {
    let root: Tensor
    let offset: Int
    let length: Int
    /// Signal position of the root's first sample.
    let base: Int
    /// Length of the whole signal (zeros lie past it).
    let total: Int
    var channels: Int { root.shape[0] }

    init(_ root: Tensor, offset: Int = 0, length: Int? = nil) {
        precondition(offset >= 0 && offset < max(root.shape[1], 1))
        self.root = root
        self.offset = offset
        self.length = min(root.shape[1] - offset, length ?? root.shape[1] - offset)
        self.base = 0
        self.total = root.shape[1]
    }

    /// A window that may start before or end after the root signal: the part outside reads as
    /// zeros. This stands for a zero-padded copy of the root without making one (the shift
    /// trick pads the whole track by half a second on each side).
    init(_ root: Tensor, virtualOffset: Int, length: Int) {
        self.init(root, base: 0, total: root.shape[1], virtualOffset: virtualOffset, length: length)
    }

    /// A window on a signal of `total` samples of which `root` holds those from `base` on.
    init(_ root: Tensor, base: Int, total: Int, virtualOffset: Int, length: Int) {
        self.root = root
        self.base = base
        self.total = total
        self.offset = virtualOffset
        self.length = length
    }

    /// A chunk of this chunk, in this chunk's coordinates.
    func sub(offset: Int, length: Int?) -> AudioChunk {
        let available = self.length - offset
        return AudioChunk(root, base: base, total: total, virtualOffset: self.offset + offset,
                          length: min(available, length ?? available))
    }

    /// `target` samples centred on the chunk, taken from the root signal where it has them.
    func padded(_ target: Int) -> Tensor {
        let delta = target - length
        precondition(delta >= 0)
        let start = offset - delta / 2
        var out = Tensor(zeros: [channels, target])
        let from = max(0, start), to = min(total, start + target)
        guard to > from else { return out }
        let held = root.shape[1]
        precondition(from >= base && to <= base + held, "chunk \(from)..<\(to) outside the window \(base)..<\(base + held)")
        for c in 0..<channels {
            out.data.replaceSubrange((c * target + from - start)..<(c * target + to - start),
                                     with: root.data[(c * held + from - base)..<(c * held + to - base)])
        }
        return out
    }

    /// The signal positions `padded(target)` reads, clipped to the signal.
    static func paddedRange(offset: Int, length: Int, target: Int, total: Int) -> Range<Int> {
        let start = offset - (target - length) / 2
        return max(0, start)..<max(max(0, start), min(total, start + target))
    }
}
