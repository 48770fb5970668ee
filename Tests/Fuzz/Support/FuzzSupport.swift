import Tensors

// Shared by the libFuzzer harnesses (built only with PTH2SWT_FUZZ=1; see scripts/fuzz.sh).
//
// A harness hands the fuzzer's bytes to one reader and then reads everything the reader produced. A
// `CheckpointError` is the expected outcome for almost every input; anything else is a finding: a
// crash or sanitizer report, an error of another type, a tensor whose bytes disagree with its shape,
// a leak, a slow input or a large allocation (libFuzzer's -timeout, -rss_limit_mb, -malloc_limit_mb).
@testable import Checkpoint

public enum Fuzz {
    /// The options every harness uses: the defaults, with the pickle caps lowered so that an input
    /// that reaches one (a flood of a million MEMOIZE opcodes in a deflated data.pkl) costs milliseconds,
    /// not a second; the code that enforces them is the same. At the defaults fuzz-zip ran ~80 inputs/s.
    static let options: LoadOptions = options(stub: false)

    /// The same with `stubClasses`: every global outside the allowlist becomes a record.
    static func options(stub: Bool) -> LoadOptions {
        var o = LoadOptions()
        o.stubClasses = stub
        o.limits.maxStack = 1 << 14
        o.limits.maxMemo = 1 << 14
        o.limits.maxMarks = 1 << 12
        o.limits.maxValues = 1 << 16
        return o
    }

    /// Tensors bigger than this are checked against the caps but not materialised: a 1 KiB input may
    /// legally describe a 64 MiB stride-0 tensor, and reading it would only slow the fuzzer down.
    static let materialiseBytes = 1 << 20

    /// Reads `data` as `format` (no sniffing, so every input reaches that reader), then every tensor.
    public static func checkpoint(_ data: UnsafeRawBufferPointer, as format: CheckpointFormat, stub: Bool = false) {
        // A copy the size of the input: ASan reports any read past its end.
        let source = OwnedBytes(copying: data)
        do {
            let ckpt = try Checkpoint(source: source, name: "fuzz-input", format: format, options: options(stub: stub))
            for s in ckpt.storages where s.byteCount <= materialiseBytes {
                do { _ = try s.bytes() } catch is CheckpointError {}
            }
            readAll(ckpt.root)
            _ = try? ckpt.stateDict()
            _ = ckpt.candidates
            _ = try? ckpt.allTensors()
        } catch is CheckpointError {
        } catch {
            fatalError("\(format) reader threw an untyped error: \(error)")
        }
    }

    /// Runs `data` as one pickle through the machine with torch's allowlist (`TorchHost`). Persistent
    /// ids in the zip format's shape are answered with small zero-filled storages, so the fuzzer reaches
    /// `_rebuild_tensor_v2`, `Parameter` and BUILD with real storages.
    public static func pickle(_ data: UnsafeRawBufferPointer, stub: Bool = false) {
        var storages: [String: Storage] = [:]
        let host = TorchHost { pid in
            guard case .tuple(let t) = pid, t.items.count >= 5, let key = asciiString(t.items[2]),
                case .int(let numel) = t.items[4], numel >= 0, numel <= 4096
            else { throw CheckpointError(.badPersistentID("fuzz: ('storage', type, key, location, numel ≤ 4096)")) }
            let dtype = try storageDType(t.items[1], "storage \(key)")
            if let s = storages[key], s.dtype == dtype { return .object(StorageObject(s)) }
            let bytes = OwnedBytes(uninitializedCount: Int(numel) * dtype.itemSize)
            bytes.mutableBytes.initializeMemory(as: UInt8.self, repeating: 0)
            let s = try Storage(key: key, dtype: dtype, count: Int(numel), source: bytes)
            storages[key] = s
            return .object(StorageObject(s))
        }
        host.stubClasses = stub
        let copy = OwnedBytes(copying: data)
        do {
            var r = ByteReader(try copy.bytes(), part: "fuzz.pkl")
            var log = GlobalLog()
            let value = try runPickle(&r, host: host, options: options(stub: stub), log: &log).result
            try Checkpoint.checkTensorBytes(value, fileBytes: data.count, options: options)
            readAll(value)
            _ = value.stateDictCandidates()
            _ = try? value.allTensors()
            _ = try? StateDict(from: value)
        } catch is CheckpointError {
        } catch {
            fatalError("pickle machine threw an untyped error: \(error)")
        }
    }

    /// Materialises every tensor in the tree (iteratively) and checks its bytes against its shape.
    static func readAll(_ root: Value) {
        var pending = [root]
        while let v = pending.popLast() {
            switch v {
            case .tensor(let t):
                precondition(t.count == (try? Tensor.elementCount(t.shape)), "count disagrees with shape")
                guard t.byteCount <= materialiseBytes else { continue }
                for c in t.sparse?.components ?? [] { pending.append(.tensor(c.tensor)) }
                guard t.hasData else {
                    // A meta or wrapper-subclass tensor: reading must fail with noData, nothing else.
                    do {
                        _ = try t.contiguousBytes()
                        preconditionFailure("a tensor without data gave bytes")
                    } catch TensorError.noData {
                    } catch {
                        fatalError("reading a tensor without data threw \(error)")
                    }
                    continue
                }
                do {
                    let bytes = try t.contiguousBytes()
                    precondition(
                        bytes.count == t.byteCount, "contiguousBytes gave \(bytes.count) bytes for \(t.byteCount)")
                    if t.dtype.isReal {
                        let floats = try t.float32()
                        precondition(floats.count == t.count, "float32 gave \(floats.count) values for \(t.count)")
                    }
                    if t.quantization != nil {
                        let values = try t.dequantized()
                        precondition(values.count == t.count, "dequantized gave \(values.count) values for \(t.count)")
                        _ = try values.contiguousBytes()
                    }
                } catch is CheckpointError {
                } catch let e as TensorError where t.sparse != nil || t.quantization != nil {
                    // Densifying or dequantizing checks again what the reader checked; a disagreement is
                    // still a typed error, which a fuzzer run should show us, so it is reported.
                    fatalError("reading a sparse or quantized tensor threw \(e) after the reader accepted it")
                } catch {
                    fatalError("reading a tensor threw an untyped error: \(error)")
                }
            case .list(let items), .tuple(let items), .set(let items):
                pending.append(contentsOf: items)
            case .dict(let d):
                for e in d.entries {
                    pending.append(e.key)
                    pending.append(e.value)
                }
                for e in d.attributes { pending.append(e.value) }
                if let m = d.metadata { pending.append(m) }
            case .object(let o):
                pending.append(contentsOf: o.args + o.states + o.listItems)
                for e in o.kwargs + o.dictItems {
                    pending.append(e.key)
                    pending.append(e.value)
                }
                if o.isModule { _ = try? o.moduleStateDict() }
            default:
                break
            }
        }
    }
}

/// libFuzzer's driver (compiler-rt, linked by `-sanitize=fuzzer`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

extension Fuzz {
    /// SwiftPM links an executable target's entry point as `<module>_main` and points `main` at it, so
    /// each harness defines that symbol and hands control to libFuzzer's driver with its callback.
    public static func run(
        _ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    ) -> Int32 {
        var argc = argc
        var argv = argv
        return withUnsafeMutablePointer(to: &argv) { p in
            p.withMemoryRebound(to: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?.self, capacity: 1) {
                LLVMFuzzerRunDriver(&argc, $0, callback)
            }
        }
    }
}
