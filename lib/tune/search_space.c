/* The search space (nnkit/search.h): named dimensions (uniform,
 * log-uniform, integer, integer log, choice), each optionally driving a
 * library key whose bounds (the keyed-settings engine's rows, read through
 * the public *_bounds calls) the range must respect; random draws, grid
 * axes and the coarse-to-fine narrowing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

NNKIT_API nnkit_status nnkit_space_create(nnkit_space **out)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_space_create: out is NULL");
  *out = nnkit__calloc(1, sizeof **out);
  if (!*out)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_space_create: out of memory");
  return NNKIT_OK;
}

NNKIT_API void nnkit_space_free(nnkit_space *sp)
{
  if (!sp)
    return;
  for (size_t i = 0; i < sp->num_dims; i++)
    nnkit__free(sp->dims[i].values);
  nnkit__free(sp->dims);
  nnkit__free(sp);
}

NNKIT_API size_t nnkit_space_num_dims(const nnkit_space *sp)
{
  return sp ? sp->num_dims : 0;
}

NNKIT_API const char *nnkit_space_dim_name(const nnkit_space *sp, size_t dim)
{
  return sp && dim < sp->num_dims ? sp->dims[dim].name : NULL;
}

int nnkit__search_name_ok(const char *name)
{
  if (!name || !*name || strlen(name) >= NNKIT__NAME_MAX)
    return 0;
  for (const char *c = name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
      return 0;
  return 1;
}

long nnkit__space_find(const nnkit_space *sp, const char *name)
{
  for (size_t i = 0; i < sp->num_dims; i++)
    if (strcmp(sp->dims[i].name, name) == 0)
      return (long)i;
  return -1;
}

/* The target key's range into *spec (name "owner key"), or the bounds
 * call's NNKIT_E_INVALID. Layer keys: the intersection of the ranges of
 * every layer kind that has the key. */
static nnkit_status target_spec(nnkit__spec *spec, const char *dim,
                                nnkit_search_target target, int kind, int key)
{
  nnkit_status st = NNKIT_OK;
  memset(spec, 0, sizeof *spec);
  spec->name = dim;
  switch (target) {
  case NNKIT_TARGET_OPTIMIZER:
    st = nnkit_optimizer_bounds(&spec->lo, &spec->hi, &spec->flags,
                                (nnkit_optim_kind)kind, (nnkit_optim_param)key);
    break;
  case NNKIT_TARGET_SCHEDULE:
    st = nnkit_schedule_bounds(&spec->lo, &spec->hi, &spec->flags,
                               (nnkit_sched_kind)kind, (nnkit_sched_param)key);
    break;
  case NNKIT_TARGET_REGULARIZER:
    st = nnkit_regularizer_bounds(&spec->lo, &spec->hi, &spec->flags,
                                  (nnkit_reg_kind)kind, (nnkit_reg_param)key);
    break;
  case NNKIT_TARGET_TRAINER:
    st = nnkit_trainer_bounds(&spec->lo, &spec->hi, &spec->flags,
                              (nnkit_train_param)key);
    break;
  case NNKIT_TARGET_PIPELINE:
    st = nnkit_pipeline_bounds(&spec->lo, &spec->hi, &spec->flags,
                               (nnkit_pipe_param)key);
    break;
  case NNKIT_TARGET_LAYER: {
    if (kind < 0)
      return nnkit__err(NNKIT_E_INVALID,
                        "search space dimension '%s': layer index %d is negative; "
                        "give the layer's index in the built net", dim, kind);
    size_t n = 0, found = 0;
    spec->lo = -INFINITY;
    spec->hi = INFINITY;
    const nnkit__layer_kind *lk;
    for (size_t i = 0; (lk = nnkit__layer_kind_at(i, &n)) != NULL; i++) {
      const nnkit__spec *r = nnkit__spec_find(lk->opts, lk->num_opts, 0, key);
      if (!r)
        continue;
      found++;
      if (r->lo > spec->lo || (r->lo == spec->lo && (r->flags & NNKIT_BOUND_LO_OPEN))) {
        spec->lo = r->lo;
        spec->flags = (spec->flags & ~NNKIT_BOUND_LO_OPEN) | (r->flags & NNKIT_BOUND_LO_OPEN);
      }
      if (r->hi < spec->hi || (r->hi == spec->hi && (r->flags & NNKIT_BOUND_HI_OPEN))) {
        spec->hi = r->hi;
        spec->flags = (spec->flags & ~NNKIT_BOUND_HI_OPEN) | (r->flags & NNKIT_BOUND_HI_OPEN);
      }
      spec->flags |= r->flags & NNKIT_BOUND_INTEGER;
    }
    if (!found)
      return nnkit__err(NNKIT_E_INVALID,
                        "search space dimension '%s': no layer kind has the setting "
                        "%d; use an nnkit_layer_param key", dim, key);
    break;
  }
  default:
    return nnkit__err(NNKIT_E_INVALID,
                      "search space dimension '%s': target %d is not an "
                      "nnkit_search_target; use NNKIT_TARGET_NONE for a free value",
                      dim, (int)target);
  }
  if (st != NNKIT_OK) {
    char why[512];
    snprintf(why, sizeof why, "%s", nnkit_last_error());
    return nnkit__err(st, "search space dimension '%s': %s", dim, why);
  }
  return NNKIT_OK;
}

