// OpenBLAS's CBLAS interface and its thread control (Debian libopenblas-dev installs cblas.h on the
// multiarch include path, with openblas_set_num_threads declared in it).
#include <cblas.h>
