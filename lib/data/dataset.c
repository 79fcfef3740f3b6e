/* Datasets built from caller buffers, subsets, scaling and accessors.
 *
 * Invariants every constructor establishes (other modules rely on them):
 * count >= 1, 1 <= ndim <= NNKIT_MAX_SAMPLE_DIMS, every dimension >= 1,
 * count * sample_size floats fit in size_t, every value in x and targets
 * is finite, and labels (when present) lie in [0, num_classes) with
 * num_classes >= 1. */
#include <math.h>
#include <string.h>

#include "internal.h"

/* Product of the sample shape, and count * that product, with overflow
 * detection. Returns 0 when either product does not fit in size_t. */
static int sizes_fit(size_t count, const size_t *shape, size_t ndim,
                     size_t *per_out, size_t *total_out)
{
  int ovf = 0;
  size_t per = 1;
  for (size_t i = 0; i < ndim; i++)
    per = nnkit__mul_size(per, shape[i], &ovf);
  size_t total = nnkit__mul_size(per, count, &ovf);
  /* The float buffer's byte size must fit too. */
  nnkit__mul_size(total, sizeof(float), &ovf);
  *per_out = per;
  *total_out = total;
  return !ovf;
}

/* Validates count and shape for the public constructor `fn` and computes
 * the sizes; sentences name fn and say how to fix the call. */
static nnkit_status check_geometry(const char *fn, size_t count,
                                   const size_t *shape, size_t ndim,
                                   size_t *per_out, size_t *total_out)
{
  if (count == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: count is 0; a dataset needs at least one sample", fn);
  if (!shape)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: shape is NULL; pass the sample shape, e.g. {784}", fn);
  if (ndim < 1 || ndim > NNKIT_MAX_SAMPLE_DIMS)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: ndim is %zu; a sample has 1 to %d dimensions", fn,
                      ndim, NNKIT_MAX_SAMPLE_DIMS);
  for (size_t i = 0; i < ndim; i++)
    if (shape[i] == 0)
      return nnkit__err(NNKIT_E_INVALID,
                        "%s: shape[%zu] is 0; every dimension must be >= 1", fn,
                        i);
  if (!sizes_fit(count, shape, ndim, per_out, total_out))
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: %zu samples of that shape overflow the address space; "
                      "use fewer or smaller samples", fn, count);
  return NNKIT_OK;
}

static nnkit_status dataset_alloc(nnkit_dataset **out, size_t count,
                                  const size_t *shape, size_t ndim,
                                  int labelled, size_t target_dim, int bytes)
{
  *out = NULL;
  size_t per, total;
  nnkit_status st = check_geometry("dataset", count, shape, ndim, &per, &total);
  if (st != NNKIT_OK)
    return st;
  int ovf = 0;
  size_t tbytes = nnkit__mul_size(nnkit__mul_size(count, target_dim, &ovf),
                                  sizeof(float), &ovf);
  if (ovf)
    return nnkit__err(NNKIT_E_INVALID,
                      "dataset: %zu samples of %zu targets overflow the address "
                      "space; use fewer samples or targets", count, target_dim);
  nnkit_dataset *ds = nnkit__calloc(1, sizeof *ds);
  if (!ds)
    return nnkit__err(NNKIT_E_NOMEM, "dataset: out of memory");
  ds->count = count;
  ds->ndim = ndim;
  memcpy(ds->shape, shape, ndim * sizeof *shape);
  ds->sample_size = per;
  ds->target_dim = target_dim;
  /* count <= total, so count * sizeof(int32_t) cannot overflow either. */
  if (bytes) {
    ds->x8 = nnkit__malloc(total);
    for (int b = 0; b < 256; b++)
      ds->lut[b] = (float)b;
  } else {
    ds->x = nnkit__malloc(total * sizeof(float));
  }
  if (labelled)
    ds->labels = nnkit__malloc(count * sizeof(int32_t));
  if (target_dim)
    ds->targets = nnkit__malloc(tbytes);
  if (!(bytes ? (void *)ds->x8 : (void *)ds->x) || (labelled && !ds->labels) ||
      (target_dim && !ds->targets)) {
    nnkit_dataset_free(ds);
    return nnkit__err(NNKIT_E_NOMEM,
                      "dataset: out of memory for %zu samples of %zu values",
                      count, per);
  }
  *out = ds;
  return NNKIT_OK;
}

