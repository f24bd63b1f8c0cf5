import Foundation

/// Block sizes of the kernels that cut their work into blocks. Every block is computed the same
/// way, so they change at most the last bits of a result (OpenBLAS's AVX2 kernels round
/// differently with the shape of a product; ThreadCountTests bounds the difference); tests
/// choose small ones to exercise partial blocks and block edges.
public struct KernelTuning: Sendable, Equatable {
    /// Products at least this large (m·n·k) are split across the context's threads by the
    /// engine itself rather than by the BLAS's pool (OpenBLAS's idle threads spin between
    /// products, taking the core from the elementwise work that runs between them).
    public var splitMinimumWork: Int
    /// Floats of one block of a convolution's output before its GLU is applied.
    public var gluBlockFloats: Int
    /// Floats of one block of the Winograd transforms.
    public var winogradBlockFloats: Int
    /// Query rows of one attention task.
    public var queryBlock: Int

    public init(splitMinimumWork: Int = 1 << 20, gluBlockFloats: Int = 1 << 18,
                winogradBlockFloats: Int = 1 << 22, queryBlock: Int = 64) {
        self.splitMinimumWork = splitMinimumWork
        self.gluBlockFloats = gluBlockFloats
        self.winogradBlockFloats = winogradBlockFloats
        self.queryBlock = queryBlock
    }
}

/// The engine settings of one separation: how many threads a kernel may use, the arithmetic of
/// the matrix multiplies and the kernels' block sizes.
///
/// They travel with the work, not through process globals: ``with(_:_:)`` makes a context the
/// current one of the calling thread for the duration of a closure, and every thread the engine
/// hands work to (`Parallel.forEach`, the segments side by side, the resampler's blocks) runs
/// under the context of the thread that handed it over. Two separations on two threads — the
/// daemon's `workers = 2` with different precisions, or two test suites in parallel — never see
/// each other's settings. A thread that never entered a context sees ``default``.
public struct ExecutionContext: Sendable, Equatable {
    /// Threads one kernel may use.
    public var width: Int
    public var precision: EnginePrecision
    public var tuning: KernelTuning

    public init(width: Int = 1, precision: EnginePrecision = .float32, tuning: KernelTuning = KernelTuning()) {
        self.width = max(1, width)
        self.precision = precision
        self.tuning = tuning
    }

    public static let `default` = ExecutionContext()

    /// The calling thread's context.
    public static var current: ExecutionContext {
        guard let raw = pthread_getspecific(key) else { return .default }
        return Unmanaged<Box>.fromOpaque(raw).takeUnretainedValue().context
    }

    /// Runs `body` with `context` as the calling thread's context, then restores the previous one.
    public static func with<T>(_ context: ExecutionContext, _ body: () throws -> T) rethrows -> T {
        let previous = pthread_getspecific(key)
        let box = Unmanaged.passRetained(Box(context))
        pthread_setspecific(key, box.toOpaque())
        defer {
            pthread_setspecific(key, previous)
            box.release()
        }
        return try body()
    }

    private final class Box {
        let context: ExecutionContext
        init(_ context: ExecutionContext) { self.context = context }
    }

    /// One key for the process; the value is always restored by `with`, so no destructor.
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key, nil)
        precondition(status == 0, "pthread_key_create failed: \(status)")
        return key
    }()
}
