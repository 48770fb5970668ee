import BLASComparison
import TestSupport
import Testing

@testable import Kernels

/// Every fast kernel against its naive twin, on seeded random shapes, strides, paddings and groups.
@Suite struct KernelTests {
    typealias Rng = TestRandom

    @Test func convMatchesReferenceOnRandomGeometries() {
        var rng = Rng(s: 7)
        var checked = 0
        while checked < 60 {
            let groups = [1, 1, 1, 2, 4][rng.int(0...4)]
            var g = Conv2dGeometry(
                batch: rng.int(1...2), inChannels: groups * rng.int(1...5), height: rng.int(1...13),
                width: rng.int(1...13),
                outChannels: groups * rng.int(1...5), kernel: (rng.int(1...5), rng.int(1...5)),
                stride: (rng.int(1...3), rng.int(1...3)), padding: (rng.int(0...3), rng.int(0...3)),
                dilation: (rng.int(1...2), rng.int(1...2)), groups: groups)
            if checked % 10 == 0 {
                g.kernelH = 1
                g.kernelW = 1
                g.strideH = 1
                g.strideW = 1
                g.padH = 0
                g.padW = 0
            }
            guard g.isValid else { continue }
            checked += 1
            let x = rng.floats(g.inputCount), w = rng.floats(g.weightCount), bias = rng.floats(g.outChannels)
            let relu = checked % 2 == 0
            let want = ConvKernel.reference(g, input: x, weight: w, bias: bias, relu: relu)
            var got = [Float](repeating: .nan, count: g.outputCount)
            var scratch = [Float](repeating: .nan, count: max(1, ConvKernel.scratchCount(g)))
            bias.withUnsafeBufferPointer { b in
                got.withUnsafeMutableBufferPointer { o in
                    scratch.withUnsafeMutableBufferPointer { s in
                        ConvKernel.forward(
                            g, input: x, weight: w, output: o.baseAddress!,
                            epilogue: Epilogue(bias: b.baseAddress!, relu: relu), scratch: s.baseAddress)
                    }
                }
            }
            #expect(relativeError(got, want) < 1e-5, "\(g)")
        }
    }

    @Test func batchNormFoldEqualsConvThenBN() {
        var rng = Rng(s: 11)
        let g = Conv2dGeometry(
            batch: 2, inChannels: 3, height: 9, width: 7, outChannels: 4, kernel: (3, 3), padding: (1, 1))
        let x = rng.floats(g.inputCount), w = rng.floats(g.weightCount)
        let gamma = (0..<4).map { _ in rng.float() + 1.5 }, beta = rng.floats(4)
        let mean = rng.floats(4), variance = (0..<4).map { _ in rng.float() + 1.2 }
        let conv = ConvKernel.reference(g, input: x, weight: w)
        let bn = BatchNorm.reference(
            conv, batch: 2, channels: 4, plane: g.outHeight * g.outWidth,
            weight: gamma, bias: beta, mean: mean, variance: variance, eps: 1e-5)
        let folded = BatchNorm.fold(
            convWeight: w, convBias: nil, outChannels: 4, weight: gamma, bias: beta,
            mean: mean, variance: variance, eps: 1e-5)
        let fused = ConvKernel.reference(g, input: x, weight: folded.weight, bias: folded.bias)
        #expect(relativeError(fused, bn) < 1e-5)
        var fast = [Float](repeating: 0, count: conv.count)
        conv.withUnsafeBufferPointer { src in
            fast.withUnsafeMutableBufferPointer { dst in
                BatchNorm.inference(
                    src.baseAddress!, dst.baseAddress!, batch: 2, channels: 4, plane: g.outHeight * g.outWidth,
                    weight: gamma, bias: beta, mean: mean, variance: variance, eps: 1e-5)
            }
        }
        #expect(relativeError(fast, bn) < 1e-6)
    }

