/* Hard-sample mining: per-sample losses of a labelled set, uncertainty
 * scores of an unlabelled pool, the k hardest as indices or as a dataset,
 * and the batch mask of online hard example mining (NNKIT_TRAIN_OHEM_K,
 * applied by the fit loop in trainer.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train_internal.h"

/* Samples of a pool scored per predict_proba call. */
#define CHUNK NNKIT__NORM_CHUNK

NNKIT_API nnkit_status nnkit_net_sample_losses(double *losses_out, size_t len,
                                               nnkit_net *net, const nnkit_dataset *ds)
{
  if (!losses_out || !net || !ds)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_sample_losses: losses_out, net and "
                      "ds must be non-NULL");
  if (len < ds->count)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_sample_losses: losses_out holds %zu "
                      "values, the dataset has %zu samples", len, ds->count);
  return nnkit__net_evaluate_each(NULL, NULL, net, ds, losses_out);
}

NNKIT_API nnkit_status nnkit_mining_uncertainty(double *scores_out, size_t len,
                                                const float *probs, size_t count,
                                                size_t classes, nnkit_uncertainty kind)
{
  if (!scores_out || !probs || count == 0 || classes == 0)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_mining_uncertainty: buffers must be "
                      "non-NULL, count and classes > 0");
  if (len < count)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_mining_uncertainty: scores_out holds %zu "
                      "values, %zu are needed", len, count);
  if (kind < NNKIT_UNCERTAINTY_MAX_PROB || kind > NNKIT_UNCERTAINTY_ENTROPY)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_mining_uncertainty: unknown kind %d; use "
                      "an NNKIT_UNCERTAINTY_* value", (int)kind);
  if (kind == NNKIT_UNCERTAINTY_MARGIN && classes < 2)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_mining_uncertainty: the margin needs at "
                      "least 2 classes, the rows have 1");
  for (size_t i = 0; i < count; i++) {
    const float *p = probs + i * classes;
    double top = -INFINITY, second = -INFINITY, h = 0;
    for (size_t j = 0; j < classes; j++) {
      double v = p[j];
      if (v > top) {
        second = top;
        top = v;
      } else if (v > second) {
        second = v;
      }
      if (v > 0)
        h -= v * log(v);
    }
    scores_out[i] = kind == NNKIT_UNCERTAINTY_MAX_PROB ? 1.0 - top
                    : kind == NNKIT_UNCERTAINTY_MARGIN ? 1.0 - (top - second)
                                                       : h;
  }
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_uncertainty(double *scores_out, size_t len,
                                             nnkit_net *net, const float *x,
                                             size_t count, nnkit_uncertainty kind)
{
  if (!scores_out || !net || !x || count == 0)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_uncertainty: buffers must be "
                      "non-NULL and count > 0");
  if (len < count)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_uncertainty: scores_out holds %zu "
                      "values, %zu are needed", len, count);
  size_t outw = nnkit_net_output_size(net), in = nnkit__net_raw_input_size(net);
  if (outw == 0)
    return nnkit__err(NNKIT_E_STATE, "nnkit_net_uncertainty: the net has no layers; "
                      "add some first");
  float *p = nnkit__malloc(CHUNK * outw * sizeof *p);
  if (!p)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_uncertainty: out of memory");
  nnkit_status st = NNKIT_OK;
  for (size_t s = 0; s < count && st == NNKIT_OK; s += CHUNK) {
    size_t n = count - s < CHUNK ? count - s : CHUNK;
    st = nnkit_net_predict_proba(p, n * outw, net, x + s * in, n);
    if (st == NNKIT_OK)
      st = nnkit_mining_uncertainty(scores_out + s, n, p, n, outw, kind);
  }
  nnkit__free(p);
  return st;
}

/* Largest score first (NaN above everything), then the lower index. */
static int by_score(const void *a, const void *b)
{
  const nnkit__scored *x = a, *y = b;
  int xn = isnan(x->score), yn = isnan(y->score);
  if (xn != yn)
    return xn ? -1 : 1;
  if (!xn && x->score != y->score)
    return x->score > y->score ? -1 : 1;
  return x->index < y->index ? -1 : (x->index > y->index);
}

void nnkit__rank_scores(nnkit__scored *pairs, const double *scores, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    pairs[i].score = scores[i];
    pairs[i].index = i;
  }
  qsort(pairs, n, sizeof *pairs, by_score);
}

NNKIT_API nnkit_status nnkit_mining_top_k(size_t *idx_out, size_t k, const double *scores,
                                          size_t n)
{
  if (!idx_out || !scores)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_mining_top_k: idx_out and scores must be "
                      "non-NULL");
  if (k == 0 || k > n)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_mining_top_k: k %zu is outside [1, %zu] "
                      "(the number of scores)", k, n);
  int over = 0;
  size_t bytes = nnkit__mul_size(n, sizeof(nnkit__scored), &over);
  nnkit__scored *pairs = over ? NULL : nnkit__malloc(bytes);
  if (!pairs)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_mining_top_k: out of memory for %zu "
                      "scores", n);
  nnkit__rank_scores(pairs, scores, n);
  for (size_t i = 0; i < k; i++)
    idx_out[i] = pairs[i].index;
  nnkit__free(pairs);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_mining_subset(nnkit_dataset **out, const nnkit_dataset *ds,
                                           const double *scores, size_t k)
{
  if (!out || !ds || !scores)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_mining_subset: out, ds and scores must "
                      "be non-NULL");
  *out = NULL;
  if (k == 0 || k > ds->count)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_mining_subset: k %zu is outside [1, %zu] "
                      "(the dataset's count)", k, ds->count);
  size_t *idx = nnkit__malloc(k * sizeof *idx);
  if (!idx)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_mining_subset: out of memory");
  nnkit_status st = nnkit_mining_top_k(idx, k, scores, ds->count);
  if (st == NNKIT_OK)
    st = nnkit_dataset_subset(out, ds, idx, k);
  nnkit__free(idx);
  return st;
}

nnkit_status nnkit__ohem_fit_begin(nnkit_trainer *tr, size_t batch)
{
  if (!tr->ohem_k || batch <= tr->ohem_cap)
    return NNKIT_OK;
  double *each = nnkit__realloc(tr->ohem_each, batch * sizeof *each);
  if (each)
    tr->ohem_each = each;
  nnkit__scored *pairs = each ? nnkit__realloc(tr->ohem_pairs, batch * sizeof *pairs)
                              : NULL;
  if (!pairs)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for hard "
                      "example mining over batches of %zu", batch);
  tr->ohem_pairs = pairs;
  tr->ohem_cap = batch;
  return NNKIT_OK;
}

void nnkit__ohem_free(nnkit_trainer *tr)
{
  nnkit__free(tr->ohem_each);
  nnkit__free(tr->ohem_pairs);
  tr->ohem_each = NULL;
  tr->ohem_pairs = NULL;
  tr->ohem_cap = 0;
}

void nnkit__ohem_mask(float *grad, size_t batch, size_t outw, const double *each,
                      size_t k, nnkit__scored *pairs)
{
  nnkit__rank_scores(pairs, each, batch);
  float scale = (float)batch / (float)k;
  for (size_t r = 0; r < batch; r++) {
    float *g = grad + pairs[r].index * outw;
    if (r < k)
      for (size_t j = 0; j < outw; j++)
        g[j] *= scale;
    else
      memset(g, 0, outw * sizeof *g);
  }
}
