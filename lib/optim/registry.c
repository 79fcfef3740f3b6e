/* The optimizer kinds: one line per kind. Everything else about a kind
 * lives in its own file (sgd.c, rmsprop.c, ...). */
#include "internal.h"

static const nnkit__optim_kind_desc *const kinds[] = {
  &nnkit__optim_sgd,  &nnkit__optim_rmsprop, &nnkit__optim_adagrad,
  &nnkit__optim_adam, &nnkit__optim_adamw,   &nnkit__optim_nadam,
};
#define NUM_KINDS (sizeof kinds / sizeof kinds[0])

const nnkit__optim_kind_desc *nnkit__optim_kind_of(nnkit_optim_kind kind)
{
  for (size_t i = 0; i < NUM_KINDS; i++)
    if (kinds[i]->kind == kind)
      return kinds[i];
  return NULL;
}

size_t nnkit__optim_num_kinds(void) { return NUM_KINDS; }

const nnkit__optim_kind_desc *nnkit__optim_kind_at(size_t i)
{
  return i < NUM_KINDS ? kinds[i] : NULL;
}
