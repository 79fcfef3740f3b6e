/* Fine-tuning controls: a per-layer trainable flag and learning-rate
 * multiplier. They only mark layers; the optimizer reads the marks when it
 * walks the net (lib/optim/optimizer.c). */
#include <math.h>

#include "internal.h"

static nnkit_status check_layer(const nnkit_net *net, size_t layer, const char *fn)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "%s: net is NULL", fn);
  if (layer >= net->num_layers)
    return nnkit__err(NNKIT_E_INVALID, "%s: layer %zu does not exist (the net has %zu)",
                      fn, layer, net->num_layers);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_set_trainable(nnkit_net *net, size_t layer,
                                               int trainable)
{
  nnkit_status st = check_layer(net, layer, "nnkit_net_set_trainable");
  if (st == NNKIT_OK)
    net->layers[layer].frozen = trainable == 0;
  return st;
}

NNKIT_API int nnkit_net_is_trainable(const nnkit_net *net, size_t layer)
{
  if (!net || layer >= net->num_layers)
    return 0;
  return !net->layers[layer].frozen;
}

NNKIT_API nnkit_status nnkit_net_set_lr_multiplier(nnkit_net *net, size_t layer,
                                                   double mult)
{
  nnkit_status st = check_layer(net, layer, "nnkit_net_set_lr_multiplier");
  if (st != NNKIT_OK)
    return st;
  if (!(mult >= 0 && mult <= 1e6))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_set_lr_multiplier: layer %zu: multiplier %g is outside "
                      "its range [0, 1e+06]", layer, mult);
  net->layers[layer].lr_mult = (float)mult;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_get_lr_multiplier(double *out, const nnkit_net *net,
                                                   size_t layer)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_get_lr_multiplier: out is NULL");
  nnkit_status st = check_layer(net, layer, "nnkit_net_get_lr_multiplier");
  if (st == NNKIT_OK)
    *out = (double)net->layers[layer].lr_mult;
  return st;
}
