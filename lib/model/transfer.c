/* Transfer learning on a net: cutting it after a layer (so a new head can
 * be appended) and reading out a layer's activations for a batch or a
 * whole dataset ("CNN codes" to train a small classifier on). The
 * container and its parameter arena are net.c; running the net is exec.c,
 * which the feature calls go through (nnkit_net_forward), so features are
 * exactly a forward pass's activations. */
#include <math.h>
#include <string.h>

#include "internal.h"

/* Samples per forward in the feature calls (as predict and evaluate). */
#define FEATURE_CHUNK 256

NNKIT_API nnkit_status nnkit_net_cut(nnkit_net *net, size_t keep)
{
  static const char fn[] = "nnkit_net_cut";
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "%s: net is NULL", fn);
  if (keep == 0 || keep > net->num_layers)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: keep %zu is outside [1, %zu]; a net of %zu layers keeps "
                      "at least its first layer and at most all of them",
                      fn, keep, net->num_layers, net->num_layers);
  if (keep == net->num_layers)
    return NNKIT_OK;
  /* The working memory is per layer list (and its loop runs over the
   * layers being removed): drop it first; it is rebuilt at the next use. */
  nnkit__net_free_work(net);
  for (size_t i = keep; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    if (l->ops->destroy)
      l->ops->destroy(l);
    nnkit_init_free(l->w_init);
    nnkit_init_free(l->b_init);
  }
  /* Layers are laid out in order in the arena, so the kept ones are its
   * prefix [0, the first removed layer's offset). */
  size_t n = net->layers[keep].param_offset;
  net->num_layers = keep;
  net->num_params = n;
  if (n == 0) {
    nnkit__free(net->params);
    nnkit__free(net->grads);
    net->params = net->grads = NULL;
  } else if (net->params && net->built) {
    /* Shrinking keeps the prefix; should the allocator refuse, the larger
     * blocks stay in use (still valid, freed with the net). An unbuilt
     * net's arena is resized by its next nnkit__net_build. */
    float *p = nnkit__realloc(net->params, n * sizeof *p);
    if (p)
      net->params = p;
    float *g = nnkit__realloc(net->grads, n * sizeof *g);
    if (g)
      net->grads = g;
  }
  for (size_t i = 0; i < keep; i++) {
    nnkit__layer *l = &net->layers[i];
    if (l->params) { /* built: re-point into the (possibly moved) arena */
      l->params = net->params + l->param_offset;
      l->grads = net->grads + l->param_offset;
    }
  }
  return NNKIT_OK;
}

/* Checks shared by the feature calls; *width_out gets the floats of one
 * sample of layer `layer`'s output. */
static nnkit_status check_layer(size_t *width_out, const nnkit_net *net,
                                size_t layer, const char *fn)
{
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE, "%s: the net has no layers; add some first", fn);
  if (layer >= net->num_layers)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: layer %zu does not exist (the net has %zu layers, "
                      "0 to %zu)", fn, layer, net->num_layers, net->num_layers - 1);
  *width_out = nnkit__shape_size(&net->layers[layer].out);
  return NNKIT_OK;
}

/* Layer `layer`'s outputs for count samples of x (count * input floats,
 * or decoded from ds's bytes into scratch when x is NULL) into out, in
 * evaluation mode, in chunks; the mode is restored. Non-finite outputs
 * are NNKIT_E_DIVERGED. */
static nnkit_status run_features(float *out, nnkit_net *net, size_t layer,
                                 const float *x, const nnkit_dataset *ds,
                                 float *scratch, size_t count, const char *fn)
{
  size_t in = nnkit_net_input_size(net);
  size_t w = nnkit__shape_size(&net->layers[layer].out);
  int mode = net->training;
  net->training = 0;
  nnkit_status st = NNKIT_OK;
  for (size_t s = 0; s < count && st == NNKIT_OK; s += FEATURE_CHUNK) {
    size_t n = count - s < FEATURE_CHUNK ? count - s : FEATURE_CHUNK;
    const float *cx = x ? x + s * in : nnkit__dataset_block(ds, s, n, scratch);
    st = nnkit_net_forward(net, cx, n, NULL, 0);
    if (st != NNKIT_OK)
      break;
    const float *a = net->acts[layer];
    for (size_t i = 0; i < n * w; i++)
      if (!isfinite(a[i])) {
        st = nnkit__err(NNKIT_E_DIVERGED,
                        "%s: layer %zu's output %zu of sample %zu is %g; the net's "
                        "parameters or the input are not usable (reload or retrain "
                        "the net)", fn, layer, i % w, s + i / w, (double)a[i]);
        break;
      }
    if (st == NNKIT_OK)
      memcpy(out + s * w, a, n * w * sizeof(float));
  }
  net->training = mode;
  return st;
}

NNKIT_API nnkit_status nnkit_net_features_batch(float *out, size_t len,
                                                nnkit_net *net, size_t layer,
                                                const float *x, size_t batch)
{
  static const char fn[] = "nnkit_net_features_batch";
  if (!out || !net || !x || batch == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: out, net and x must be non-NULL and batch > 0", fn);
  size_t w = 0;
  nnkit_status st = check_layer(&w, net, layer, fn);
  if (st != NNKIT_OK)
    return st;
  if (len / w < batch)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: out holds %zu floats, %zu samples x %zu values of layer "
                      "%zu are needed", fn, len, batch, w, layer);
  return run_features(out, net, layer, x, NULL, NULL, batch, fn);
}

NNKIT_API nnkit_status nnkit_net_features(nnkit_dataset **out, nnkit_net *net,
                                          size_t layer, const nnkit_dataset *ds)
{
  static const char fn[] = "nnkit_net_features";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL; pass the address of a "
                      "nnkit_dataset pointer", fn);
  *out = NULL;
  if (!net || !ds)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn, !net ? "net" : "ds");
  size_t w = 0;
  nnkit_status st = check_layer(&w, net, layer, fn);
  if (st != NNKIT_OK)
    return st;
  size_t in = nnkit_net_input_size(net);
  if (ds->sample_size != in)
    return nnkit__err(NNKIT_E_SHAPE,
                      "%s: dataset samples have %zu values, the net takes %zu", fn,
                      ds->sample_size, in);
  const nnkit__shape *shape = &net->layers[layer].out;
  nnkit_dataset *f = NULL;
  st = nnkit__dataset_alloc(&f, ds->count, shape->d, shape->ndim,
                            ds->labels != NULL, ds->target_dim);
  if (st != NNKIT_OK)
    return st;
  f->num_classes = ds->num_classes;
  if (ds->labels)
    memcpy(f->labels, ds->labels, ds->count * sizeof *f->labels);
  if (ds->target_dim)
    memcpy(f->targets, ds->targets, ds->count * ds->target_dim * sizeof *f->targets);
  st = nnkit__dataset_copy_names(f, ds);
  /* A compact (byte) set is decoded one chunk at a time. */
  float *scratch = NULL;
  if (st == NNKIT_OK && ds->x8) {
    size_t m = ds->count < FEATURE_CHUNK ? ds->count : FEATURE_CHUNK;
    scratch = nnkit__malloc(m * in * sizeof *scratch);
    if (!scratch)
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu samples of %zu "
                      "values", fn, m, in);
  }
  if (st == NNKIT_OK)
    st = run_features(f->x, net, layer, ds->x8 ? NULL : ds->x, ds, scratch,
                      ds->count, fn);
  nnkit__free(scratch);
  if (st != NNKIT_OK) {
    nnkit_dataset_free(f);
    return st;
  }
  *out = f;
  return NNKIT_OK;
}
