import CSndFile

/// A libsndfile container + sample encoding, and how samples are handed to libsndfile for it.
///
/// Public writes use only the WAV/FLAC cases; the others exist so tests can produce the other
/// input formats the decoder must read (AIFF, Ogg Vorbis, Opus, 32-bit WAV) with the same code.
enum SndFileLayout: Sendable, CaseIterable {
    case wavInt16, wavInt24, wavInt32, wavFloat
    case flacInt16, flacInt24
    case aiffInt16
    case oggVorbis, oggOpus

    /// How samples are converted before the write call.
    enum Samples { case int16, int24, int32, float32 }

    var samples: Samples {
        switch self {
        case .wavInt16, .flacInt16, .aiffInt16: return .int16
        case .wavInt24, .flacInt24: return .int24
        case .wavInt32: return .int32
        case .wavFloat, .oggVorbis, .oggOpus: return .float32
        }
    }

    /// libsndfile `SF_FORMAT_*` value (major | subtype).
    var sfFormat: Int {
        switch self {
        case .wavInt16: return SF_FORMAT_WAV | SF_FORMAT_PCM_16
        case .wavInt24: return SF_FORMAT_WAV | SF_FORMAT_PCM_24
        case .wavInt32: return SF_FORMAT_WAV | SF_FORMAT_PCM_32
        case .wavFloat: return SF_FORMAT_WAV | SF_FORMAT_FLOAT
        case .flacInt16: return SF_FORMAT_FLAC | SF_FORMAT_PCM_16
        case .flacInt24: return SF_FORMAT_FLAC | SF_FORMAT_PCM_24
        case .aiffInt16: return SF_FORMAT_AIFF | SF_FORMAT_PCM_16
        case .oggVorbis: return SF_FORMAT_OGG | SF_FORMAT_VORBIS
        case .oggOpus: return SF_FORMAT_OGG | SF_FORMAT_OPUS
        }
    }

    /// Bytes one sample takes in the data chunk (for the 4 GiB RIFF limit check).
    var bytesPerSample: Int {
        switch samples {
        case .int16: return 2
        case .int24: return 3
        case .int32, .float32: return 4
        }
    }

    var isWAV: Bool { (sfFormat & SF_FORMAT_TYPEMASK) == SF_FORMAT_WAV }
    var isFLAC: Bool { (sfFormat & SF_FORMAT_TYPEMASK) == SF_FORMAT_FLAC }
}
