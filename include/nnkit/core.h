/**
 * @file nnkit/core.h
 * Status codes, the error channel, versions and thread control.
 *
 * Conventions used by every nnkit header:
 *  - Fallible calls return ::nnkit_status (0 = NNKIT_OK, negative = error)
 *    and write results through out-parameters that come first.
 *  - On failure nothing is half-built: `*out` is left NULL, objects passed in
 *    are unchanged unless the comment says otherwise, and nnkit_last_error()
 *    holds a sentence naming what was wrong and how to fix it.
 *  - `_free` functions accept NULL and return void.
 *  - NULL handles: every call that returns no ::nnkit_status (a getter that
 *    cannot fail, a void setter) accepts a NULL handle. Numeric getters then
 *    return 0 (kinds 0, yes/no answers 0), pointer getters (strings
 *    included) return NULL, and void calls do nothing. Fallible calls
 *    answer a NULL handle with NNKIT_E_INVALID and a sentence.
 *  - A handle is used by one thread at a time; distinct handles are
 *    independent.
 */
#ifndef NNKIT_CORE_H
#define NNKIT_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "nnkit/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define NNKIT_API __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define NNKIT_API __attribute__((visibility("default")))
#else
#  define NNKIT_API
#endif

/** Result of every fallible call. Values are fixed forever (append only). */
typedef enum nnkit_status {
  NNKIT_OK = 0,
  NNKIT_E_INVALID = -1,  /**< a bad argument or hyperparameter value */
  NNKIT_E_NOMEM = -2,    /**< an allocation failed */
  NNKIT_E_IO = -3,       /**< a file could not be opened, read or written */
  NNKIT_E_FORMAT = -4,   /**< a file's contents are malformed or truncated */
  NNKIT_E_SHAPE = -5,    /**< tensor or layer shapes do not fit together */
  NNKIT_E_STATE = -6,    /**< the call is not valid in the object's state */
  NNKIT_E_DIVERGED = -7, /**< training produced NaN/Inf or exploded */
  NNKIT_E_USER = -8      /**< a user callback asked to abort */
} nnkit_status;

/** Run-time library version as "MAJOR.MINOR.PATCH" (static storage). */
NNKIT_API const char *nnkit_version(void);

/** Run-time version as MAJOR*10000 + MINOR*100 + PATCH; compare with
 *  NNKIT_VERSION_NUMBER to detect a header/library mismatch. */
NNKIT_API uint32_t nnkit_version_number(void);

/** Static, never-NULL name of a status ("NNKIT_E_FORMAT: malformed file").
 *  Unknown values give "unknown nnkit status". */
NNKIT_API const char *nnkit_status_string(nnkit_status status);

/** The sentence describing the last failure on the calling thread.
 *  Never NULL; "" when no call on this thread has failed since the last
 *  nnkit_clear_error(). The text stays valid until the next nnkit call on
 *  this thread that fails or clears it. */
NNKIT_API const char *nnkit_last_error(void);

/** Empties the calling thread's last-error sentence. */
NNKIT_API void nnkit_clear_error(void);

/** Sets the number of threads nnkit's math uses. Process-wide. n >= 1;
 *  n == 0 means "all cores" (also the default). nnkit runs its own pool of
 *  n - 1 worker threads (the calling thread is the n-th) and splits each
 *  layer's work over it, and sets OpenBLAS to one thread so the two never
 *  compete for cores: BLAS calls made by the application itself are then
 *  single-threaded too (call openblas_set_num_threads() after this to
 *  change that). Results are bitwise reproducible for a fixed seed and
 *  thread count.
 *  @return NNKIT_E_INVALID when n < 0 or n > 1024. */
NNKIT_API nnkit_status nnkit_set_num_threads(int n);

/** Threads currently used by nnkit's math (>= 1). */
NNKIT_API int nnkit_get_num_threads(void);

/** How nnkit picks between its own kernels and the BLAS library's where
 *  both can compute a product (a dense layer's GEMMs; a convolution's
 *  direct path against im2col + sgemm). */
typedef enum nnkit_kernels {
  /** Default: the first call on a shape, at a thread count, times each
   *  candidate on the real operands and keeps the fastest for the rest of
   *  the process (a few milliseconds, once). Runs in one process are
   *  bitwise reproducible; two processes may rank two close candidates
   *  differently and then differ in the last bits. */
  NNKIT_KERNELS_MEASURE = 0,
  /** nnkit's own kernels wherever the CPU can run them (AVX2 and FMA):
   *  bitwise-identical results from one process to the next. */
  NNKIT_KERNELS_OWN = 1,
  /** cblas_sgemm for dense layers, im2col + sgemm for convolutions. */
  NNKIT_KERNELS_BLAS = 2
} nnkit_kernels;

/** Sets how kernels are chosen, process-wide (see nnkit_kernels); it
 *  applies to products computed after the call. The environment variable
 *  NNKIT_KERNELS=measure|own|blas sets the starting mode.
 *  @return NNKIT_E_INVALID for a value outside the enum. */
NNKIT_API nnkit_status nnkit_set_kernels(nnkit_kernels mode);

/** The current kernel mode. */
NNKIT_API nnkit_kernels nnkit_get_kernels(void);

/** Flags describing a hyperparameter's range, from the *_bounds() calls.
 *  Without flags the range is the closed interval [lo, hi]. */
typedef enum nnkit_bound_flag {
  NNKIT_BOUND_LO_OPEN = 1, /**< lo itself is excluded: (lo, ... */
  NNKIT_BOUND_HI_OPEN = 2, /**< hi itself is excluded: ..., hi) */
  NNKIT_BOUND_INTEGER = 4  /**< whole numbers only (counts, 0/1 switches) */
} nnkit_bound_flag;

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_CORE_H */