/* Checks the values a dimension can take (its range ends, or each
 * choice) against its target key. */
static nnkit_status check_target(const nnkit__dim *d)
{
  if (d->target == NNKIT_TARGET_NONE)
    return NNKIT_OK;
  nnkit__spec spec;
  nnkit_status st = target_spec(&spec, d->name, d->target, d->target_kind, d->key);
  if (st != NNKIT_OK)
    return st;
  if ((spec.flags & NNKIT_BOUND_INTEGER) &&
      (d->kind == NNKIT_DIM_UNIFORM || d->kind == NNKIT_DIM_LOG_UNIFORM))
    return nnkit__err(NNKIT_E_INVALID,
                      "search space dimension '%s': its key takes whole numbers; "
                      "use NNKIT_DIM_INT or NNKIT_DIM_INT_LOG (or a choice)",
                      d->name);
  double ends[2] = {d->lo, d->hi};
  const double *v = d->kind == NNKIT_DIM_CHOICE ? d->values : ends;
  size_t n = d->kind == NNKIT_DIM_CHOICE ? d->n : 2;
  for (size_t i = 0; i < n; i++) {
    st = nnkit__spec_check(&spec, "search space dimension", v[i]);
    if (st != NNKIT_OK) {
      char why[512];
      snprintf(why, sizeof why, "%s", nnkit_last_error());
      return nnkit__err(st, "%s of its key; narrow the dimension's range", why);
    }
  }
  return NNKIT_OK;
}

static nnkit_status push_dim(nnkit_space *sp, nnkit__dim *d)
{
  if (nnkit__space_find(sp, d->name) >= 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "search space: a dimension named '%s' exists already; give "
                      "each dimension its own name", d->name);
  nnkit_status st = check_target(d);
  if (st != NNKIT_OK)
    return st;
  if (sp->num_dims == sp->cap_dims) {
    size_t cap = sp->cap_dims ? 2 * sp->cap_dims : 4;
    nnkit__dim *dims = nnkit__realloc(sp->dims, cap * sizeof *dims);
    if (!dims)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_space_add: out of memory");
    sp->dims = dims;
    sp->cap_dims = cap;
  }
  sp->dims[sp->num_dims++] = *d;
  return NNKIT_OK;
}

