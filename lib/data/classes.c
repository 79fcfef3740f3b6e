/* Class names of a dataset and concatenation of datasets.
 *
 * The names live in one allocation: num_classes pointers followed by the
 * NUL-terminated strings they point to, so copying, replacing and freeing
 * them is one nnkit__malloc / nnkit__free each. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

char **nnkit__names_block(const char *const *names, size_t n)
{
  size_t bytes = 0;
  int ovf = 0;
  size_t head = nnkit__mul_size(n, sizeof(char *), &ovf);
  if (ovf)
    return NULL;
  bytes = head;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(names[i]) + 1;
    if (len > SIZE_MAX - bytes)
      return NULL;
    bytes += len;
  }
  char **block = nnkit__malloc(bytes);
  if (!block)
    return NULL;
  char *p = (char *)block + head;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(names[i]) + 1;
    memcpy(p, names[i], len);
    block[i] = p;
    p += len;
  }
  return block;
}

nnkit_status nnkit__dataset_set_names(nnkit_dataset *ds,
                                      const char *const *names, size_t n)
{
  char **block = nnkit__names_block(names, n);
  if (!block)
    return nnkit__err(NNKIT_E_NOMEM, "dataset: out of memory for %zu class "
                      "names", n);
  nnkit__free(ds->class_names);
  ds->class_names = block;
  return NNKIT_OK;
}

nnkit_status nnkit__dataset_copy_names(nnkit_dataset *dst,
                                       const nnkit_dataset *src)
{
  if (!src->class_names)
    return NNKIT_OK;
  return nnkit__dataset_set_names(dst, (const char *const *)src->class_names,
                                  src->num_classes);
}

NNKIT_API const char *nnkit_dataset_class_name(const nnkit_dataset *ds,
                                               uint32_t id)
{
  if (!ds || !ds->class_names || id >= ds->num_classes)
    return NULL;
  return ds->class_names[id];
}

/* Writes "a, b, c" (truncated with "...") into buf, for messages. */
static void list_names(char *buf, size_t len, const nnkit_dataset *ds)
{
  size_t used = 0;
  buf[0] = '\0';
  for (uint32_t i = 0; i < ds->num_classes; i++) {
    int n = snprintf(buf + used, len - used, "%s'%s'", i ? ", " : "",
                     ds->class_names[i]);
    if (n < 0 || (size_t)n >= len - used) {
      if (len > 4)
        memcpy(buf + len - 4, "...", 4);
      return;
    }
    used += (size_t)n;
  }
}

NNKIT_API nnkit_status nnkit_dataset_class_id(int32_t *out,
                                              const nnkit_dataset *ds,
                                              const char *name)
{
  static const char fn[] = "nnkit_dataset_class_id";
  if (!out || !ds || !name)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn,
                      !out ? "out" : !ds ? "ds" : "name");
  if (!ds->class_names)
    return nnkit__err(NNKIT_E_INVALID, "%s: the dataset has no class names; "
                      "name them with nnkit_dataset_set_class_names()", fn);
  for (uint32_t i = 0; i < ds->num_classes; i++)
    if (strcmp(ds->class_names[i], name) == 0) {
      *out = (int32_t)i;
      return NNKIT_OK;
    }
  char list[512];
  list_names(list, sizeof list, ds);
  return nnkit__err(NNKIT_E_INVALID, "%s: no class is named '%s'; the "
                    "classes are %s", fn, name, list);
}

NNKIT_API nnkit_status nnkit_dataset_set_class_names(nnkit_dataset *ds,
                                                     const char *const *names,
                                                     size_t count)
{
  static const char fn[] = "nnkit_dataset_set_class_names";
  if (!ds || !names)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn,
                      !ds ? "ds" : "names");
  if (!ds->labels)
    return nnkit__err(NNKIT_E_INVALID, "%s: the dataset has no labels, so "
                      "it has no classes to name", fn);
  if (count != ds->num_classes)
    return nnkit__err(NNKIT_E_INVALID, "%s: %zu names for %u classes; pass "
                      "exactly one name per class", fn, count,
                      ds->num_classes);
  for (size_t i = 0; i < count; i++) {
    if (!names[i])
      return nnkit__err(NNKIT_E_INVALID, "%s: names[%zu] is NULL", fn, i);
    for (size_t j = 0; j < i; j++)
      if (strcmp(names[i], names[j]) == 0)
        return nnkit__err(NNKIT_E_INVALID, "%s: names[%zu] and names[%zu] "
                          "are both '%s'; class names must be distinct", fn,
                          j, i, names[i]);
  }
  return nnkit__dataset_set_names(ds, names, count);
}

/* Writes a shape as "1x28x28". */
static void shape_text(char *buf, size_t len, const size_t *d, size_t n)
{
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && used < len; i++) {
    int k = snprintf(buf + used, len - used, i ? "x%zu" : "%zu", d[i]);
    if (k < 0)
      break;
    used += (size_t)k;
  }
}

