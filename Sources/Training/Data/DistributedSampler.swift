/// torch's CPU generator: MT19937 seeded as `torch.Generator().manual_seed(seed)` seeds it (the low 32
/// bits, Knuth's initialisation), drawing 32-bit numbers as `CPUGeneratorImpl::random()` does.
public struct TorchGenerator: Sendable {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624

    public init(seed: UInt64) {
        state[0] = UInt32(truncatingIfNeeded: seed)
        for j in 1..<624 {
            let prev = state[j - 1]
            state[j] = 1_812_433_253 &* (prev ^ (prev >> 30)) &+ UInt32(j)
        }
    }

    /// The next 32-bit output.
    public mutating func next() -> UInt32 {
        if index >= 624 {
            for k in 0..<624 {
                let y = (state[k] & 0x8000_0000) | (state[(k + 1) % 624] & 0x7FFF_FFFF)
                state[k] = state[(k + 397) % 624] ^ (y >> 1) ^ (y & 1 == 0 ? 0 : 0x9908_B0DF)
            }
            index = 0
        }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// `torch.randperm(n, generator=g)` on the CPU with `g.manual_seed(seed)`, as torch 1.13 computes it:
    /// for i in 0..<n−1, swap element i with element i + (random() mod (n − i)). Checked against torch by
    /// Tests/Reference/make_sampler_golden.py.
    public static func randperm(_ n: Int, seed: UInt64) -> [Int] {
        var g = TorchGenerator(seed: seed)
        var r = Array(0..<max(n, 0))
        guard n > 1 else { return r }
        for i in 0..<(n - 1) {
            let z = Int(UInt64(g.next()) % UInt64(n - i))
            r.swapAt(i, i + z)
        }
        return r
    }
}

/// `torch.utils.data.distributed.DistributedSampler`: which indices of a dataset of `count` items rank
/// `rank` of `replicas` takes in `epoch`, exactly as torch gives them.
///
/// - shuffle: `torch.randperm(count)` from a generator seeded with `seed + epoch` (`TorchGenerator`);
///   otherwise dataset order;
/// - without `dropLast`, the list is padded by repeating it from the start up to `total`, a multiple of
///   `replicas`; with it, cut to the largest multiple of `replicas` when `count` is not one;
/// - rank r takes `indices[r ..< total]` with step `replicas`.
///
/// For any `replicas`, the items of step k with per-rank batch b are the same set, the permutation's
/// `[k·b·replicas, (k+1)·b·replicas)`, as long as `b · replicas` is the same.
public struct DistributedSampler: Sendable, Equatable {
    public var count: Int
    public var replicas: Int
    public var rank: Int
    public var shuffle: Bool
    public var seed: UInt64
    public var dropLast: Bool

    public init(count: Int, replicas: Int, rank: Int, shuffle: Bool = true, seed: UInt64 = 0, dropLast: Bool = false) {
        precondition(count >= 0 && replicas >= 1 && (0..<replicas).contains(rank), "a rank among the replicas")
        self.count = count
        self.replicas = replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.dropLast = dropLast
    }

    /// Items per rank (`num_samples`).
    public var perRank: Int {
        if dropLast && count % replicas != 0 {
            return (count - replicas + replicas - 1) / replicas  // ceil((count − replicas) / replicas)
        }
        return (count + replicas - 1) / replicas
    }

    /// Items over all ranks (`total_size`).
    public var total: Int { perRank * replicas }

    /// The whole epoch's list before it is dealt out: shuffled, then padded or cut to `total`.
    public func globalOrder(epoch: Int) -> [Int] {
        var indices =
            shuffle
            ? TorchGenerator.randperm(count, seed: seed &+ UInt64(epoch))
            : Array(0..<count)
        if !dropLast {
            guard !indices.isEmpty else { return [] }
            var k = 0
            while indices.count < total {
                indices.append(indices[k])
                k += 1
            }
        } else {
            indices = Array(indices.prefix(total))
        }
        return indices
    }

    /// This rank's indices for `epoch`, in the order it visits them.
    public func indices(epoch: Int) -> [Int] {
        let all = globalOrder(epoch: epoch)
        return stride(from: rank, to: all.count, by: replicas).map { all[$0] }
    }
}
