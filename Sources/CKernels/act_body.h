// The epilogue activations that are more than a clamp, Hardswish (act 3), SiLU (act 4) and GELU (act 5), out of line in
// each tier's build: common.h's act8 and act16 call these in unoptimised and sanitized builds, where
// inlining an e^x into every unrolled epilogue (the micro-kernels, Winograd's output transform, the
// depthwise kernels) makes frames too large for a worker thread's stack. Vectors pass by value, so no
// epilogue takes a local's address (which AddressSanitizer would pad). Included by each tier_*.c before
// the other bodies; NAME and TARGET name the build.

/// act(v) for act 3 (Hardswish), 4 (SiLU) or 5 (GELU), eight floats.
TARGET static __attribute__((noinline, unused)) v8 NAME(act8_wide)(v8 v, int act) {
    return act == 3 ? hardswish8(v) : act == 4 ? silu8(v) : gelu8(v);
}

/// The same for sixteen floats.
TARGET static __attribute__((noinline, unused)) v16 NAME(act16_wide)(v16 v, int act) {
    return act == 3 ? hardswish16(v) : act == 4 ? silu16(v) : gelu16(v);
}
