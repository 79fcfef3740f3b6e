/* The layer kinds a model file can name: one line per kind in `kinds`.
 *
 * Each kind's nnkit__layer_io (add-call arguments and tensors) lives next
 * to its ops. */
#include <string.h>

#include "internal.h"

static const nnkit__layer_io *const kinds[] = {
  &nnkit__dense_io,
  &nnkit__conv2d_io,
  &nnkit__activation_io,
  &nnkit__maxpool2d_io,
  &nnkit__avgpool2d_io,
  &nnkit__global_avgpool_io,
  &nnkit__flatten_io,
  &nnkit__batchnorm_io,
  &nnkit__dropout_io,
  &nnkit__spatial_dropout_io,
};

const nnkit__layer_io *nnkit__layer_io_of(const nnkit__layer_ops *ops)
{
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (kinds[i]->ops == ops)
      return kinds[i];
  return NULL;
}

const nnkit__layer_io *nnkit__layer_io_named(const char *name)
{
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (strcmp(kinds[i]->ops->name, name) == 0)
      return kinds[i];
  return NULL;
}
