/// A window onto a `[channels, length]` signal, as demucs's `TensorChunk`: taking a padded copy
/// of a chunk fills the padding with the neighbouring samples of the whole signal, and with zeros
/// only past its ends. (Zero-padding every chunk instead costs some 70 dB of parity at chunk
/// borders.)
struct AudioChunk {
    let root: Tensor
    let offset: Int
    let length: Int
    var channels: Int { root.shape[0] }
    private var total: Int { root.shape[1] }

    init(_ root: Tensor, offset: Int = 0, length: Int? = nil) {
        precondition(offset >= 0 && offset < max(root.shape[1], 1))
        self.root = root
        self.offset = offset
        self.length = min(root.shape[1] - offset, length ?? root.shape[1] - offset)
    }

    /// A window that may start before or end after the root signal: the part outside reads as
    /// zeros. This stands for a zero-padded copy of the root without making one (the shift
    /// trick pads the whole track by half a second on each side).
    init(_ root: Tensor, virtualOffset: Int, length: Int) {
        self.root = root
        self.offset = virtualOffset
        self.length = length
    }

    /// A chunk of this chunk, in this chunk's coordinates.
    func sub(offset: Int, length: Int?) -> AudioChunk {
        let available = self.length - offset
        return AudioChunk(root, virtualOffset: self.offset + offset, length: min(available, length ?? available))
    }

    /// `target` samples centred on the chunk, taken from the root signal where it has them.
    func padded(_ target: Int) -> Tensor {
        let delta = target - length
        precondition(delta >= 0)
        let start = offset - delta / 2
        var out = Tensor(zeros: [channels, target])
        let from = max(0, start), to = min(total, start + target)
        guard to > from else { return out }
        for c in 0..<channels {
            out.data.replaceSubrange((c * target + from - start)..<(c * target + to - start),
                                     with: root.data[(c * total + from)..<(c * total + to)])
        }
        return out
    }
}
