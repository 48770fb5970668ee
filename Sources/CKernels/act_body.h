// The epilogue activations that are more than a clamp, Hardswish (act 3) and SiLU (act 4), out of line in
// each tier's build: common.h's act8 and act16 call these in unoptimised builds, so that the unrolled
// epilogues (the micro-kernels, Winograd's output transform, the depthwise kernels) do not each inline
// an e^x into a frame too large for a worker thread's stack. Included by each tier_*.c before the other
// bodies; NAME and TARGET name the build.

/// *v = act(*v) for act 3 (Hardswish) or 4 (SiLU), eight floats (by pointer: a vector argument would
/// change the portable tier's ABI).
TARGET static __attribute__((noinline)) void NAME(act8_wide)(v8 *v, int act) {
    *v = act == 3 ? hardswish8(*v) : silu8(*v);
}

/// The same for sixteen floats.
TARGET static __attribute__((noinline)) void NAME(act16_wide)(v16 *v, int act) {
    *v = act == 3 ? hardswish16(*v) : silu16(*v);
}