static nnkit_status dim_init(nnkit__dim *d, const nnkit_space *sp, const char *name,
                             nnkit_search_target target, int target_kind, int key)
{
  memset(d, 0, sizeof *d);
  if (!sp)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_space_add: the space is NULL");
  if (!nnkit__search_name_ok(name))
    return nnkit__err(NNKIT_E_INVALID,
                      "search space: dimension name '%s' is not 1 to 63 letters, "
                      "digits, '_', '.' or '-'", name ? name : "(NULL)");
  strcpy(d->name, name);
  d->target = target;
  d->target_kind = target_kind;
  d->key = key;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_space_add(nnkit_space *sp, const char *name,
                                       nnkit_dim_kind kind, double lo, double hi,
                                       nnkit_search_target target, int target_kind,
                                       int key)
{
  nnkit__dim d;
  nnkit_status st = dim_init(&d, sp, name, target, target_kind, key);
  if (st != NNKIT_OK)
    return st;
  if (kind < NNKIT_DIM_UNIFORM || kind > NNKIT_DIM_INT_LOG)
    return nnkit__err(NNKIT_E_INVALID,
                      "search space dimension '%s': kind %d is not a range kind; use "
                      "NNKIT_DIM_UNIFORM, _LOG_UNIFORM, _INT, _INT_LOG, or "
                      "nnkit_space_add_choice()", name, (int)kind);
  if (!isfinite(lo) || !isfinite(hi))
    return nnkit__err(NNKIT_E_INVALID,
                      "search space dimension '%s': range [%g, %g] is not finite",
                      name, lo, hi);
  if (lo > hi)
    return nnkit__err(NNKIT_E_INVALID,
                      "search space dimension '%s': range [%g, %g] is inverted; give "
                      "lo < hi", name, lo, hi);
  if (lo == hi)
    return nnkit__err(NNKIT_E_INVALID,
                      "search space dimension '%s': range [%g, %g] is empty; give "
                      "lo < hi (a fixed value needs no dimension)", name, lo, hi);
  int integer = nnkit__dim_int(kind);
  if (integer && (lo != floor(lo) || hi != floor(hi) || fabs(lo) > 9e15 || fabs(hi) > 9e15))
    return nnkit__err(NNKIT_E_INVALID,
                      "search space dimension '%s': an integer range needs whole "
                      "numbers (up to 9e15), not [%g, %g]", name, lo, hi);
  if (kind == NNKIT_DIM_LOG_UNIFORM && lo <= 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "search space dimension '%s': a log-uniform range needs 0 < lo, "
                      "not [%g, %g]", name, lo, hi);
  if (kind == NNKIT_DIM_INT_LOG && lo < 1)
    return nnkit__err(NNKIT_E_INVALID,
                      "search space dimension '%s': an integer log range needs 1 <= lo, "
                      "not [%g, %g]", name, lo, hi);
  d.kind = kind;
  d.lo = lo;
  d.hi = hi;
  return push_dim(sp, &d);
}

NNKIT_API nnkit_status nnkit_space_add_choice(nnkit_space *sp, const char *name,
                                              const double *values, size_t n,
                                              nnkit_search_target target,
                                              int target_kind, int key)
{
  nnkit__dim d;
  nnkit_status st = dim_init(&d, sp, name, target, target_kind, key);
  if (st != NNKIT_OK)
    return st;
  if (!values || n == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "search space dimension '%s': the list of choices is empty; "
                      "give at least one value", name);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(values[i]))
      return nnkit__err(NNKIT_E_INVALID,
                        "search space dimension '%s': choice %zu (%g) is not finite",
                        name, i, values[i]);
  d.kind = NNKIT_DIM_CHOICE;
  d.n = n;
  d.values = nnkit__malloc(n * sizeof *d.values);
  if (!d.values)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_space_add_choice: out of memory");
  memcpy(d.values, values, n * sizeof *d.values);
  d.lo = d.hi = values[0];
  for (size_t i = 1; i < n; i++) {
    d.lo = values[i] < d.lo ? values[i] : d.lo;
    d.hi = values[i] > d.hi ? values[i] : d.hi;
  }
  st = push_dim(sp, &d);
  if (st != NNKIT_OK)
    nnkit__free(d.values);
  return st;
}

nnkit_space *nnkit__space_copy(const nnkit_space *sp)
{
  nnkit_space *c = nnkit__calloc(1, sizeof *c);
  if (!c)
    goto nomem;
  c->dims = nnkit__calloc(sp->num_dims ? sp->num_dims : 1, sizeof *c->dims);
  if (!c->dims)
    goto nomem;
  c->cap_dims = sp->num_dims ? sp->num_dims : 1;
  for (size_t i = 0; i < sp->num_dims; i++) {
    c->dims[i] = sp->dims[i];
    c->dims[i].values = NULL;
    c->num_dims = i + 1;
    if (sp->dims[i].values) {
      c->dims[i].values = nnkit__malloc(sp->dims[i].n * sizeof(double));
      if (!c->dims[i].values)
        goto nomem;
      memcpy(c->dims[i].values, sp->dims[i].values, sp->dims[i].n * sizeof(double));
    }
  }
  return c;
nomem:
  nnkit_space_free(c);
  nnkit__err(NNKIT_E_NOMEM, "search: out of memory copying the space");
  return NULL;
}

