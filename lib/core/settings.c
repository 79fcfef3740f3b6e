/* The keyed-settings engine every keyed object uses (optimizers,
 * schedules, regularizers, the trainer, pipelines, normalizers, layers):
 * one table row per (kind, key) with name, range, default and
 * nnkit_bound_flag bits, and the same lookups, bounds and error sentences
 * everywhere. */
#include <math.h>
#include <stdio.h>

#include "internal.h"

const nnkit__spec *nnkit__spec_find(const nnkit__spec *table, size_t n, int kind,
                                    int key)
{
  for (size_t i = 0; i < n; i++)
    if ((table[i].kind == kind || table[i].kind == 0) && table[i].key == key)
      return &table[i];
  return NULL;
}

void nnkit__spec_range(const nnkit__spec *s, char *buf, size_t len)
{
  if ((s->flags & NNKIT_BOUND_INTEGER) && s->lo == 0 && s->hi == 1)
    snprintf(buf, len, "0 or 1");
  else
    snprintf(buf, len, "%c%g, %g%c", (s->flags & NNKIT_BOUND_LO_OPEN) ? '(' : '[',
             s->lo, s->hi, (s->flags & NNKIT_BOUND_HI_OPEN) ? ')' : ']');
}

nnkit_status nnkit__spec_check(const nnkit__spec *s, const char *owner, double value)
{
  int ok = value >= s->lo && value <= s->hi; /* false for NaN */
  if (ok && (s->flags & NNKIT_BOUND_LO_OPEN) && value == s->lo)
    ok = 0;
  if (ok && (s->flags & NNKIT_BOUND_HI_OPEN) && value == s->hi)
    ok = 0;
  if (ok && (s->flags & NNKIT_BOUND_INTEGER) && value != floor(value))
    ok = 0;
  if (ok)
    return NNKIT_OK;
  char range[64];
  nnkit__spec_range(s, range, sizeof range);
  if ((s->flags & NNKIT_BOUND_INTEGER) && s->lo == 0 && s->hi == 1)
    return nnkit__err(NNKIT_E_INVALID, "%s %s %g must be 0 or 1", owner, s->name,
                      value);
  if (s->flags & NNKIT_BOUND_INTEGER)
    return nnkit__err(NNKIT_E_INVALID, "%s %s %g must be an integer in %s", owner,
                      s->name, value, range);
  return nnkit__err(NNKIT_E_INVALID, "%s %s %g is outside its range %s", owner,
                    s->name, value, range);
}

const nnkit__spec *nnkit__spec_lookup(const nnkit__spec *table, size_t n, int kind,
                                      int key, const char *owner,
                                      const char *family)
{
  const nnkit__spec *s = nnkit__spec_find(table, n, kind, key);
  if (!s)
    nnkit__err(NNKIT_E_INVALID, "%s has no setting %d; use one of its %s keys",
               owner, key, family);
  return s;
}

void nnkit__spec_bounds(const nnkit__spec *s, double *lo_out, double *hi_out,
                        int *flags_out)
{
  if (lo_out)
    *lo_out = s->lo;
  if (hi_out)
    *hi_out = s->hi;
  if (flags_out)
    *flags_out = s->flags;
}
