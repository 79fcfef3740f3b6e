/* What a net carries besides its layers so that raw input gives the right
 * answer: the input normalizer it owns (applied by predict, predict_proba
 * and evaluate before the first layer) and its class names. Model files
 * save and load both (lib/io/model_file.c). */
#include <stdio.h>
#include <string.h>

#include "internal.h"

size_t nnkit__net_raw_input_size(const nnkit_net *net)
{
  return net->nz ? nnkit_normalizer_in_size(net->nz) : nnkit_net_input_size(net);
}

const float *nnkit__net_preprocess(nnkit_net *net, const float *x, size_t n)
{
  if (!net->nz)
    return x;
  nnkit__normalizer_transform(net->nz, x, net->nz_buf, n, net->nz_scratch);
  return net->nz_buf;
}

static void drop_normalizer(nnkit_net *net)
{
  nnkit_normalizer_free(net->nz);
  nnkit__free(net->nz_buf);
  nnkit__free(net->nz_scratch);
  net->nz = NULL;
  net->nz_buf = net->nz_scratch = NULL;
}

void nnkit__net_free_preprocess(nnkit_net *net)
{
  drop_normalizer(net);
  nnkit__free(net->class_names);
  net->class_names = NULL;
  net->num_names = 0;
}

NNKIT_API nnkit_status nnkit_net_set_normalizer(nnkit_net *net,
                                                const nnkit_normalizer *nz)
{
  static const char fn[] = "nnkit_net_set_normalizer";
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "%s: net is NULL", fn);
  if (!nz) {
    drop_normalizer(net);
    return NNKIT_OK;
  }
  if (!nnkit_normalizer_is_fitted(nz))
    return nnkit__err(NNKIT_E_STATE, "%s: the normalizer is not fitted; fit it on "
                      "the training set before attaching it", fn);
  size_t in = nnkit_normalizer_in_size(nz), out = nnkit_normalizer_out_size(nz);
  if (out != nnkit_net_input_size(net))
    return nnkit__err(NNKIT_E_SHAPE, "%s: the normalizer gives %zu values per sample "
                      "but the net takes %zu; attach the normalizer the net was "
                      "trained with", fn, out, nnkit_net_input_size(net));
  int ovf = 0;
  size_t wide = in > out ? in : out;
  size_t nbuf = nnkit__mul_size(nnkit__mul_size(NNKIT__NORM_CHUNK, wide, &ovf),
                                sizeof(float), &ovf);
  size_t nscr = nnkit__mul_size(nnkit__normalizer_scratch_len(nz), sizeof(float),
                                &ovf);
  nnkit_normalizer *c = NULL;
  float *buf = NULL, *scr = NULL;
  nnkit_status st = ovf ? NNKIT_E_NOMEM : nnkit__normalizer_clone(&c, nz);
  if (st == NNKIT_OK) {
    buf = nnkit__malloc(nbuf);
    scr = nscr ? nnkit__malloc(nscr) : NULL;
    if (!buf || (nscr && !scr))
      st = NNKIT_E_NOMEM;
  }
  if (st != NNKIT_OK) {
    nnkit_normalizer_free(c);
    nnkit__free(buf);
    nnkit__free(scr);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for a normalizer of %zu "
                      "inputs", fn, in);
  }
  drop_normalizer(net);
  net->nz = c;
  net->nz_buf = buf;
  net->nz_scratch = scr;
  return NNKIT_OK;
}

NNKIT_API const nnkit_normalizer *nnkit_net_normalizer(const nnkit_net *net)
{
  return net ? net->nz : NULL;
}

NNKIT_API nnkit_status nnkit_net_set_class_names(nnkit_net *net,
                                                 const char *const *names, size_t n)
{
  static const char fn[] = "nnkit_net_set_class_names";
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "%s: net is NULL", fn);
  if (n == 0) {
    nnkit__free(net->class_names);
    net->class_names = NULL;
    net->num_names = 0;
    return NNKIT_OK;
  }
  if (!names)
    return nnkit__err(NNKIT_E_INVALID, "%s: names is NULL but n is %zu", fn, n);
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE, "%s: the net has no layers; add them first "
                      "(one name per output)", fn);
  size_t outw = nnkit_net_output_size(net);
  if (n != outw)
    return nnkit__err(NNKIT_E_SHAPE, "%s: %zu class names for %zu outputs; give "
                      "one name per output", fn, n, outw);
  for (size_t i = 0; i < n; i++)
    if (!names[i])
      return nnkit__err(NNKIT_E_INVALID, "%s: name %zu is NULL", fn, i);
  char **block = nnkit__names_block(names, n);
  if (!block)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu class names", fn, n);
  nnkit__free(net->class_names);
  net->class_names = block;
  net->num_names = n;
  return NNKIT_OK;
}

NNKIT_API const char *nnkit_net_class_name(const nnkit_net *net, size_t i)
{
  if (!net || !net->class_names || i >= net->num_names)
    return NULL;
  return net->class_names[i];
}
