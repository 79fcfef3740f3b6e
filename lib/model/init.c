/* Parameter initializers: closed-form distributions drawn from the
 * counter-based generator. */
#include <math.h>

#include "internal.h"

NNKIT_API nnkit_status nnkit_init_create(nnkit_init **out, nnkit_init_kind kind,
                                         double a, double b)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_init_create: out is NULL");
  *out = NULL;
  if (!isfinite(a) || !isfinite(b))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_init_create: parameters must be finite (got a=%g, b=%g)",
                      a, b);
  switch (kind) {
  case NNKIT_INIT_ZEROS:
  case NNKIT_INIT_CONSTANT:
    break;
  case NNKIT_INIT_NORMAL:
    if (b < 0)
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_init_create: normal std %g is negative; use std >= 0", b);
    break;
  case NNKIT_INIT_UNIFORM:
    if (a > b)
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_init_create: uniform lo %g > hi %g; swap them", a, b);
    break;
  case NNKIT_INIT_XAVIER_NORMAL:
  case NNKIT_INIT_XAVIER_UNIFORM:
    if (a < 0)
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_init_create: Xavier gain %g is negative; use a gain > 0 "
                        "(0 means 1)", a);
    if (a == 0)
      a = 1.0;
    break;
  case NNKIT_INIT_HE_NORMAL:
  case NNKIT_INIT_HE_UNIFORM:
    if (a < 0)
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_init_create: He negative slope %g is negative; use 0 for "
                        "ReLU or the leaky ReLU's slope", a);
    break;
  default:
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_init_create: unknown initializer kind %d; use an "
                      "NNKIT_INIT_* value", (int)kind);
  }
  nnkit_init *in = nnkit__malloc(sizeof *in);
  if (!in)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_init_create: out of memory");
  in->kind = kind;
  in->a = a;
  in->b = b;
  *out = in;
  return NNKIT_OK;
}

NNKIT_API void nnkit_init_free(nnkit_init *init) { nnkit__free(init); }

NNKIT_API nnkit_init_kind nnkit_init_get_kind(const nnkit_init *init)
{
  return init ? init->kind : (nnkit_init_kind)0;
}

NNKIT_API nnkit_status nnkit_init_fill(const nnkit_init *init, float *buf,
                                       size_t n, size_t fan_in, size_t fan_out,
                                       uint64_t seed, uint64_t stream)
{
  if (!init || (!buf && n > 0))
    return nnkit__err(NNKIT_E_INVALID, "nnkit_init_fill: init or buf is NULL");
  nnkit_init_kind k = init->kind;
  int scaled = k == NNKIT_INIT_XAVIER_NORMAL || k == NNKIT_INIT_XAVIER_UNIFORM ||
               k == NNKIT_INIT_HE_NORMAL || k == NNKIT_INIT_HE_UNIFORM;
  if (scaled && (fan_in == 0 || fan_out == 0))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_init_fill: fan_in %zu / fan_out %zu must be positive for "
                      "Xavier and He initializers", fan_in, fan_out);
  nnkit__rng r;
  nnkit__rng_init(&r, seed, stream);
  double fi = (double)fan_in, fo = (double)fan_out;
  double s2 = 1.0 + init->a * init->a; /* He: 1 + slope^2 */
  switch (k) {
  case NNKIT_INIT_ZEROS:
    for (size_t i = 0; i < n; i++)
      buf[i] = 0.0f;
    break;
  case NNKIT_INIT_CONSTANT:
    for (size_t i = 0; i < n; i++)
      buf[i] = (float)init->a;
    break;
  case NNKIT_INIT_NORMAL:
    for (size_t i = 0; i < n; i++)
      buf[i] = (float)(init->a + init->b * nnkit__rng_normal(&r));
    break;
  case NNKIT_INIT_UNIFORM:
    for (size_t i = 0; i < n; i++)
      buf[i] = (float)(init->a + (init->b - init->a) * nnkit__rng_uniform(&r));
    break;
  case NNKIT_INIT_XAVIER_NORMAL: {
    double std = init->a * sqrt(2.0 / (fi + fo));
    for (size_t i = 0; i < n; i++)
      buf[i] = (float)(std * nnkit__rng_normal(&r));
    break;
  }
  case NNKIT_INIT_XAVIER_UNIFORM: {
    double lim = init->a * sqrt(6.0 / (fi + fo));
    for (size_t i = 0; i < n; i++)
      buf[i] = (float)(lim * (2.0 * nnkit__rng_uniform(&r) - 1.0));
    break;
  }
  case NNKIT_INIT_HE_NORMAL: {
    double std = sqrt(2.0 / (s2 * fi));
    for (size_t i = 0; i < n; i++)
      buf[i] = (float)(std * nnkit__rng_normal(&r));
    break;
  }
  case NNKIT_INIT_HE_UNIFORM: {
    double lim = sqrt(6.0 / (s2 * fi));
    for (size_t i = 0; i < n; i++)
      buf[i] = (float)(lim * (2.0 * nnkit__rng_uniform(&r) - 1.0));
    break;
  }
  }
  return NNKIT_OK;
}