    @Test func linearMatchesReference() {
        var rng = Rng(s: 5)
        for _ in 0..<10 {
            let (n, i, o) = (rng.int(1...4), rng.int(1...70), rng.int(1...30))
            let x = rng.floats(n * i), w = rng.floats(o * i), b = rng.floats(o)
            let want = LinearKernel.reference(x, weight: w, bias: b, batch: n, inFeatures: i, outFeatures: o)
            var got = [Float](repeating: .nan, count: n * o)
            got.withUnsafeMutableBufferPointer { y in
                LinearKernel.forward(x, weight: w, bias: b, y.baseAddress!, batch: n, inFeatures: i, outFeatures: o)
            }
            #expect(relativeError(got, want) < 1e-5)
        }
    }

    @Test func softmaxRowsSumToOne() {
        let p = Elementwise.softmax([1, 2, 3, 1000, 1000, -1000], rows: 2, columns: 3)
        #expect(abs(p[0..<3].reduce(0, +) - 1) < 1e-6)
        #expect(p[3] == 0.5 && p[4] == 0.5 && p[5] == 0)
        #expect(abs(p[2] - 0.66524096) < 1e-6)
    }
}

@Suite struct ParallelTests {
    /// Dynamic scheduling: every index exactly once, each on a worker below the thread count.
    @Test func dynamicRunsEveryIndexOnce() {
        for (count, threads) in [(0, 2), (1, 3), (5, 2), (37, 2), (100, 3), (7, 1)] {
            let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(1, count))
            hits.initialize(repeating: 0)
            defer { hits.deallocate() }
            nonisolated(unsafe) let slots = hits
            let workers = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(1, count))
            defer { workers.deallocate() }
            nonisolated(unsafe) let seen = workers
            Parallel.dynamic(count, threads) { i, worker in
                slots[i] += 1
                seen[i] = worker
            }
            #expect(hits.prefix(count).allSatisfy { $0 == 1 }, "\(count) indices, \(threads) threads")
            #expect(workers.prefix(count).allSatisfy { $0 >= 0 && $0 < max(1, min(threads, count)) })
        }
    }

    /// Every index runs exactly once, for many small regions back to back (the spin pool's mailboxes)
    /// and from several threads at once (the pool is busy for all but one: those fall back to GCD).
    @Test func everyIndexRunsOnce() async {
        await withTaskGroup(of: Bool.self) { group in
            for caller in 0..<4 {
                group.addTask {
                    var ok = true
                    for round in 0..<300 {
                        let count = 1 + (round * 7 + caller) % 37
                        // Each index owns one slot, so plain writes race with nothing.
                        let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
                        hits.initialize(repeating: 0)
                        nonisolated(unsafe) let slots = hits
                        Parallel.run(count, 1 + round % 4) { i in slots[i] += 1 }
                        ok = ok && hits.allSatisfy { $0 == 1 }
                        hits.deallocate()
                    }
                    return ok
                }
            }
            for await ok in group { #expect(ok) }
        }
    }

    /// A pool's workers end and are joined by `shutdown` (the tool calls it on every exit path); after
    /// it the pool takes no region, so callers fall back to GCD. A private pool, so the shared one
    /// keeps serving the other tests.
    @Test func shutdownJoinsEveryWorker() {
        let pool = SpinPool(workers: 3)
        #expect(pool.live.load(ordering: .acquiring) == 3)
        let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: 4)
        hits.initialize(repeating: 0)
        defer { hits.deallocate() }
        nonisolated(unsafe) let slots = hits
        for _ in 0..<50 { #expect(pool.run(chunks: 4) { slots[$0] += 1 }) }
        #expect(hits.allSatisfy { $0 == 50 })
        pool.shutdown()
        #expect(pool.live.load(ordering: .acquiring) == 0, "a worker outlived shutdown")
        #expect(!pool.run(chunks: 2) { _ in })
        pool.shutdown()  // idempotent
    }
}
