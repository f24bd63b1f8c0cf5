import Foundation
import Fuzzing
#if canImport(Glibc)
import Glibc
#endif

// demucsd-fuzz TARGET [libFuzzer options] [CORPUS…]   (a build made by tools/fuzz.sh)
// demucsd-fuzz TARGET FILE|FOLDER…                     (any other build: replays the inputs)
//
// TARGET is one of FuzzTarget's cases (safetensors, pickle, torchzip, checkpoint, bagyaml,
// config, audio). tools/fuzz.sh builds this with coverage and AddressSanitizer and with
// DEMUCSD_FUZZ defined, which hands the run to libFuzzer's driver.

let usage = "usage: demucsd-fuzz TARGET [FILE|FOLDER…]  (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))"
guard CommandLine.arguments.count >= 2, let target = FuzzTarget(rawValue: CommandLine.arguments[1]) else {
    FileHandle.standardError.write(Data((usage + "\n").utf8))
    exit(64)
}
let scratch = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/demucsd-fuzz-\(getpid())-input"


/// The one target and scratch file of this run, for the C callback (which cannot capture).
enum Current {
    nonisolated(unsafe) static var target = FuzzTarget.config
    nonisolated(unsafe) static var scratch = ""
}
Current.target = target
Current.scratch = scratch

#if DEMUCSD_FUZZ
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

// libFuzzer sees the program name and its own options, not the target's name.
var arguments = [CommandLine.arguments[0]] + CommandLine.arguments.dropFirst(2)
var cStrings: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
var argc = Int32(arguments.count)
let status = cStrings.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        Current.target.run(size == 0 ? Data() : Data(bytes: data!, count: size), scratch: Current.scratch)
        return 0
    }
}
exit(status)
#else
var inputs: [String] = []
for argument in CommandLine.arguments.dropFirst(2) {
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: argument, isDirectory: &isFolder) else {
        FileHandle.standardError.write(Data("no such file: \(argument)\n".utf8))
        exit(66)
    }
    if isFolder.boolValue {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []
        inputs += names.sorted().map { argument + "/" + $0 }
    } else {
        inputs.append(argument)
    }
}
for input in inputs {
    guard let data = FileManager.default.contents(atPath: input) else { continue }
    target.run(data, scratch: scratch)
}
unlink(scratch)
print("\(target.rawValue): \(inputs.count) input(s) replayed, no crash")
#endif
