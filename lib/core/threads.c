/* Thread control (OpenBLAS's pool) and the clock. */
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "internal.h"

/* OpenBLAS's extension API; declared by its cblas.h, repeated here so the
 * build also works against cblas.h headers that omit it. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

NNKIT_API nnkit_status nnkit_set_num_threads(int n)
{
  if (n < 0 || n > 1024)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_set_num_threads: %d threads is outside [0, 1024]; "
                      "pass 0 for all cores or a positive count", n);
  if (n == 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    n = cores > 0 ? (int)cores : 1;
  }
  openblas_set_num_threads(n);
  return NNKIT_OK;
}

NNKIT_API int nnkit_get_num_threads(void)
{
  int n = openblas_get_num_threads();
  return n > 0 ? n : 1;
}

int nnkit__num_threads(void) { return nnkit_get_num_threads(); }

double nnkit__now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
