/* The layer kinds a model file can name: one line per kind in `kinds`.
 *
 * Each kind's descriptor (ops, options, tensors) lives in its own file;
 * adding a kind is that file plus its line here. */
#include <string.h>

#include "internal.h"

extern const nnkit__layer_kind nnkit__dense_kind;           /* dense.c */
extern const nnkit__layer_kind nnkit__conv2d_kind;          /* conv2d.c */
extern const nnkit__layer_kind nnkit__activation_kind;      /* activation.c */
extern const nnkit__layer_kind nnkit__maxpool2d_kind;       /* pool.c */
extern const nnkit__layer_kind nnkit__avgpool2d_kind;       /* pool.c */
extern const nnkit__layer_kind nnkit__global_avgpool_kind;  /* pool.c */
extern const nnkit__layer_kind nnkit__flatten_kind;         /* flatten.c */
extern const nnkit__layer_kind nnkit__batchnorm_kind;       /* batchnorm.c */
extern const nnkit__layer_kind nnkit__dropout_kind;         /* dropout.c */
extern const nnkit__layer_kind nnkit__spatial_dropout_kind; /* dropout.c */
extern const nnkit__layer_kind nnkit__layernorm_kind;       /* layernorm.c */

static const nnkit__layer_kind *const kinds[] = {
  &nnkit__dense_kind,
  &nnkit__conv2d_kind,
  &nnkit__activation_kind,
  &nnkit__maxpool2d_kind,
  &nnkit__avgpool2d_kind,
  &nnkit__global_avgpool_kind,
  &nnkit__flatten_kind,
  &nnkit__batchnorm_kind,
  &nnkit__dropout_kind,
  &nnkit__spatial_dropout_kind,
  &nnkit__layernorm_kind,
};

#define NKINDS (sizeof kinds / sizeof kinds[0])

const nnkit__layer_kind *nnkit__layer_kind_named(const char *name)
{
  for (size_t i = 0; i < NKINDS; i++)
    if (strcmp(kinds[i]->name, name) == 0)
      return kinds[i];
  return NULL;
}

const nnkit__layer_kind *nnkit__layer_kind_at(size_t i, size_t *n)
{
  *n = NKINDS;
  return i < NKINDS ? kinds[i] : NULL;
}

const nnkit__spec *nnkit__layer_opt(const nnkit__layer *l, int key)
{
  return nnkit__spec_find(l->ops->opts, l->ops->num_opts, 0, key);
}
