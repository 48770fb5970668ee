// The portable tier: the kernel bodies with no target attribute, so the compiler's baseline (SSE2 on
// x86-64, NEON on arm64). Runs everywhere; PTH2SWT_ISA=portable forces it.
#include "common.h"
#include "kernel_list.h"

#define NAME(x) x##_portable
#define TARGET
#define UK_MR 6
#define VEC_WIDE 8
#define UK_NP 1
#include "act_body.h"
#include "ukernel_v8.h"
#include "nhwc_body.h"
#include "train_body.h"

static int always(void) { return 1; }
PTH2SWT_DEFINE_TIER(portable, always)
