// The AVX-512 tier (F, BW, DQ, VL): the 6×64 zmm micro-kernel (ukernel_avx512.h); the other bodies are
// built with AVX-512 enabled, so the compiler may use its masks and 32 vector registers.
// Depth chunks of 128 when a convolution's depth is past CONV_KC_WHOLE: a 128 × 64 slice of the
// weights (32 KB) stays in L1 while every row block passes over it (4–10 % on ResNet's deep 3×3 layers
// against 512, alternating in bench conv; 64 and 256 were slower).
#define TIER_CONV_KC 128
// gemm_tn (the weight gradients) in reduction chunks of 128 rows for the same reason: a training step
// 0.960× against 256 (bench train, 4 alternating rounds); 64 was 1.14×.
#define TIER_TN_KC 128
#include "common.h"
#include "kernel_list.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NAME(x) x##_avx512
#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define UK_MR 6
#define VEC_WIDE 16
#define UK_NP 4
#include "act_body.h"
#include "ukernel_avx512.h"
#include "nhwc_body.h"
#include "train_body.h"

PTH2SWT_DEFINE_TIER(avx512, pth2swt_cpu_has_avx512)
#endif