nnkit_status nnkit__dataset_alloc(nnkit_dataset **out, size_t count,
                                  const size_t *shape, size_t ndim,
                                  int labelled, size_t target_dim)
{
  return dataset_alloc(out, count, shape, ndim, labelled, target_dim, 0);
}

nnkit_status nnkit__dataset_alloc_bytes(nnkit_dataset **out, size_t count,
                                        const size_t *shape, size_t ndim,
                                        int labelled)
{
  return dataset_alloc(out, count, shape, ndim, labelled, 0, 1);
}

/* ---- reading values in either form ------------------------------------ */

static void decode(const nnkit_dataset *ds, const uint8_t *src, size_t n,
                   float *out)
{
  const float *lut = ds->lut;
  for (size_t i = 0; i < n; i++)
    out[i] = lut[src[i]];
}

void nnkit__dataset_rows(const nnkit_dataset *ds, size_t first, size_t n,
                         float *out)
{
  size_t per = ds->sample_size;
  if (ds->x8)
    decode(ds, ds->x8 + first * per, n * per, out);
  else
    memcpy(out, ds->x + first * per, n * per * sizeof(float));
}

void nnkit__dataset_gather(const nnkit_dataset *ds, const size_t *idx,
                           size_t n, float *out)
{
  for (size_t i = 0; i < n; i++)
    nnkit__dataset_rows(ds, idx[i], 1, out + i * ds->sample_size);
}

const float *nnkit__dataset_block(const nnkit_dataset *ds, size_t first,
                                  size_t n, float *scratch)
{
  if (!ds->x8)
    return ds->x + first * ds->sample_size;
  decode(ds, ds->x8 + first * ds->sample_size, n * ds->sample_size, scratch);
  return scratch;
}

const float *nnkit__dataset_floats(const nnkit_dataset *ds, const char *fn)
{
  if (!ds->x8)
    return ds->x;
  /* Several readers may race here: each builds a copy, the first to
   * publish wins and the others free theirs. The values are equal. */
  float *x = __atomic_load_n(&((nnkit_dataset *)ds)->x, __ATOMIC_ACQUIRE);
  if (x)
    return x;
  size_t n = ds->count * ds->sample_size; /* fits: checked at allocation */
  float *mine = nnkit__malloc(n * sizeof *mine);
  if (!mine) {
    nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for the float copy of "
               "%zu dataset values (the set keeps them as bytes)", fn, n);
    return NULL;
  }
  decode(ds, ds->x8, n, mine);
  float *expected = NULL;
  if (__atomic_compare_exchange_n(&((nnkit_dataset *)ds)->x, &expected, mine,
                                  0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return mine;
  nnkit__free(mine);
  return expected;
}

nnkit_status nnkit__dataset_own_floats(nnkit_dataset *ds, const char *fn)
{
  if (!ds->x8)
    return NNKIT_OK;
  if (!nnkit__dataset_floats(ds, fn))
    return NNKIT_E_NOMEM;
  nnkit__free(ds->x8);
  ds->x8 = NULL;
  return NNKIT_OK;
}

/* Index of the first non-finite value of x[0..n), or SIZE_MAX. */
static size_t first_non_finite(const float *x, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return i;
  return SIZE_MAX;
}

/* Rejects a non-finite value of x (per floats per sample), naming the
 * sample and the position inside it. `what` is "value" or "target". */
static nnkit_status check_finite(const char *fn, const char *what,
                                 const float *x, size_t n, size_t per)
{
  size_t bad = first_non_finite(x, n);
  if (bad == SIZE_MAX)
    return NNKIT_OK;
  return nnkit__err(NNKIT_E_INVALID,
                    "%s: sample %zu, %s %zu is %s; clean or impute the data "
                    "before building a dataset", fn, bad / per, what, bad % per,
                    isnan(x[bad]) ? "NaN" : "infinite");
}

/* Checks labels against *num_classes, or sets it to max label + 1 when 0. */
static nnkit_status check_labels(const char *fn, const int32_t *labels,
                                 size_t count, uint32_t *num_classes)
{
  uint32_t k = *num_classes, max_plus_1 = 0;
  for (size_t i = 0; i < count; i++) {
    int32_t l = labels[i];
    if (l < 0)
      return nnkit__err(NNKIT_E_INVALID,
                        "%s: sample %zu has label %d; class ids start at 0",
                        fn, i, (int)l);
    if (k && (uint32_t)l >= k)
      return nnkit__err(NNKIT_E_INVALID,
                        "%s: sample %zu has label %d outside [0, %u); fix the "
                        "label or pass num_classes = 0 to count classes from "
                        "the labels", fn, i, (int)l, k);
    if ((uint32_t)l + 1 > max_plus_1)
      max_plus_1 = (uint32_t)l + 1;
  }
  if (k == 0 && max_plus_1 > NNKIT_MAX_INFERRED_CLASSES) {
    size_t i = 0;
    while ((uint32_t)labels[i] + 1 != max_plus_1)
      i++;
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: sample %zu has label %d, which would make %u classes, "
                      "more than the %u nnkit infers (NNKIT_MAX_INFERRED_CLASSES); "
                      "fix the label or pass num_classes explicitly", fn, i,
                      (int)labels[i], max_plus_1, NNKIT_MAX_INFERRED_CLASSES);
  }
  if (k == 0)
    *num_classes = max_plus_1;
  return NNKIT_OK;
}

