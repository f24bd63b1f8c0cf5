/// The separated sources of one track, one array per (source, channel) row.
///
/// Kept as separate rows rather than one tensor so that a writer can move a stem's samples out
/// (`take`) and let them go once encoded: while a long track's stems are written, memory
/// shrinks stem by stem instead of holding every stem plus a copy of the one being written.
public struct Stems: Sendable {
    public let sources: [String]
    public let channels: Int
    public let length: Int
    /// `rows[source * channels + channel]`, each `length` samples.
    public var rows: [[Float]]

    /// No sources at all (a placeholder after the stems were handed on).
    public static let empty = Stems(sources: [], channels: 0, length: 0)

    init(sources: [String], channels: Int, length: Int) {
        self.sources = sources
        self.channels = channels
        self.length = length
        // One buffer per row, made now: `Array(repeating:)` would share one buffer that each
        // row copies on its first write, i.e. in the middle of the first segment, where the
        // copies split the heap that the segments' buffers reuse (~60 MB more peak on 60 s).
        rows = (0..<(sources.count * channels)).map { _ in LargeBuffer.zeros(length) }
    }

    /// The channels of source `k`, moved out (the rows are left empty).
    public mutating func take(_ k: Int) -> [[Float]] {
        (0..<channels).map { c in
            var row: [Float] = []
            swap(&row, &rows[k * channels + c])
            return row
        }
    }

    /// A copy of the channels of source `k`.
    public func channels(of k: Int) -> [[Float]] {
        (0..<channels).map { rows[k * channels + $0] }
    }

    /// All sources as one `[sources, channels, length]` tensor (a copy).
    public var tensor: Tensor {
        Tensor(shape: [sources.count, channels, length], data: rows.flatMap { $0 })
    }
}