/* Checks that part p matches parts[0] for concatenation. */
static nnkit_status check_part(const char *fn, const nnkit_dataset *first,
                               const nnkit_dataset *part, size_t p)
{
  if (!part)
    return nnkit__err(NNKIT_E_INVALID, "%s: parts[%zu] is NULL", fn, p);
  int same_shape = part->ndim == first->ndim;
  for (size_t i = 0; same_shape && i < first->ndim; i++)
    same_shape = part->shape[i] == first->shape[i];
  if (!same_shape) {
    char ta[80], tb[80];
    shape_text(ta, sizeof ta, first->shape, first->ndim);
    shape_text(tb, sizeof tb, part->shape, part->ndim);
    return nnkit__err(NNKIT_E_INVALID, "%s: parts[%zu] has samples of shape "
                      "%s but parts[0] has %s; only sets of one shape can be "
                      "joined", fn, p, tb, ta);
  }
  if ((part->labels != NULL) != (first->labels != NULL) ||
      part->target_dim != first->target_dim)
    return nnkit__err(NNKIT_E_INVALID, "%s: parts[%zu] is %s but parts[0] "
                      "is %s; join sets of one kind", fn, p,
                      part->labels ? "labelled" : part->target_dim ?
                      "a regression set" : "unlabelled",
                      first->labels ? "labelled" : first->target_dim ?
                      "a regression set" : "unlabelled");
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_dataset_concat(nnkit_dataset **out,
                                            const nnkit_dataset *const *parts,
                                            size_t num_parts)
{
  static const char fn[] = "nnkit_dataset_concat";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL; pass the address "
                      "of a nnkit_dataset pointer", fn);
  *out = NULL;
  if (!parts || num_parts == 0)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s; pass at least one dataset",
                      fn, !parts ? "parts is NULL" : "num_parts is 0");
  const nnkit_dataset *first = parts[0];
  if (!first)
    return nnkit__err(NNKIT_E_INVALID, "%s: parts[0] is NULL", fn);
  size_t total = 0;
  uint32_t classes = 0;
  const nnkit_dataset *named = NULL; /* the named part with most classes */
  for (size_t p = 0; p < num_parts; p++) {
    nnkit_status st = check_part(fn, first, parts[p], p);
    if (st != NNKIT_OK)
      return st;
    const nnkit_dataset *d = parts[p];
    if (d->count > SIZE_MAX - total)
      return nnkit__err(NNKIT_E_INVALID, "%s: the parts hold more samples "
                        "than fit in memory", fn);
    total += d->count;
    if (d->num_classes > classes)
      classes = d->num_classes;
    if (d->class_names) {
      if (named) {
        uint32_t k = named->num_classes < d->num_classes ? named->num_classes
                                                          : d->num_classes;
        for (uint32_t i = 0; i < k; i++)
          if (strcmp(named->class_names[i], d->class_names[i]) != 0)
            return nnkit__err(NNKIT_E_INVALID, "%s: class %u is '%s' in one "
                              "part but '%s' in parts[%zu]; load the parts "
                              "with the same classes (or rename them with "
                              "nnkit_dataset_set_class_names())", fn, i,
                              named->class_names[i], d->class_names[i], p);
      }
      if (!named || d->num_classes > named->num_classes)
        named = d;
    }
  }
  /* Parts that are all bytes with one table stay bytes; else floats. */
  int bytes = 1;
  for (size_t p = 0; p < num_parts && bytes; p++)
    bytes = parts[p]->x8 && !memcmp(parts[p]->lut, first->lut, sizeof first->lut);
  nnkit_dataset *ds;
  nnkit_status st =
      bytes ? nnkit__dataset_alloc_bytes(&ds, total, first->shape, first->ndim,
                                         first->labels != NULL)
            : nnkit__dataset_alloc(&ds, total, first->shape, first->ndim,
                                   first->labels != NULL, first->target_dim);
  if (st != NNKIT_OK)
    return st;
  size_t at = 0, per = first->sample_size, td = first->target_dim;
  if (bytes)
    memcpy(ds->lut, first->lut, sizeof ds->lut);
  for (size_t p = 0; p < num_parts; p++) {
    const nnkit_dataset *d = parts[p];
    if (bytes)
      memcpy(ds->x8 + at * per, d->x8, d->count * per);
    else
      nnkit__dataset_rows(d, 0, d->count, ds->x + at * per);
    if (d->labels)
      memcpy(ds->labels + at, d->labels, d->count * sizeof(int32_t));
    if (td)
      memcpy(ds->targets + at * td, d->targets, d->count * td * sizeof(float));
    at += d->count;
  }
  ds->num_classes = first->labels ? classes : 0;
  /* Names cover every class only when the most-classes part is named. */
  if (named && named->num_classes == classes) {
    st = nnkit__dataset_copy_names(ds, named);
    if (st != NNKIT_OK) {
      nnkit_dataset_free(ds);
      return st;
    }
  }
  *out = ds;
  return NNKIT_OK;
}
