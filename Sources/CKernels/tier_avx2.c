// The AVX2+FMA tier: the kernel bodies built for AVX2 and FMA, with the 6×16 micro-kernel (twelve ymm
// accumulators).
#include "common.h"
#include "kernel_list.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NAME(x) x##_avx2
#define TARGET __attribute__((target("avx2,fma")))
#define UK_MR 6
#define VEC_WIDE 8
#define UK_NP 1
#include "act_body.h"
#include "ukernel_v8.h"
#include "nhwc_body.h"
#include "train_body.h"

PTH2SWT_DEFINE_TIER(avx2, pth2swt_cpu_has_avx2_fma)
#endif
