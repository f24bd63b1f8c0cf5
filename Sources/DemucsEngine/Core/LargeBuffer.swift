import CDemucsKernels
#if canImport(Glibc)
import Glibc
#endif

/// Allocation of the large activation arrays (megabytes each, made and dropped for every layer of
/// every segment).
///
/// glibc serves them with a fresh `mmap`, so every 4 KiB page costs a page fault on first touch:
/// about a tenth of the engine's CPU time went to faulting and zeroing pages. Asking for
/// transparent huge pages (`MADV_HUGEPAGE`, which Debian's default `madvise` mode honours) on the
/// buffer before it is touched turns 512 faults into one. Where the kernel or the allocator says
/// no, nothing changes but the speed.
enum LargeBuffer {
    /// Below this many bytes the buffer cannot hold a whole huge page worth advising.
    static let threshold = 4 << 20
    static let hugePage = 2 << 20

    /// A zero-filled array of `count` floats. Large ones are filled on all of `Parallel`'s
    /// threads: the first touch of fresh pages (the kernel's fault and zeroing) is most of the
    /// cost, and on one core it left the others waiting.
    static func zeros(_ count: Int) -> [Float] {
        guard count * MemoryLayout<Float>.size >= threshold else { return [Float](repeating: 0, count: count) }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let base = buffer.baseAddress!
            advise(UnsafeMutableRawPointer(base), bytes: count * MemoryLayout<Float>.size)
            Parallel.forEach(count, grain: 1 << 18) { range in
                (base + range.lowerBound).initialize(repeating: 0, count: range.count)
            }
            initialized = count
        }
    }

    /// An array of `count` floats whose contents are unspecified: for buffers that the caller
    /// overwrites entirely before reading (matrix multiply outputs with beta = 0, im2col blocks),
    /// which saves the zero-fill pass over them.
    static func uninitialized(_ count: Int) -> [Float] {
        guard count * MemoryLayout<Float>.size >= threshold else { return [Float](repeating: 0, count: count) }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            advise(UnsafeMutableRawPointer(buffer.baseAddress!), bytes: count * MemoryLayout<Float>.size)
            initialized = count
        }
    }

    /// Makes freed activation buffers reusable by the next layer instead of returning them to
    /// the kernel.
    ///
    /// glibc's malloc maps every large block afresh and unmaps it on free (its threshold rises
    /// only up to 32 MB, and htdemucs's first-layer tensors are larger), so each layer of each
    /// segment paid for the kernel zeroing its pages again: about a sixth of the CPU time of a
    /// separation. With the thresholds raised, freed blocks stay in the heap and are handed out
    /// again as they are. `releaseRetained()` gives them back when a separation ends, so an idle
    /// daemon does not sit on its peak. Idempotent; process-wide.
    static func retainFreedBlocks() {
        _ = configured
    }

    private static let configured: Void = {
        demucs_retain_freed_blocks()
    }()

    /// Returns the heap's free blocks to the kernel (after a separation).
    static func releaseRetained() {
        demucs_release_retained_blocks()
    }

    /// Advises huge pages for the whole 2 MiB pages inside `[start, start + bytes)`.
    static func advise(_ start: UnsafeMutableRawPointer, bytes: Int) {
        #if os(Linux)
        let begin = (Int(bitPattern: start) + hugePage - 1) & ~(hugePage - 1)
        let end = (Int(bitPattern: start) + bytes) & ~(hugePage - 1)
        guard end > begin, let p = UnsafeMutableRawPointer(bitPattern: begin) else { return }
        _ = madvise(p, end - begin, MADV_HUGEPAGE)
        #endif
    }
}
