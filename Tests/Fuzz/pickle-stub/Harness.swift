// libFuzzer harness for the pickle machine in stub mode: every unknown global a record (scripts/fuzz.sh pickle-stub).
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Fuzz.pickle(UnsafeRawBufferPointer(start: data, count: size), stub: true)
    return 0
}

@_cdecl("fuzz_pickle_stub_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    Fuzz.run(argc, argv, fuzzTestOneInput)
}
