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
        cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(m), blasint(n), alpha, a, blasint(lda ?? n),
                    x, 1, beta, y, 1)
    }

    /// The number of threads the BLAS uses inside one multiply.
    static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}

/// Controls the engine's use of threads.
public enum EngineThreads {
    /// Threads used inside each matrix multiply (the BLAS's own pool).
    public static var blas: Int {
        get { GEMM.threads }
        set { GEMM.threads = max(1, newValue) }
    }
}