/* The labelled/unlabelled constructors: x is count * sample_size floats,
 * or bytes when `bytes` (kept compact); fn names the public function. */
static nnkit_status from_values(const char *fn, nnkit_dataset **out,
                                const void *x, int bytes,
                                const int32_t *labels, size_t count,
                                const size_t *shape, size_t ndim,
                                uint32_t num_classes)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL; pass the address "
                      "of a nnkit_dataset pointer", fn);
  *out = NULL;
  if (!x)
    return nnkit__err(NNKIT_E_INVALID, "%s: x is NULL; pass count * "
                      "sample_size %s", fn, bytes ? "bytes" : "floats");
  size_t per, total;
  nnkit_status st = check_geometry(fn, count, shape, ndim, &per, &total);
  if (st == NNKIT_OK && !bytes)
    st = check_finite(fn, "value", x, total, per);
  if (st == NNKIT_OK && labels)
    st = check_labels(fn, labels, count, &num_classes);
  if (st != NNKIT_OK)
    return st;
  nnkit_dataset *ds;
  st = dataset_alloc(&ds, count, shape, ndim, labels != NULL, 0, bytes);
  if (st != NNKIT_OK)
    return st;
  if (bytes)
    memcpy(ds->x8, x, total);
  else
    memcpy(ds->x, x, total * sizeof(float));
  if (labels) {
    memcpy(ds->labels, labels, count * sizeof *labels);
    ds->num_classes = num_classes;
  }
  *out = ds;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_dataset_from_buffers(nnkit_dataset **out,
                                                  const float *x,
                                                  const int32_t *labels,
                                                  size_t count,
                                                  const size_t *shape,
                                                  size_t ndim,
                                                  uint32_t num_classes)
{
  return from_values("nnkit_dataset_from_buffers", out, x, 0, labels, count,
                     shape, ndim, num_classes);
}

NNKIT_API nnkit_status nnkit_dataset_from_bytes(nnkit_dataset **out,
                                                const uint8_t *x,
                                                const int32_t *labels,
                                                size_t count,
                                                const size_t *shape,
                                                size_t ndim,
                                                uint32_t num_classes)
{
  return from_values("nnkit_dataset_from_bytes", out, x, 1, labels, count,
                     shape, ndim, num_classes);
}

