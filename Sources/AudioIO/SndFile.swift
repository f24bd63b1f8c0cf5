import CSndFile

/// Thin owner of one libsndfile handle, so the C API stays in this file and every path out of
/// a read or write (including thrown errors) closes the handle exactly once.
final class SndFile {
    let handle: OpaquePointer
    let info: SF_INFO
    private var closed = false

    /// Opens `path` for reading; the error carries libsndfile's own explanation.
    init(readingFrom path: String) throws {
        var info = SF_INFO()
        guard let handle = sf_open(path, Int32(SFM_READ), &info) else {
            throw Self.openError(code: sf_error(nil), message: Self.globalError(), path: path)
        }
        self.handle = handle
        self.info = info
    }

    /// Opens an already created file descriptor for writing (the descriptor stays open after close).
    init(writingTo fd: Int32, info requested: SF_INFO, path: String) throws {
        var info = requested
        guard sf_format_check(&info) == 1 else {
            throw AudioIOError(.invalidArgument, .encode, path: path,
                               reason: "libsndfile cannot write this combination: \(info.channels) channels at \(info.samplerate) Hz in format 0x\(String(info.format, radix: 16))")
        }
        guard let handle = sf_open_fd(fd, Int32(SFM_WRITE), &info, Int32(SF_FALSE)) else {
            throw AudioIOError(.encoderFailed, .encode, path: path, reason: Self.globalError())
        }
        self.handle = handle
        self.info = info
    }

    /// The last error on this handle, as text.
    var errorReason: String { String(cString: sf_strerror(handle)) }

    /// Whether libsndfile recorded an error on this handle.
    var hasError: Bool { sf_error(handle) != Int32(SF_ERR_NO_ERROR) }

    /// Sends an `sf_command` with an integer-valued boolean argument.
    @discardableResult
    func command(_ command: Int, _ value: Bool) -> Int32 {
        sf_command(handle, Int32(command), nil, value ? Int32(SF_TRUE) : Int32(SF_FALSE))
    }

    /// Reads up to `frames` interleaved frames; returns frames actually read.
    func readFloat(into buffer: UnsafeMutablePointer<Float>, frames: Int) -> Int {
        Int(sf_readf_float(handle, buffer, sf_count_t(frames)))
    }

    func writeShort(_ buffer: UnsafePointer<Int16>, frames: Int) -> Int {
        Int(sf_writef_short(handle, UnsafeMutablePointer(mutating: buffer), sf_count_t(frames)))
    }

    func writeInt(_ buffer: UnsafePointer<Int32>, frames: Int) -> Int {
        Int(sf_writef_int(handle, UnsafeMutablePointer(mutating: buffer), sf_count_t(frames)))
    }

    func writeFloat(_ buffer: UnsafePointer<Float>, frames: Int) -> Int {
        Int(sf_writef_float(handle, UnsafeMutablePointer(mutating: buffer), sf_count_t(frames)))
    }

    /// Closes the handle, reporting libsndfile's close error (it finalises headers here).
    func close() -> Int32 {
        guard !closed else { return 0 }
        closed = true
        return sf_close(handle)
    }

    deinit {
        if !closed { sf_close(handle) }
    }

    /// Classifies a failed `sf_open`. The caller has already checked that the file exists, is
    /// regular, non-empty and readable, so libsndfile's internal codes (beyond the four public
    /// ones) mean "not audio we can parse" — e.g. a text file named `.mp3` makes libsndfile try
    /// its MPEG reader and answer the misleading "File does not exist or is not a regular file".
    static func openError(code: Int32, message: String, path: String) -> AudioIOError {
        switch Int(code) {
        case SF_ERR_UNRECOGNISED_FORMAT:
            return AudioIOError(.unsupportedFormat, .decode, path: path, reason: "not a recognised audio format (\(message))")
        case SF_ERR_SYSTEM:
            return AudioIOError(.ioFailed, .decode, path: path, reason: message)
        case SF_ERR_MALFORMED_FILE:
            return AudioIOError(.corruptFile, .decode, path: path, reason: "malformed or corrupt file (\(message))")
        case SF_ERR_UNSUPPORTED_ENCODING:
            return AudioIOError(.unsupportedFormat, .decode, path: path, reason: "unsupported audio encoding (\(message))")
        default:
            if message.contains("does not exist") {
                return AudioIOError(.unsupportedFormat, .decode, path: path,
                                    reason: "not a recognised audio format (libsndfile error \(code))")
            }
            return AudioIOError(.corruptFile, .decode, path: path, reason: "cannot be parsed as audio (\(message))")
        }
    }

    /// The container (`SF_FORMAT_WAV`, `SF_FORMAT_FLAC`, `SF_FORMAT_MPEG`, ...) of the open file.
    var majorFormat: Int { Int(info.format) & SF_FORMAT_TYPEMASK }

    /// libsndfile's error string for failures that have no handle (failed opens).
    static func globalError() -> String {
        String(cString: sf_strerror(nil))
    }
}
