/* Counter-based random numbers: output i of key k is mix(k + i * gamma),
 * SplitMix64's bijective finalizer over a Weyl sequence. Draw i of
 * (seed, stream) is a pure function of the three. */
#include <math.h>

#include "internal.h"

#define GAMMA UINT64_C(0x9E3779B97F4A7C15)

static uint64_t mix64(uint64_t z)
{
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

void nnkit__rng_init(nnkit__rng *r, uint64_t seed, uint64_t stream)
{
  /* Two rounds so that nearby (seed, stream) pairs give unrelated keys. */
  r->key = mix64(mix64(seed ^ UINT64_C(0x6E6E6B6974)) + stream * GAMMA + 1);
  r->counter = 0;
}

uint64_t nnkit__rng_u64(nnkit__rng *r)
{
  return mix64(r->key + (++r->counter) * GAMMA);
}

double nnkit__rng_uniform(nnkit__rng *r)
{
  return (double)(nnkit__rng_u64(r) >> 11) * 0x1.0p-53;
}

double nnkit__rng_normal(nnkit__rng *r)
{
  /* Box-Muller; u1 in (0, 1] so log() is finite. */
  double u1 = 1.0 - nnkit__rng_uniform(r);
  double u2 = nnkit__rng_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t nnkit__rng_below(nnkit__rng *r, uint64_t n)
{
  /* Rejection on the top of the range keeps it unbiased. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do
    v = nnkit__rng_u64(r);
  while (v >= limit);
  return v % n;
}

void nnkit__rng_shuffle(nnkit__rng *r, size_t *idx, size_t n)
{
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)nnkit__rng_below(r, i);
    size_t t = idx[i - 1];
    idx[i - 1] = idx[j];
    idx[j] = t;
  }
}