NNKIT_API nnkit_status nnkit_dataset_from_targets(nnkit_dataset **out,
                                                  const float *x,
                                                  const float *targets,
                                                  size_t count,
                                                  const size_t *shape,
                                                  size_t ndim,
                                                  size_t target_dim)
{
  static const char fn[] = "nnkit_dataset_from_targets";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL; pass the address "
                      "of a nnkit_dataset pointer", fn);
  *out = NULL;
  if (!x || !targets)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL; pass count * %s "
                      "floats", fn, !x ? "x" : "targets",
                      !x ? "sample_size" : "target_dim");
  if (target_dim == 0)
    return nnkit__err(NNKIT_E_INVALID, "%s: target_dim is 0; each sample "
                      "needs at least one target value", fn);
  size_t per, total;
  nnkit_status st = check_geometry(fn, count, shape, ndim, &per, &total);
  if (st == NNKIT_OK)
    st = check_finite(fn, "value", x, total, per);
  /* The allocation checks count * target_dim for overflow first. */
  nnkit_dataset *ds = NULL;
  if (st == NNKIT_OK)
    st = nnkit__dataset_alloc(&ds, count, shape, ndim, 0, target_dim);
  if (st == NNKIT_OK)
    st = check_finite(fn, "target", targets, count * target_dim, target_dim);
  if (st != NNKIT_OK) {
    nnkit_dataset_free(ds);
    return st;
  }
  memcpy(ds->x, x, total * sizeof *x);
  memcpy(ds->targets, targets, count * target_dim * sizeof *targets);
  *out = ds;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_dataset_subset(nnkit_dataset **out,
                                            const nnkit_dataset *src,
                                            const size_t *indices,
                                            size_t count)
{
  static const char fn[] = "nnkit_dataset_subset";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL; pass the address "
                      "of a nnkit_dataset pointer", fn);
  *out = NULL;
  if (!src || !indices)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn,
                      !src ? "src" : "indices");
  if (count == 0)
    return nnkit__err(NNKIT_E_INVALID, "%s: count is 0; a subset needs at "
                      "least one index", fn);
  for (size_t i = 0; i < count; i++)
    if (indices[i] >= src->count)
      return nnkit__err(NNKIT_E_INVALID,
                        "%s: indices[%zu] = %zu is past the last sample (the "
                        "set has %zu, so indices run from 0 to %zu)", fn, i,
                        indices[i], src->count, src->count - 1);
  nnkit_dataset *ds;
  nnkit_status st = dataset_alloc(&ds, count, src->shape, src->ndim,
                                  src->labels != NULL, src->target_dim,
                                  src->x8 != NULL); /* compact stays compact */
  if (st != NNKIT_OK)
    return st;
  size_t per = src->sample_size, td = src->target_dim;
  if (src->x8)
    memcpy(ds->lut, src->lut, sizeof ds->lut);
  for (size_t i = 0; i < count; i++) {
    size_t k = indices[i];
    if (src->x8)
      memcpy(ds->x8 + i * per, src->x8 + k * per, per);
    else
      memcpy(ds->x + i * per, src->x + k * per, per * sizeof(float));
    if (src->labels)
      ds->labels[i] = src->labels[k];
    if (td)
      memcpy(ds->targets + i * td, src->targets + k * td, td * sizeof(float));
  }
  /* Keep the class count even if some classes are absent from the subset,
   * so a model's output width still matches. */
  ds->num_classes = src->num_classes;
  st = nnkit__dataset_copy_names(ds, src);
  if (st != NNKIT_OK) {
    nnkit_dataset_free(ds);
    return st;
  }
  *out = ds;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_dataset_scale(nnkit_dataset *ds, float scale,
                                           float shift)
{
  static const char fn[] = "nnkit_dataset_scale";
  if (!ds)
    return nnkit__err(NNKIT_E_INVALID, "%s: ds is NULL", fn);
  if (!isfinite(scale) || !isfinite(shift))
    return nnkit__err(NNKIT_E_INVALID, "%s: scale %g and shift %g must both "
                      "be finite", fn, (double)scale, (double)shift);
  size_t n = ds->count * ds->sample_size;
  /* Check first so a failing call leaves the data unchanged and the set
   * keeps its all-finite invariant. A compact set maps its 256 byte values
   * (the same expression, so both forms give the same floats); only bytes
   * that occur matter. */
  float lut[256];
  int any_bad = 0;
  if (ds->x8)
    for (int b = 0; b < 256; b++) {
      lut[b] = ds->lut[b] * scale + shift;
      any_bad |= !isfinite(lut[b]);
    }
  for (size_t i = 0; i < n && (!ds->x8 || any_bad); i++) {
    float old = nnkit__ds_at(ds, i), v = old * scale + shift;
    if (!isfinite(v))
      return nnkit__err(NNKIT_E_INVALID,
                        "%s: sample %zu, value %zu (%g) overflows float when "
                        "scaled by %g and shifted by %g; use a smaller scale",
                        fn, i / ds->sample_size, i % ds->sample_size,
                        (double)old, (double)scale, (double)shift);
  }
  if (ds->x8)
    memcpy(ds->lut, lut, sizeof lut);
  if (ds->x) /* the float form, or a compact set's float copy */
    for (size_t i = 0; i < n; i++)
      ds->x[i] = ds->x[i] * scale + shift;
  return NNKIT_OK;
}

