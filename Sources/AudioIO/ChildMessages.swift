import Foundation

/// The last few KB a child wrote to stderr.
final class ChildMessages: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private let finished = DispatchSemaphore(value: 0)

    func collect(from handle: FileHandle) {
        while let chunk = try? handle.read(upToCount: 4096), !chunk.isEmpty {
            lock.withLock {
                data.append(chunk)
                if data.count > 8192 { data = data.suffix(4096) }
            }
        }
        finished.signal()
    }

    func wait() { finished.wait() }

    var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
}
