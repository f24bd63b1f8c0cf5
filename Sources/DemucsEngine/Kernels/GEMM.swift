import CDemucsKernels
import COpenBLAS

/// Matrix multiply through the system BLAS (OpenBLAS on Debian).
///
/// Every convolution, linear layer and attention product in Demucs ends up here, so this is the
/// one place that talks to the BLAS: row-major, float32, `C = alpha * op(A) * op(B) + beta * C`.
enum GEMM {
    /// `C[m×n] = alpha * op(A)[m×k] * op(B)[k×n] + beta * C`, all row-major.
    /// - Parameters:
    ///   - lda, ldb, ldc: row strides of the stored matrices (defaults: the dense ones).
    @inline(__always)
    static func multiply(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int? = nil,
        b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        if m == 0 || n == 0 { return }
        let lda = lda ?? (transA ? m : k)
        let ldb = ldb ?? (transB ? k : n)
        let ldc = ldc ?? n
        if Parallel.width > 1, m * n * k >= splitMinimumWork {
            // Split the larger side of C into column or row blocks, one per thread, each a
            // single-threaded product on its own block (see `splitMinimumWork`).
            // Blocks are whole groups of 16 rows or columns, a multiple of the BLAS's tiles.
            let splitColumns = n >= m
            let extent = splitColumns ? n : m, align = 16
            Parallel.forEach((extent + align - 1) / align) { groups in
                let lo = groups.lowerBound * align, hi = min(extent, groups.upperBound * align)
                if splitColumns {
                    multiplyOnThisThread(transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha,
                                         a: a, lda: lda, b: transB ? b + lo * ldb : b + lo, ldb: ldb,
                                         beta: beta, c: c + lo, ldc: ldc)
                } else {
                    multiplyOnThisThread(transA: transA, transB: transB, m: hi - lo, n: n, k: k, alpha: alpha,
                                         a: transA ? a + lo : a + lo * lda, lda: lda, b: b, ldb: ldb,
                                         beta: beta, c: c + lo * ldc, ldc: ldc)
                }
            }
            return
        }
        multiplyOnThisThread(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
               a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// One product on the calling thread (the BLAS runs single-threaded inside a separation),
    /// for callers that share out their own work over the threads.
    @inline(__always)
    static func multiplyOnThisThread(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if m == 0 || n == 0 { return }
        if precision == .bf16, m * n * k >= bf16MinimumWork {
            demucs_bf16_gemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha,
                             a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
            return
        }
        cblas_sgemm(
            CblasRowMajor,
            transA ? CblasTrans : CblasNoTrans,
            transB ? CblasTrans : CblasNoTrans,
            blasint(m), blasint(n), blasint(k),
            alpha, a, blasint(lda), b, blasint(ldb),
            beta, c, blasint(ldc))
    }

    /// `y[m] = alpha * A[m×n] * x[n] + beta * y`, row-major `A` with row stride `lda`.
    ///
    /// For one row of activations against a large weight matrix (an LSTM step with batch 1),
    /// `sgemm` with m = 1 packs the whole weight matrix on every call, doubling the memory
    /// traffic of what is a memory-bound product; `sgemv` streams it once.
    @inline(__always)
    static func multiplyVector(
        m: Int, n: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int? = nil,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        if m == 0 { return }
        let lda = lda ?? n
        if Parallel.width > 1, m * n >= splitMinimumWork {
            // Rows shared out: each thread streams its part of `A` (the product is bound by
            // memory bandwidth, which a second core adds to). An LSTM step runs here.
            Parallel.forEach(m) { rows in
                cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(rows.count), blasint(n), alpha, a + rows.lowerBound * lda,
                            blasint(lda), x, 1, beta, y + rows.lowerBound, 1)
            }
            return
        }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(m), blasint(n), alpha, a, blasint(lda),
                    x, 1, beta, y, 1)
    }

    /// How the matrix multiplies compute: the current separation's (`ExecutionContext`).
    static var precision: EnginePrecision { ExecutionContext.current.precision }

    /// Products at least this large (m·n·k) are split across `Parallel.width` threads by the
    /// engine itself rather than by the BLAS's pool: OpenBLAS's idle threads spin between
    /// products, taking the core from the elementwise work that runs between them.
    static var splitMinimumWork: Int { ExecutionContext.current.tuning.splitMinimumWork }

    /// Products smaller than this (m·n·k) stay in float32: packing would cost more than it saves.
    static let bf16MinimumWork = 1 << 18

    /// Makes the BLAS single-threaded, once for the process: the engine splits large products
    /// over its own threads (`splitMinimumWork`), and OpenBLAS's thread count is a process
    /// global that no separation may set and restore around itself.
    static let singleThreadedBLAS: Void = { openblas_set_num_threads(1) }()
}

/// The arithmetic of the engine's matrix multiplies (convolutions, linear layers, attention).
///
/// `float32` (the default) is what PyTorch computes. `bf16` rounds both operands of every large
/// product to bfloat16 and sums in float32, on CPUs with AVX512_BF16 (`demucs_bf16_gemm`): about
/// twice the multiply rate, at a cost in accuracy measured in docs/PERFORMANCE.md. LSTM steps and
/// everything outside the matrix multiplies stay in float32. It is chosen per separation
/// (`SeparationOptions.precision`) and holds for that separation only (`ExecutionContext`).
public enum EnginePrecision: String, Sendable, CaseIterable {
    case float32, bf16

    /// Whether this CPU can run `bf16`.
    public static var bf16Available: Bool { demucs_bf16_available() != 0 }

    /// The reason `self` cannot run here, or nil when it can.
    public var unavailableReason: String? {
        guard self == .bf16, !Self.bf16Available else { return nil }
        return "bf16 precision needs a CPU with AVX512_BF16 (e.g. AMD Zen 4, Intel Cooper Lake or Sapphire Rapids); this one has none, use float32"
    }
}