NNKIT_API void nnkit_dataset_free(nnkit_dataset *ds)
{
  if (!ds)
    return;
  nnkit__free(ds->x);
  nnkit__free(ds->x8);
  nnkit__free(ds->labels);
  nnkit__free(ds->targets);
  nnkit__free(ds->class_names);
  nnkit__free(ds);
}

/* Getters cannot fail; a NULL dataset reads as empty rather than crashing. */

NNKIT_API size_t nnkit_dataset_count(const nnkit_dataset *ds)
{
  return ds ? ds->count : 0;
}

NNKIT_API size_t nnkit_dataset_ndim(const nnkit_dataset *ds)
{
  return ds ? ds->ndim : 0;
}

NNKIT_API size_t nnkit_dataset_dim(const nnkit_dataset *ds, size_t axis)
{
  return ds && axis < ds->ndim ? ds->shape[axis] : 0;
}

NNKIT_API size_t nnkit_dataset_sample_size(const nnkit_dataset *ds)
{
  return ds ? ds->sample_size : 0;
}

NNKIT_API uint32_t nnkit_dataset_num_classes(const nnkit_dataset *ds)
{
  return ds ? ds->num_classes : 0;
}

NNKIT_API size_t nnkit_dataset_target_dim(const nnkit_dataset *ds)
{
  return ds ? ds->target_dim : 0;
}

NNKIT_API const float *nnkit_dataset_data(const nnkit_dataset *ds)
{
  return ds ? nnkit__dataset_floats(ds, "nnkit_dataset_data") : NULL;
}

NNKIT_API const int32_t *nnkit_dataset_labels(const nnkit_dataset *ds)
{
  return ds ? ds->labels : NULL;
}

NNKIT_API const float *nnkit_dataset_targets(const nnkit_dataset *ds)
{
  return ds ? ds->targets : NULL;
}

NNKIT_API nnkit_status nnkit_dataset_class_counts(size_t *counts_out,
                                                  size_t len,
                                                  const nnkit_dataset *ds)
{
  static const char fn[] = "nnkit_dataset_class_counts";
  if (!ds || !counts_out)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn,
                      !ds ? "ds" : "counts_out");
  if (!ds->labels)
    return nnkit__err(NNKIT_E_INVALID, "%s: the dataset has no labels; class "
                      "counts exist only for labelled sets", fn);
  if (len < ds->num_classes)
    return nnkit__err(NNKIT_E_INVALID, "%s: counts_out holds %zu values but "
                      "the dataset has %u classes; pass a longer array", fn,
                      len, ds->num_classes);
  memset(counts_out, 0, ds->num_classes * sizeof *counts_out);
  for (size_t i = 0; i < ds->count; i++)
    counts_out[ds->labels[i]]++;
  return NNKIT_OK;
}
