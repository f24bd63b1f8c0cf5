import ArgumentParser
import AudioIO
import DemucsEngine
import Foundation
import SeparationPipeline

/// `demucsctl separate`: the same flags and output layout as `python -m demucs.separate`.
struct Separate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Separate the sources of the given tracks (as python -m demucs.separate).",
        discussion: """
            Stems go to OUT/MODEL/{track}/{stem}.{ext}: e.g. separated/htdemucs/song/vocals.wav. \
            Every stem of a track is written under a temporary name and renamed into place only \
            when all are complete, so a failed or interrupted run leaves no partial stems.

            Without --repo, models are looked up in the model cache ($DEMUCSD_MODELS, else \
            $XDG_CACHE_HOME/demucsd/models, else ~/.cache/demucsd/models) and downloaded there \
            from the Hugging Face hub when missing.

            Exit codes: 0 all tracks separated; 1 one or more tracks failed (the others are still \
            written); 2 the model could not be loaded; 64 bad usage; 130 interrupted.
            """
    )

    @Argument(help: "Audio files to separate (WAV, FLAC, OGG/Vorbis, Opus, AIFF, MP3).")
    var tracks: [String] = []

    @Option(name: [.customShort("n"), .long], help: "Pretrained model name or signature.")
    var name: String = "htdemucs"

    @Option(help: ArgumentHelp("Folder holding the models for -n: NAME.yaml bags and <sig>.safetensors files.", valueName: "DIR"))
    var repo: String?

    @Flag(help: "List the models available in --repo (or the cache) and exit.")
    var listModels = false

    @Flag(name: [.customShort("v"), .long], help: "Print more about what is done.")
    var verbose = false

    @Option(name: [.customShort("o"), .long], help: "Folder for the stems; a subfolder named after the model is created.")
    var out: String = "separated"

    @Option(help: "Output file name under OUT/MODEL. Placeholders: {track}, {trackext}, {stem}, {ext}.")
    var filename: String = "{track}/{stem}.{ext}"

    @Option(name: [.customShort("d"), .long], help: "Device: only cpu (accepted for compatibility).")
    var device: String = "cpu"

    @Option(help: "Random shifts averaged for equivariant stabilisation (0 = one deterministic pass; slower as it grows). Default 1, or 0 for the demucs v2 models (demucs, demucs48_hq, demucs_extra, demucs_quantized, tasnet, tasnet_extra), as demucs 2.0.3 defaulted.")
    var shifts: Int?

    @Option(help: "Overlap between the segments (default 0.25). For a RoFormer: the number of overlapping chunks, a whole number (default: its config's inference.num_overlap, else 8), as audio-separator's --mdxc_overlap.")
    var overlap: Double?

    @Flag(name: .customLong("no-split"), help: "Do not split the audio into segments (more memory).")
    var noSplit = false

    @Option(help: "Segment length in seconds (at most the model's training segment for transformer models). For a RoFormer: the chunk length, in place of its config's inference.dim_t.")
    var segment: Int?

    @Option(name: .customLong("two-stems"), help: ArgumentHelp("Only separate STEM and no_STEM.", valueName: "STEM"))
    var twoStems: String?

    @Option(name: .customLong("other-method"), help: "How to make no_STEM: add (sum of the other stems), minus (mix minus STEM, saved as minus_STEM), none.")
    var otherMethod: OtherMethod = .add

    @Flag(help: "Save WAV output as 24-bit.")
    var int24 = false

    @Flag(help: "Save WAV output as 32-bit float.")
    var float32 = false

    @Option(name: .customLong("clip-mode"), help: "Avoid clipping by rescaling the whole stem (rescale), hard clipping (clamp), or not at all (none).")
    var clipMode: ClipMode = .rescale

    @Flag(help: "Write FLAC instead of WAV.")
    var flac = false

    @Flag(help: "Write MP3 instead of WAV.")
    var mp3 = false

    @Option(name: .customLong("mp3-bitrate"), help: "MP3 bitrate in kbit/s.")
    var mp3Bitrate: Int = 320

    @Option(name: .customLong("mp3-preset"), help: "MP3 encoder quality, 2 (best) to 7 (fastest).")
    var mp3Preset: Int = 2

    @Option(name: [.customShort("j"), .long], help: "Segments processed side by side (0 = automatic: one at a time, with every core inside it; more only costs memory on a few cores).")
    var jobs: Int = 0

    @Option(help: "Arithmetic of the matrix multiplies: float32 (as PyTorch, the default) or bf16 (faster on CPUs with AVX512_BF16, about 40+ dB from float32; see docs/PERFORMANCE.md).")
    var precision: EnginePrecision = .float32

    enum OtherMethod: String, ExpressibleByArgument, CaseIterable { case none, add, minus }

    func validate() throws {
        if segment != nil && noSplit { throw ValidationError("--segment and --no-split cannot be used together") }
        if int24 && float32 { throw ValidationError("--int24 and --float32 cannot be used together") }
        if flac && mp3 { throw ValidationError("--flac and --mp3 cannot be used together") }
        if !(2...7).contains(mp3Preset) { throw ValidationError("--mp3-preset must be between 2 and 7") }
        if let shifts, shifts < 0 { throw ValidationError("--shifts must be 0 or more") }
        if let overlap, !(overlap >= 0) { throw ValidationError("--overlap must be in [0, 1)") }
        if let segment, segment <= 0 { throw ValidationError("--segment must be positive") }
        if device != "cpu" { throw ValidationError("device \(device) is not available: demucsctl runs on the CPU (-d cpu)") }
        if let problem = OutputNaming.validate(template: filename) { throw ValidationError(problem) }
        if !listModels && tracks.isEmpty { throw ValidationError("the following arguments are required: tracks") }
    }

    func run() throws {
        if listModels {
            let root = repo ?? ModelLocator.defaultCacheFolder()
            let repository = ModelRepository(root: root)
            let listing = repository.list()
            print("Bag of models:\n    " + listing.bags.joined(separator: "\n    "))
            print("Single models:\n    " + listing.single.joined(separator: "\n    "))
            let roformers = repository.roFormers()
            if !roformers.isEmpty { print("RoFormer models:\n    " + roformers.joined(separator: "\n    ")) }
            return
        }
        Interruption.install()
        try precision.requireAvailable()
        let model = try ModelLocator.loadForCommand(name: name, repo: repo, verbose: verbose)
        if let twoStems, !model.sources.contains(twoStems) {
            printError("stem \"\(twoStems)\" is not in the selected model. STEM must be one of \(model.sources.joined(separator: ", ")).")
            throw ExitCode.validationFailure
        }
        let separator: any StemSeparator
        switch model {
        case .demucs(let bag):
            if let overlap, !(0..<1).contains(overlap) {
                printError("--overlap must be in [0, 1)")
                throw ExitCode.validationFailure
            }
            if let segment, let maxSegment = bag.maxAllowedSegment, Double(segment) > maxSegment.doubleValue {
                printError("Cannot use a Transformer model with a longer segment than it was trained for. Maximum segment is: \(maxSegment.doubleValue)")
                throw Exit.modelFailed
            }
            if bag.models.count > 1 { print("Selected model is a bag of \(bag.models.count) models.") }
            // demucs 2.0.3's separate.py defaulted to no shifts; the seed's `--name demucs` command relied on it.
            separator = Separator(bag: bag, options: SeparationOptions(
                shifts: shifts ?? (bag.isV2 ? 0 : 1), split: !noSplit, overlap: overlap ?? 0.25,
                segment: segment.map { Fraction($0, 1) }, jobs: jobs, precision: precision))
        case .roformer(let roformer):
            separator = RoFormerSeparator(model: roformer, options: try roFormerOptions(roformer))
            print("Selected model is a \(model.summary).")
        }
        let naming = OutputNaming(out: out, modelName: name, template: filename)
        do {
            try FileManager.default.createDirectory(atPath: naming.folder, withIntermediateDirectories: true)
        } catch {
            printError("cannot create output folder \(naming.folder): \(fileErrorReason(error))")
            throw Exit.trackFailed
        }
        print("Separated tracks will be stored in \(URL(fileURLWithPath: naming.folder).standardizedFileURL.path)")
        var failures = 0
        for track in tracks {
            if Interruption.requested { throw Exit.interrupted }
            do {
                try separateTrack(track, separator: separator, naming: naming)
            } catch let error as EngineError where error.kind == .cancelled {
                printError("interrupted while separating \(track); nothing was written for it")
                throw Exit.interrupted
            } catch {
                // Decoder and writer errors already name the file; the others get it prefixed.
                let message = "\(error)"
                printError(message.contains(track) ? message : "\(track): \(message)")
                failures += 1
            }
        }
        if failures > 0 {
            printError("\(failures) of \(tracks.count) track(s) failed")
            throw Exit.trackFailed
        }
    }

    /// The RoFormer driver's options from the flags that mean something for it; the demucs-only
    /// ones are refused rather than ignored.
    private func roFormerOptions(_ model: RoFormer) throws -> RoFormerOptions {
        if let shifts, shifts > 0 {
            printError("--shifts does not apply to a RoFormer (it has no random shifts); leave it out")
            throw ExitCode.validationFailure
        }
        if noSplit {
            printError("--no-split does not apply to a RoFormer: it always runs in chunks (set their length with --segment)")
            throw ExitCode.validationFailure
        }
        var numOverlap: Int?
        if let overlap {
            guard overlap >= 1, overlap == overlap.rounded(), overlap <= 64 else {
                printError("--overlap for a RoFormer is the number of overlapping chunks, a whole number from 1 to 64 (audio-separator's --mdxc_overlap), not \(overlap)")
                throw ExitCode.validationFailure
            }
            numOverlap = Int(overlap)
        }
        let dimT = segment.map { $0 * model.samplerate / model.config.hopLength + 1 }
        return RoFormerOptions(dimT: dimT, numOverlap: numOverlap, precision: precision)
    }

    private func separateTrack(_ track: String, separator: any StemSeparator, naming: OutputNaming) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: track, isDirectory: &isDir) else {
            throw CLIError("file does not exist. If the path contains spaces, surround it with quotes.")
        }
        guard !isDir.boolValue else { throw CLIError("is a folder, not an audio file") }
        print("Separating track \(track)")
        var outputs = StemRecipe.outputs(sources: separator.sources, twoStems: twoStems, minus: otherMethod == .minus)
        if otherMethod == .none { outputs.removeAll { if case .sumOfOthers = $0.kind { true } else { false } } }
        let ext = mp3 ? "mp3" : flac ? "flac" : "wav"
        let options = EncodeOptions(
            clip: clipMode, bitsPerSample: int24 ? 24 : 16, asFloat: float32,
            mp3Bitrate: mp3Bitrate, mp3Preset: mp3Preset)
        let pipeline = TrackSeparation(separator: separator, outputs: outputs, formats: [(ext, options)])
        let display = ProgressDisplay(label: (track as NSString).lastPathComponent)
        try StemWriter.publish(stagingIn: naming.folder) { staging in
            let result = try pipeline.run(
                input: track, staging: staging,
                progress: { display.update($0.fraction) }, isCancelled: { Interruption.requested })
            display.finish()
            return zip(outputs, result.files).map { recipe, file in
                (file, naming.path(track: track, stem: recipe.name, ext: ext))
            }
        }
    }
}

/// A failure of one track, with a message for the person at the terminal.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The reason of a FileManager error as the OS gives it ("Not a directory"), not Foundation's
/// "The operation could not be completed. (NSCocoaErrorDomain error 512.)" that Linux prints.
func fileErrorReason(_ error: Error) -> String {
    if let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? Error,
       (underlying as NSError).domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32((underlying as NSError).code)))
    }
    return error.localizedDescription
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
}

extension ClipMode: ExpressibleByArgument {}

extension EnginePrecision: ExpressibleByArgument {
    /// Exits with usage status 64 and the reason when this CPU cannot run the precision.
    func requireAvailable() throws {
        if let reason = unavailableReason {
            printError(reason)
            throw ExitCode.validationFailure
        }
    }
}