/* u in [0, 1) mapped onto dimension d. */
static double dim_at(const nnkit__dim *d, double u)
{
  switch (d->kind) {
  case NNKIT_DIM_UNIFORM:
    return d->lo + u * (d->hi - d->lo);
  case NNKIT_DIM_LOG_UNIFORM:
    return exp(log(d->lo) + u * (log(d->hi) - log(d->lo)));
  case NNKIT_DIM_INT: {
    double v = floor(d->lo + u * (d->hi - d->lo + 1));
    return v > d->hi ? d->hi : v;
  }
  case NNKIT_DIM_INT_LOG: {
    double v = floor(exp(log(d->lo) + u * (log(d->hi + 1) - log(d->lo))));
    return v > d->hi ? d->hi : v < d->lo ? d->lo : v;
  }
  case NNKIT_DIM_CHOICE: {
    size_t i = (size_t)(u * (double)d->n);
    return d->values[i < d->n ? i : d->n - 1];
  }
  }
  return d->lo;
}

void nnkit__space_draw(const nnkit_space *sp, uint64_t seed, uint64_t stream,
                       double *values)
{
  nnkit__rng r;
  nnkit__rng_init(&r, seed, stream);
  for (size_t i = 0; i < sp->num_dims; i++) {
    const nnkit__dim *d = &sp->dims[i];
    values[i] = dim_at(d, nnkit__rng_uniform(&r));
    /* exp(log(hi)) may round a hair past hi */
    if (d->kind != NNKIT_DIM_CHOICE)
      values[i] = values[i] < d->lo ? d->lo : values[i] > d->hi ? d->hi : values[i];
  }
}

size_t nnkit__space_grid_axis(const nnkit__dim *d, size_t points, double *out)
{
  if (d->kind == NNKIT_DIM_CHOICE) {
    memcpy(out, d->values, d->n * sizeof *out);
    return d->n;
  }
  size_t n = 0;
  for (size_t i = 0; i < points; i++) {
    double t = points == 1 ? 0.5 : (double)i / (double)(points - 1);
    double v;
    if (nnkit__dim_log(d->kind))
      v = exp(log(d->lo) + t * (log(d->hi) - log(d->lo)));
    else
      v = d->lo + t * (d->hi - d->lo);
    if (i == 0 && points > 1)
      v = d->lo;
    if (i == points - 1 && points > 1)
      v = d->hi;
    if (nnkit__dim_int(d->kind)) {
      v = floor(v + 0.5);
      if (n > 0 && out[n - 1] == v)
        continue;
    }
    out[n++] = v;
  }
  return n;
}

void nnkit__space_narrow(nnkit_space *sp, const double *top, size_t k)
{
  size_t nd = sp->num_dims;
  for (size_t j = 0; j < nd; j++) {
    nnkit__dim *d = &sp->dims[j];
    if (d->kind == NNKIT_DIM_CHOICE) {
      size_t m = 0;
      for (size_t c = 0; c < d->n; c++) {
        int used = 0;
        for (size_t i = 0; i < k && !used; i++)
          used = top[i * nd + j] == d->values[c];
        if (used)
          d->values[m++] = d->values[c];
      }
      if (m > 0)
        d->n = m;
      continue;
    }
    int lg = nnkit__dim_log(d->kind);
    double olo = lg ? log(d->lo) : d->lo, ohi = lg ? log(d->hi) : d->hi;
    double a = INFINITY, b = -INFINITY;
    for (size_t i = 0; i < k; i++) {
      double v = top[i * nd + j];
      v = lg ? log(v) : v;
      a = v < a ? v : a;
      b = v > b ? v : b;
    }
    double pad = b > a ? 0.25 * (b - a) : 0.1 * (ohi - olo);
    a = a - pad < olo ? olo : a - pad;
    b = b + pad > ohi ? ohi : b + pad;
    double lo = lg ? exp(a) : a, hi = lg ? exp(b) : b;
    lo = lo < d->lo ? d->lo : lo; /* exp(log(x)) may round past the ends */
    hi = hi > d->hi ? d->hi : hi;
    if (nnkit__dim_int(d->kind)) {
      lo = floor(lo);
      hi = ceil(hi);
      if (lo == hi) { /* keep a range of two values inside the original */
        if (hi < d->hi)
          hi += 1;
        else
          lo -= 1;
      }
    }
    if (hi > lo) {
      d->lo = lo;
      d->hi = hi;
    }
  }
}

void nnkit__dim_format(const nnkit__dim *d, double v, char *buf, size_t len)
{
  if (nnkit__dim_int(d->kind))
    snprintf(buf, len, "%.0f", v);
  else if (d->kind == NNKIT_DIM_CHOICE)
    snprintf(buf, len, "%g", v);
  else
    snprintf(buf, len, "%e", v);
}
