// libFuzzer harness for the zip reader in stub mode, TorchScript archives included (scripts/fuzz.sh zip-stub).
import Checkpoint
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Fuzz.checkpoint(UnsafeRawBufferPointer(start: data, count: size), as: .zip, stub: true)
    return 0
}

@_cdecl("fuzz_zip_stub_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    Fuzz.run(argc, argv, fuzzTestOneInput)
}
