/* The one allocation hook: counting, failure injection, overflow checks. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static atomic_uint_fast64_t alloc_count;
static atomic_uint_fast64_t fail_countdown; /* 0 = never fail */
static atomic_size_t largest;               /* bytes of the largest request */

static void note_size(size_t bytes)
{
  size_t cur = atomic_load(&largest);
  while (bytes > cur && !atomic_compare_exchange_weak(&largest, &cur, bytes)) {
  }
}

static int should_fail(void)
{
  uint_fast64_t c = atomic_load(&fail_countdown);
  while (c > 0) {
    if (atomic_compare_exchange_weak(&fail_countdown, &c, c - 1))
      return c == 1;
  }
  return 0;
}

void *nnkit__malloc(size_t size)
{
  note_size(size);
  if (should_fail())
    return NULL;
  void *p = malloc(size ? size : 1);
  if (p)
    atomic_fetch_add(&alloc_count, 1);
  return p;
}

void *nnkit__calloc(size_t n, size_t size)
{
  int overflow = 0;
  size_t bytes = nnkit__mul_size(n, size, &overflow);
  note_size(overflow ? SIZE_MAX : bytes);
  if (should_fail())
    return NULL;
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p)
    atomic_fetch_add(&alloc_count, 1);
  return p;
}

void *nnkit__realloc(void *old, size_t size)
{
  note_size(size);
  if (should_fail())
    return NULL;
  void *p = realloc(old, size ? size : 1);
  if (p)
    atomic_fetch_add(&alloc_count, 1);
  return p;
}

void nnkit__free(void *p) { free(p); }

char *nnkit__strdup(const char *s)
{
  size_t n = strlen(s) + 1;
  char *d = nnkit__malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

uint64_t nnkit__alloc_count(void) { return atomic_load(&alloc_count); }

size_t nnkit__alloc_largest(int reset)
{
  return reset ? atomic_exchange(&largest, 0) : atomic_load(&largest);
}

void nnkit__alloc_fail_after(uint64_t n) { atomic_store(&fail_countdown, n); }

size_t nnkit__mul_size(size_t a, size_t b, int *overflow)
{
  if (a != 0 && b > SIZE_MAX / a) {
    *overflow = 1;
    return 0;
  }
  return a * b;
}
