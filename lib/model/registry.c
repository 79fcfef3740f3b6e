/* The layer kinds a model file can name: one line per kind in `kinds`.
 *
 * Each kind's nnkit__layer_io (add-call arguments and tensors) lives next
 * to its ops, except dense and conv2d: their files are being reworked on
 * another branch, so their descriptions are here for now and read only the
 * generic layer fields and nnkit__layer_geom(). */
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

/* ---- dense: weight [units, in] (PyTorch's layout, as stored), bias ------ */

static const char *const dense_args[] = {"units", NULL};

static void dense_get_args(const nnkit__layer *l, double *v)
{
  v[0] = (double)l->units;
}

static nnkit_status dense_add(nnkit_net *net, const double *v)
{
  return nnkit_net_add_dense(net, nnkit__arg_size(v[0]));
}

static size_t dense_tensors(nnkit__layer *l, nnkit__tensor *t)
{
  size_t in = nnkit__shape_size(&l->in);
  t[0] = (nnkit__tensor){"weight", l->params, 2, {l->units, in}};
  t[1] = (nnkit__tensor){"bias", l->params + l->units * in, 1, {l->units}};
  return 2;
}

const nnkit__layer_io nnkit__dense_io = {
  &nnkit__dense_ops, dense_args, 0, dense_get_args, dense_add, dense_tensors,
};

/* ---- conv2d: weight [oc, c, kh, kw], bias [oc] when it has one ---------- */

static const char *const conv_args[] = {"out_channels", "kernel_h", "kernel_w",
                                        "stride_h", "stride_w", "pad_h", "pad_w",
                                        "bias", NULL};

/* The padding argument that gives `out` outputs with `before` zeros first:
 * `before` itself when a symmetric padding does, otherwise "same" (-1),
 * the only request that pads asymmetrically. A net built with
 * NNKIT_PAD_SAME whose padding came out symmetric is thus saved with the
 * equivalent explicit padding (same output, same values). */
static double pad_arg(size_t n, size_t k, size_t s, size_t before, size_t out)
{
  if (n + 2 * before >= k && (n + 2 * before - k) / s + 1 == out)
    return (double)before;
  return -1.0;
}

static void conv_get_args(const nnkit__layer *l, double *v)
{
  const nnkit__conv_geom *g = nnkit__layer_geom(l);
  size_t oc = l->out.d[0];
  v[0] = (double)oc;
  v[1] = (double)g->kh;
  v[2] = (double)g->kw;
  v[3] = (double)g->sh;
  v[4] = (double)g->sw;
  v[5] = pad_arg(g->h, g->kh, g->sh, g->pt, g->oh);
  v[6] = pad_arg(g->w, g->kw, g->sw, g->pl, g->ow);
  v[7] = l->num_params > oc * g->c * g->kh * g->kw;
}

static nnkit_status conv_add(nnkit_net *net, const double *v)
{
  return nnkit_net_add_conv2d(net, nnkit__arg_size(v[0]), nnkit__arg_size(v[1]),
                              nnkit__arg_size(v[2]), nnkit__arg_size(v[3]),
                              nnkit__arg_size(v[4]), nnkit__arg_size(v[5]),
                              nnkit__arg_size(v[6]), v[7] != 0);
}

static size_t conv_tensors(nnkit__layer *l, nnkit__tensor *t)
{
  const nnkit__conv_geom *g = nnkit__layer_geom(l);
  size_t oc = l->out.d[0], nw = oc * g->c * g->kh * g->kw;
  t[0] = (nnkit__tensor){"weight", l->params, 4, {oc, g->c, g->kh, g->kw}};
  if (l->num_params == nw)
    return 1;
  t[1] = (nnkit__tensor){"bias", l->params + nw, 1, {oc}};
  return 2;
}

const nnkit__layer_io nnkit__conv2d_io = {
  &nnkit__conv2d_ops, conv_args, 0, conv_get_args, conv_add, conv_tensors,
};
