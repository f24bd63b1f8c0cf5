/// The bounds a model file's sample rate and training segment must keep.
///
/// Both come from the file's constructor arguments, and the engine allocates by them: HTDemucs
/// pads every chunk to the training segment (`int(segment * samplerate)` frames), the other
/// families split the track by it. A forged file with a segment of two billion seconds would make
/// that one allocation of hundreds of terabytes, which Swift cannot report as an error, only trap
/// on; so the values are refused at load, with the file named. The bounds are far above every
/// published model (the longest training segment is 44 s of 44.1 kHz audio, 1.9 M frames).
enum TrainingSegment {
    /// Sample rates a model may declare, in Hz.
    static let sampleRates = 1...384_000
    /// The most frames a training segment may span: 2^23, 190 s at 44.1 kHz.
    static let largestFrames = 1 << 23

    /// Refuses a sample rate outside `sampleRates` or a segment that is not positive or spans
    /// more than `largestFrames` at that rate; `model` names the file and family in the error.
    static func check(samplerate: Int, segment: Fraction, model: String) throws {
        try check(samplerate: samplerate, model: model)
        guard segment.numerator > 0 else {
            throw EngineError(.invalidModelFile, "\(model) option segment=\(segment) must be positive")
        }
        let frames = segment.timesTruncated(samplerate)
        guard frames <= largestFrames else {
            throw EngineError(.invalidModelFile, "\(model) option segment=\(segment) spans \(frames) frames at \(samplerate) Hz, more than the \(largestFrames) a model may use")
        }
    }

    /// The same rules for a segment given in frames (`segment_length` of the v2 families).
    static func check(samplerate: Int, segmentLength: Int, model: String) throws {
        try check(samplerate: samplerate, model: model)
        guard (1...largestFrames).contains(segmentLength) else {
            throw EngineError(.invalidModelFile, "\(model) option segment_length=\(segmentLength) must be between 1 and \(largestFrames) frames")
        }
    }

    private static func check(samplerate: Int, model: String) throws {
        guard sampleRates.contains(samplerate) else {
            throw EngineError(.invalidModelFile, "\(model) option samplerate=\(samplerate) must be between \(sampleRates.lowerBound) and \(sampleRates.upperBound) Hz")
        }
    }
}
