/* Datasets built from caller buffers, subsets, scaling and accessors. */
#include <math.h>
#include <string.h>

#include "internal.h"

nnkit_status nnkit__dataset_alloc(nnkit_dataset **out, size_t count,
                                  const size_t *shape, size_t ndim,
                                  int labelled, size_t target_dim)
{
  *out = NULL;
  if (count == 0)
    return nnkit__err(NNKIT_E_INVALID, "a dataset needs at least one sample (count is 0)");
  if (!shape || ndim < 1 || ndim > NNKIT_MAX_SAMPLE_DIMS)
    return nnkit__err(NNKIT_E_INVALID,
                      "a sample needs 1 to %d dimensions (got %zu)",
                      NNKIT_MAX_SAMPLE_DIMS, ndim);
  int ovf = 0;
  size_t per = 1;
  for (size_t i = 0; i < ndim; i++) {
    if (shape[i] == 0)
      return nnkit__err(NNKIT_E_INVALID,
                        "sample dimension %zu is 0; every dimension must be positive", i);
    per = nnkit__mul_size(per, shape[i], &ovf);
  }
  size_t total = nnkit__mul_size(per, count, &ovf);
  size_t bytes = nnkit__mul_size(total, sizeof(float), &ovf);
  size_t tbytes = nnkit__mul_size(nnkit__mul_size(count, target_dim, &ovf),
                                  sizeof(float), &ovf);
  if (ovf)
    return nnkit__err(NNKIT_E_INVALID,
                      "%zu samples of %zu values do not fit in memory (size overflow)",
                      count, per);
  nnkit_dataset *ds = nnkit__calloc(1, sizeof *ds);
  if (!ds)
    return nnkit__err(NNKIT_E_NOMEM, "dataset: out of memory");
  ds->count = count;
  ds->ndim = ndim;
  for (size_t i = 0; i < ndim; i++)
    ds->shape[i] = shape[i];
  ds->sample_size = per;
  ds->target_dim = target_dim;
  ds->x = nnkit__malloc(bytes);
  if (labelled)
    ds->labels = nnkit__malloc(count * sizeof(int32_t));
  if (target_dim)
    ds->targets = nnkit__malloc(tbytes);
  if (!ds->x || (labelled && !ds->labels) || (target_dim && !ds->targets)) {
    nnkit_dataset_free(ds);
    return nnkit__err(NNKIT_E_NOMEM,
                      "dataset: out of memory for %zu samples of %zu values", count, per);
  }
  *out = ds;
  return NNKIT_OK;
}

/* First non-finite value of x, or SIZE_MAX. */
static size_t first_non_finite(const float *x, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]))
      return i;
  return SIZE_MAX;
}

