// libFuzzer harness for the pickle machine alone, with torch's allowlist (scripts/fuzz.sh pickle).
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Fuzz.pickle(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_cdecl("fuzz_pickle_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    Fuzz.run(argc, argv, fuzzTestOneInput)
}
