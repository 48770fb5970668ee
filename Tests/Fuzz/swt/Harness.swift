// libFuzzer harness for the swt reader (scripts/fuzz.sh swt).
import Checkpoint
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Fuzz.checkpoint(UnsafeRawBufferPointer(start: data, count: size), as: .swt)
    return 0
}

@_cdecl("fuzz_swt_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    Fuzz.run(argc, argv, fuzzTestOneInput)
}
