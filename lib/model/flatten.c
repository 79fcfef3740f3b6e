/* Flatten: any sample shape -> [prod(shape)], values unchanged (NCHW order
 * is already the flattened order, so forward and backward are copies). */
#include <stdio.h>
#include <string.h>

#include "internal.h"

extern const nnkit__layer_kind nnkit__flatten_kind; /* below */

static nnkit_status flatten_setup(nnkit__layer *l)
{
  l->out.ndim = 1;
  l->out.d[0] = nnkit__shape_size(&l->in);
  l->num_params = 0;
  return NNKIT_OK;
}

static void flatten_forward(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  memcpy(y, x, batch * l->out.d[0] * sizeof *y);
}

static void flatten_backward(nnkit__layer *l, const float *x, const float *y,
                             const float *dy, float *dx, size_t batch)
{
  (void)x;
  (void)y;
  if (dx)
    memcpy(dx, dy, batch * l->out.d[0] * sizeof *dx);
}

static void flatten_describe(const nnkit__layer *l, char *buf, size_t len)
{
  char ins[64];
  nnkit__shape_text(&l->in, ins, sizeof ins);
  snprintf(buf, len, "flatten %s -> %zu", ins, l->out.d[0]);
}


NNKIT_API nnkit_status nnkit_net_add_flatten(nnkit_net *net)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_add_flatten: net is NULL");
  nnkit__layer l = {0};
  l.ops = &nnkit__flatten_kind;
  return nnkit__net_add_layer(net, &l);
}

/* Model files: no arguments, no tensors. */
static nnkit_status flatten_add(nnkit_net *net, const double *v)
{
  (void)v;
  return nnkit_net_add_flatten(net);
}

/* ---- the descriptor ---- */

const nnkit__layer_kind nnkit__flatten_kind = {
  .name = "flatten",
  .add = flatten_add,
  .setup = flatten_setup,
  .fans = NULL,
  .forward = flatten_forward,
  .backward = flatten_backward,
  .init = NULL,
  .describe = flatten_describe,
  .destroy = NULL,
  .reserve = NULL,
  .slice_ok = 1,
  .backward_ignores_y = 1,
};