static nnkit_status check_labels(const int32_t *labels, size_t count,
                                 uint32_t *num_classes, const char *what)
{
  if (*num_classes == 0) {
    int32_t max = -1;
    for (size_t i = 0; i < count; i++) {
      if (labels[i] < 0)
        return nnkit__err(NNKIT_E_INVALID,
                          "%s: sample %zu has negative label %d; labels are class ids "
                          ">= 0", what, i, (int)labels[i]);
      if (labels[i] > max)
        max = labels[i];
    }
    *num_classes = (uint32_t)max + 1;
    return NNKIT_OK;
  }
  for (size_t i = 0; i < count; i++)
    if (labels[i] < 0 || (uint32_t)labels[i] >= *num_classes)
      return nnkit__err(NNKIT_E_INVALID,
                        "%s: sample %zu has label %d outside [0, %u); fix the label or "
                        "raise the class count", what, i, (int)labels[i], *num_classes);
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
  static const char fn[] = "nnkit_dataset_from_buffers";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL", fn);
  *out = NULL;
  if (!x)
    return nnkit__err(NNKIT_E_INVALID, "%s: x is NULL", fn);
  nnkit_dataset *ds;
  nnkit_status st = nnkit__dataset_alloc(&ds, count, shape, ndim, labels != NULL, 0);
  if (st != NNKIT_OK)
    return st;
  size_t n = count * ds->sample_size;
  size_t bad = first_non_finite(x, n);
  if (bad != SIZE_MAX) {
    nnkit_dataset_free(ds);
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: sample %zu, value %zu is %s; clean or impute the data first",
                      fn, bad / ds->sample_size, bad % ds->sample_size,
                      isnan(x[bad]) ? "NaN" : "infinite");
  }
  if (labels) {
    st = check_labels(labels, count, &num_classes, fn);
    if (st != NNKIT_OK) {
      nnkit_dataset_free(ds);
      return st;
    }
    memcpy(ds->labels, labels, count * sizeof *labels);
    ds->num_classes = num_classes;
  }
  memcpy(ds->x, x, n * sizeof *x);
  *out = ds;
  return NNKIT_OK;
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
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL", fn);
  *out = NULL;
  if (!x || !targets)
    return nnkit__err(NNKIT_E_INVALID, "%s: x and targets must be non-NULL", fn);
  if (target_dim == 0)
    return nnkit__err(NNKIT_E_INVALID, "%s: target_dim is 0; each sample needs at least "
                      "one target value", fn);
  nnkit_dataset *ds;
  nnkit_status st = nnkit__dataset_alloc(&ds, count, shape, ndim, 0, target_dim);
  if (st != NNKIT_OK)
    return st;
  size_t n = count * ds->sample_size, nt = count * target_dim;
  size_t bad = first_non_finite(x, n);
  size_t badt = first_non_finite(targets, nt);
  if (bad != SIZE_MAX || badt != SIZE_MAX) {
    nnkit_dataset_free(ds);
    if (bad != SIZE_MAX)
      return nnkit__err(NNKIT_E_INVALID, "%s: sample %zu, value %zu is not finite", fn,
                        bad / ds->sample_size, bad % ds->sample_size);
    return nnkit__err(NNKIT_E_INVALID, "%s: sample %zu, target %zu is not finite", fn,
                      badt / target_dim, badt % target_dim);
  }
  memcpy(ds->x, x, n * sizeof *x);
  memcpy(ds->targets, targets, nt * sizeof *targets);
  *out = ds;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_dataset_subset(nnkit_dataset **out,
                                            const nnkit_dataset *src,
                                            const size_t *indices, size_t count)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_dataset_subset: out is NULL");
  *out = NULL;
  if (!src || !indices)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_dataset_subset: src and indices must be "
                      "non-NULL");
  for (size_t i = 0; i < count; i++)
    if (indices[i] >= src->count)
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_dataset_subset: indices[%zu] = %zu is past the last "
                        "sample (the set has %zu)", i, indices[i], src->count);
  nnkit_dataset *ds;
  nnkit_status st = nnkit__dataset_alloc(&ds, count, src->shape, src->ndim,
                                         src->labels != NULL, src->target_dim);
  if (st != NNKIT_OK)
    return st;
  size_t per = src->sample_size, td = src->target_dim;
  for (size_t i = 0; i < count; i++) {
    size_t k = indices[i];
    memcpy(ds->x + i * per, src->x + k * per, per * sizeof(float));
    if (src->labels)
      ds->labels[i] = src->labels[k];
    if (td)
      memcpy(ds->targets + i * td, src->targets + k * td, td * sizeof(float));
  }
  ds->num_classes = src->num_classes;
  *out = ds;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_dataset_scale(nnkit_dataset *ds, float scale,
                                           float shift)
{
  if (!ds)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_dataset_scale: ds is NULL");
  if (!isfinite(scale) || !isfinite(shift))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_dataset_scale: scale %g and shift %g must be finite",
                      (double)scale, (double)shift);
  size_t n = ds->count * ds->sample_size;
  for (size_t i = 0; i < n; i++)
    ds->x[i] = ds->x[i] * scale + shift;
  return NNKIT_OK;
}

NNKIT_API void nnkit_dataset_free(nnkit_dataset *ds)
{
  if (!ds)
    return;
  nnkit__free(ds->x);
  nnkit__free(ds->labels);
  nnkit__free(ds->targets);
  nnkit__free(ds);
}

NNKIT_API size_t nnkit_dataset_count(const nnkit_dataset *ds) { return ds->count; }
NNKIT_API size_t nnkit_dataset_ndim(const nnkit_dataset *ds) { return ds->ndim; }

NNKIT_API size_t nnkit_dataset_dim(const nnkit_dataset *ds, size_t axis)
{
  return axis < ds->ndim ? ds->shape[axis] : 0;
}

NNKIT_API size_t nnkit_dataset_sample_size(const nnkit_dataset *ds)
{
  return ds->sample_size;
}

NNKIT_API uint32_t nnkit_dataset_num_classes(const nnkit_dataset *ds)
{
  return ds->num_classes;
}

NNKIT_API size_t nnkit_dataset_target_dim(const nnkit_dataset *ds)
{
  return ds->target_dim;
}

NNKIT_API const float *nnkit_dataset_data(const nnkit_dataset *ds) { return ds->x; }

NNKIT_API const int32_t *nnkit_dataset_labels(const nnkit_dataset *ds)
{
  return ds->labels;
}

NNKIT_API const float *nnkit_dataset_targets(const nnkit_dataset *ds)
{
  return ds->targets;
}

NNKIT_API nnkit_status nnkit_dataset_class_counts(size_t *counts_out, size_t len,
                                                  const nnkit_dataset *ds)
{
  if (!ds || !counts_out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_dataset_class_counts: NULL argument");
  if (!ds->labels)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_dataset_class_counts: the dataset has no labels");
  if (len < ds->num_classes)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_dataset_class_counts: counts_out holds %zu values, the "
                      "dataset has %u classes", len, ds->num_classes);
  memset(counts_out, 0, ds->num_classes * sizeof *counts_out);
  for (size_t i = 0; i < ds->count; i++)
    counts_out[ds->labels[i]]++;
  return NNKIT_OK;
}
