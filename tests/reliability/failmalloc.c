/* An LD_PRELOAD allocation shim: every malloc, calloc, realloc,
 * reallocarray, posix_memalign, aligned_alloc, memalign, valloc and free
 * of the process (nnkit's, cJSON's, zlib's, stb_image's, libjpeg's,
 * libcsv's, stdio's) goes through here to glibc's own allocator, counted,
 * and the Nth allocation from an arming call fails (returns NULL, errno
 * ENOMEM). Controlled by the program under test through the functions
 * below (found with dlsym, so the program runs without the shim too).
 * Counters are process-wide and atomic: run single-threaded (nnkit and
 * OpenBLAS at one thread) for a deterministic sweep.
 *
 * One exception: calls made from OpenBLAS's own code are neither counted
 * nor failed. OpenBLAS 0.3.21 does not survive a failed malloc (its
 * SkylakeX/Cooperlake small-matrix GEMM kernels use the result unchecked
 * and segfault; its buffer allocator ends the process), which nnkit,
 * calling it, cannot change. Every other library's calls are failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* glibc's allocator under its own names (exported for exactly this). */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void __libc_free(void *);

static atomic_uint_fast64_t calls;     /* allocation calls so far */
static atomic_uint_fast64_t countdown; /* fail when it reaches 1; 0 = never */
static atomic_uint_fast64_t injected;  /* failures returned */
static atomic_int_fast64_t live;       /* blocks allocated and not freed */

/* Fails the nth allocation call from now (n >= 1); 0 disarms. */
void failmalloc_arm(uint64_t n);
/* Allocation calls since the process started. */
uint64_t failmalloc_calls(void);
/* Failures injected since the process started. */
uint64_t failmalloc_injected(void);
/* Blocks allocated and not yet freed (for leak checks). */
int64_t failmalloc_live(void);

/* FAILMALLOC_BACKTRACE=1: each injected failure prints its backtrace to
 * stderr (for finding where a failure went). */
static int want_bt = -1;

void failmalloc_arm(uint64_t n)
{
  if (want_bt < 0) {
    const char *e = getenv("FAILMALLOC_BACKTRACE");
    want_bt = e && *e == '1';
    void *f[2];
    if (want_bt)
      backtrace(f, 2); /* loads libgcc_s now, not while failing */
  }
  atomic_store(&countdown, n);
}
uint64_t failmalloc_calls(void) { return atomic_load(&calls); }
uint64_t failmalloc_injected(void) { return atomic_load(&injected); }
int64_t failmalloc_live(void) { return atomic_load(&live); }

/* The address range of libopenblas's code, found once. */
static atomic_int blas_known;
static uintptr_t blas_lo, blas_hi;

static int find_blas(struct dl_phdr_info *info, size_t size, void *data)
{
  (void)size;
  (void)data;
  if (!info->dlpi_name || !strstr(info->dlpi_name, "libopenblas"))
    return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD)
      continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (!blas_lo || lo < blas_lo)
      blas_lo = lo;
    if (hi > blas_hi)
      blas_hi = hi;
  }
  return 1;
}

static int from_blas(const void *caller)
{
  if (!atomic_load(&blas_known)) {
    dl_iterate_phdr(find_blas, NULL);
    atomic_store(&blas_known, 1);
  }
  uintptr_t a = (uintptr_t)caller;
  return a >= blas_lo && a < blas_hi;
}

#define fail_now() fail_from(__builtin_return_address(0))

static int fail_from(const void *caller)
{
  if (from_blas(caller))
    return 0;
  atomic_fetch_add(&calls, 1);
  uint_fast64_t c = atomic_load(&countdown);
  while (c > 0) {
    if (atomic_compare_exchange_weak(&countdown, &c, c - 1)) {
      if (c == 1) {
        atomic_fetch_add(&injected, 1);
        if (want_bt == 1) {
          void *f[16];
          int k = backtrace(f, 16);
          backtrace_symbols_fd(f, k, 2);
        }
        errno = ENOMEM;
        return 1;
      }
      return 0;
    }
  }
  return 0;
}

static void *counted(void *p)
{
  if (p)
    atomic_fetch_add(&live, 1);
  return p;
}

void *malloc(size_t n)
{
  return fail_now() ? NULL : counted(__libc_malloc(n));
}

void *calloc(size_t n, size_t size)
{
  return fail_now() ? NULL : counted(__libc_calloc(n, size));
}

static void *realloc_from(void *p, size_t n, const void *caller)
{
  if (p && n == 0) { /* glibc frees p */
    atomic_fetch_sub(&live, 1);
    return __libc_realloc(p, n);
  }
  if (fail_from(caller))
    return NULL;
  void *q = __libc_realloc(p, n);
  if (q && !p)
    atomic_fetch_add(&live, 1);
  return q;
}

void *realloc(void *p, size_t n)
{
  return realloc_from(p, n, __builtin_return_address(0));
}

void *reallocarray(void *p, size_t n, size_t size)
{
  if (size && n > SIZE_MAX / size) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc_from(p, n * size, __builtin_return_address(0));
}

void free(void *p)
{
  if (p)
    atomic_fetch_sub(&live, 1);
  __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
  return fail_now() ? NULL : counted(__libc_memalign(align, n));
}

void *aligned_alloc(size_t align, size_t n)
{
  return fail_now() ? NULL : counted(__libc_memalign(align, n));
}

int posix_memalign(void **out, size_t align, size_t n)
{
  if (align < sizeof(void *) || (align & (align - 1)))
    return EINVAL;
  if (fail_now())
    return ENOMEM;
  void *p = counted(__libc_memalign(align, n));
  if (!p)
    return ENOMEM;
  *out = p;
  return 0;
}

void *valloc(size_t n)
{
  return fail_now() ? NULL : counted(__libc_valloc(n));
}
