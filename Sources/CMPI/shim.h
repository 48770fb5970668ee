// Open MPI's C API for Swift. Its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, …) are
// macros over addresses of library globals, which Swift cannot import: these functions hand them over.
#ifndef PTH2SWT_CMPI_SHIM_H
#define PTH2SWT_CMPI_SHIM_H

#include <mpi.h>

static inline MPI_Comm pth2swt_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype pth2swt_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype pth2swt_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype pth2swt_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype pth2swt_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op pth2swt_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op pth2swt_mpi_max(void) { return MPI_MAX; }
static inline void *pth2swt_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int pth2swt_mpi_success(void) { return MPI_SUCCESS; }
static inline int pth2swt_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline int pth2swt_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline MPI_Request pth2swt_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *pth2swt_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Errhandler pth2swt_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }

#endif
