/* Per-layer statistics of one batch: activation mean and spread,
 * saturation of tanh/sigmoid, dead ReLU units, gradient, parameter and
 * update norms; activation histograms for the initialization study. */
#include <math.h>
#include <string.h>

#include "train_internal.h"

static int is_act(const nnkit__layer *l, nnkit_activation a)
{
  return nnkit__layer_activation(l, NULL) == (int)a;
}

/* Units of a layer's output for the dead-ReLU count: channels of a
 * feature map, features otherwise; *per_unit values are contiguous per
 * unit within a sample. */
static size_t units_of(const nnkit__layer *l, size_t *per_unit)
{
  if (l->out.ndim == 3) {
    *per_unit = l->out.d[1] * l->out.d[2];
    return l->out.d[0];
  }
  *per_unit = 1;
  return nnkit__shape_size(&l->out);
}

size_t nnkit__layer_stats_scratch(const nnkit_net *net)
{
  size_t m = 1, pu;
  for (size_t i = 0; i < net->num_layers; i++) {
    size_t u = units_of(&net->layers[i], &pu);
    if (u > m)
      m = u;
  }
  return m;
}

static double norm2(const float *v, size_t n)
{
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += (double)v[i] * v[i];
  return sqrt(s);
}

void nnkit__layer_stats_row(double *row, nnkit_net *net, int with_grads,
                            unsigned char *alive)
{
  size_t batch = net->last_batch;
  for (size_t li = 0; li < net->num_layers; li++) {
    const nnkit__layer *l = &net->layers[li];
    double *r = row + li * NNKIT__NSTATS;
    for (size_t k = 0; k < NNKIT__NSTATS; k++)
      r[k] = NAN;
    size_t per = nnkit__shape_size(&l->out), n = batch * per;
    const float *y = net->acts[li];
    if (n && !l->out_stale) { /* (stale: see nnkit__net_forward_fit) */
      double sum = 0;
      for (size_t i = 0; i < n; i++)
        sum += y[i];
      double mean = sum / (double)n, sq = 0;
      for (size_t i = 0; i < n; i++) {
        double d = y[i] - mean;
        sq += d * d;
      }
      r[NNKIT_LSTAT_ACT_MEAN - 1] = mean;
      r[NNKIT_LSTAT_ACT_STD - 1] = sqrt(sq / (double)n);
      if (is_act(l, NNKIT_ACT_TANH) || is_act(l, NNKIT_ACT_SIGMOID)) {
        int tanh_ = is_act(l, NNKIT_ACT_TANH);
        size_t sat = 0;
        for (size_t i = 0; i < n; i++)
          sat += tanh_ ? fabsf(y[i]) > 0.99f : (y[i] < 0.01f || y[i] > 0.99f);
        r[NNKIT_LSTAT_SATURATED - 1] = (double)sat / (double)n;
      }
      if (is_act(l, NNKIT_ACT_RELU)) {
        size_t pu, units = units_of(l, &pu);
        memset(alive, 0, units);
        for (size_t s = 0; s < batch; s++) {
          const float *ys = y + s * per;
          for (size_t u = 0; u < units; u++) {
            if (alive[u])
              continue;
            for (size_t k = 0; k < pu; k++)
              if (ys[u * pu + k] > 0) {
                alive[u] = 1;
                break;
              }
          }
        }
        size_t dead = 0;
        for (size_t u = 0; u < units; u++)
          dead += !alive[u];
        r[NNKIT_LSTAT_DEAD - 1] = (double)dead / (double)units;
      }
    }
    if (l->num_params && l->params) {
      r[NNKIT_LSTAT_PARAM_NORM - 1] = norm2(l->params, l->num_params);
      if (with_grads)
        r[NNKIT_LSTAT_GRAD_NORM - 1] = norm2(l->grads, l->num_params);
    }
  }
}

void nnkit__layer_update_ratios(double *row, const nnkit_net *net,
                                const float *pre)
{
  for (size_t li = 0; li < net->num_layers; li++) {
    const nnkit__layer *l = &net->layers[li];
    if (!l->num_params || !l->params)
      continue;
    const float *p0 = pre + l->param_offset;
    double d = 0, w = 0;
    for (size_t i = 0; i < l->num_params; i++) {
      double diff = (double)l->params[i] - p0[i];
      d += diff * diff;
      w += (double)p0[i] * p0[i];
    }
    row[li * NNKIT__NSTATS + NNKIT_LSTAT_UPDATE_RATIO - 1] =
        w > 0 ? sqrt(d) / sqrt(w) : (d > 0 ? INFINITY : 0.0);
  }
}

NNKIT_API nnkit_status nnkit_net_layer_stats(double *out, size_t len,
                                             const nnkit_layer_stat *stats,
                                             size_t num_stats, nnkit_net *net,
                                             const float *x,
                                             const int32_t *labels,
                                             const float *targets,
                                             size_t batch)
{
  if (!out || !stats || !net || !x || num_stats == 0 || batch == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_layer_stats: buffers must be non-NULL, num_stats and "
                      "batch > 0");
  for (size_t j = 0; j < num_stats; j++)
    if (stats[j] < NNKIT_LSTAT_ACT_MEAN || stats[j] > NNKIT_LSTAT_PARAM_NORM)
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_net_layer_stats: unknown statistic %d; use an "
                        "NNKIT_LSTAT_* value", (int)stats[j]);
  size_t L = net->num_layers;
  if (L == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_net_layer_stats: the net has no layers; add some first");
  if (len / num_stats < L)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_layer_stats: out holds %zu values, %zu layers x %zu "
                      "statistics are needed", len, L, num_stats);
  nnkit_status st = nnkit_net_forward(net, x, batch, NULL, 0);
  if (st != NNKIT_OK)
    return st;
  int grads = labels || targets;
  if (grads) {
    st = nnkit_net_backward(net, labels, targets, NULL);
    if (st != NNKIT_OK)
      return st;
  }
  double *row = nnkit__malloc(L * NNKIT__NSTATS * sizeof *row);
  unsigned char *alive = nnkit__malloc(nnkit__layer_stats_scratch(net));
  if (!row || !alive) {
    nnkit__free(row);
    nnkit__free(alive);
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_layer_stats: out of memory");
  }
  nnkit__layer_stats_row(row, net, grads, alive);
  for (size_t l = 0; l < L; l++)
    for (size_t j = 0; j < num_stats; j++)
      out[l * num_stats + j] = row[l * NNKIT__NSTATS + (size_t)stats[j] - 1];
  nnkit__free(row);
  nnkit__free(alive);
  return NNKIT_OK;
}

static nnkit_status check_hist(size_t bins, double lo, double hi,
                               const nnkit_net *net, const char *fn)
{
  if (!net || bins == 0 || !(lo < hi) || !isfinite(lo) || !isfinite(hi))
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: need a net, bins > 0 and finite lo < hi (got %zu bins, "
                      "[%g, %g])", fn, bins, lo, hi);
  if (net->last_batch == 0 || !net->acts)
    return nnkit__err(NNKIT_E_STATE,
                      "%s: no forward batch yet; run nnkit_net_forward first", fn);
  return NNKIT_OK;
}

/* A layer whose output the ReLU after it overwrote in place (a training
 * batch that stopped mid-epoch) has no histogram until the next forward. */
static nnkit_status check_fresh(const nnkit_net *net, size_t layer, const char *fn)
{
  if (net->layers[layer].out_stale)
    return nnkit__err(NNKIT_E_STATE,
                      "%s: layer %zu's outputs of the last batch were overwritten by "
                      "the ReLU after it during training; run nnkit_net_forward on "
                      "the samples to inspect them", fn, layer);
  return NNKIT_OK;
}

static void histogram(uint64_t *counts, size_t bins, double lo, double hi,
                      const nnkit_net *net, size_t layer)
{
  memset(counts, 0, bins * sizeof *counts);
  const nnkit__layer *l = &net->layers[layer];
  size_t n = net->last_batch * nnkit__shape_size(&l->out);
  const float *y = net->acts[layer];
  double scale = (double)bins / (hi - lo);
  for (size_t i = 0; i < n; i++) {
    double v = y[i];
    if (isnan(v))
      continue;
    double b = (v - lo) * scale;
    size_t k = b < 0 ? 0 : (b >= (double)bins ? bins - 1 : (size_t)b);
    counts[k]++;
  }
}

NNKIT_API nnkit_status nnkit_net_activation_histogram(uint64_t *counts_out,
                                                      size_t bins, double lo,
                                                      double hi,
                                                      const nnkit_net *net,
                                                      size_t layer)
{
  if (!counts_out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_activation_histogram: counts_out is NULL");
  nnkit_status st = check_hist(bins, lo, hi, net, "nnkit_net_activation_histogram");
  if (st != NNKIT_OK)
    return st;
  if (layer >= net->num_layers)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_activation_histogram: layer %zu does not exist (the "
                      "net has %zu)", layer, net->num_layers);
  st = check_fresh(net, layer, "nnkit_net_activation_histogram");
  if (st != NNKIT_OK)
    return st;
  histogram(counts_out, bins, lo, hi, net, layer);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_save_histograms_csv(const nnkit_net *net,
                                                     const char *path,
                                                     size_t bins, double lo,
                                                     double hi)
{
  if (!path)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_save_histograms_csv: path is NULL");
  nnkit_status st = check_hist(bins, lo, hi, net, "nnkit_net_save_histograms_csv");
  if (st != NNKIT_OK)
    return st;
  if (bins > 100000)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_save_histograms_csv: %zu bins is above 100000", bins);
  for (size_t l = 0; l < net->num_layers; l++) {
    st = check_fresh(net, l, "nnkit_net_save_histograms_csv");
    if (st != NNKIT_OK)
      return st;
  }
  uint64_t *counts = nnkit__malloc(bins * sizeof *counts);
  if (!counts)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_save_histograms_csv: out of memory");
  nnkit__tfile t;
  st = nnkit__tfile_open(&t, path);
  if (st != NNKIT_OK) {
    nnkit__free(counts);
    return st;
  }
  fputs("layer,kind,bin_lo,bin_hi,count\n", t.f);
  double w = (hi - lo) / (double)bins;
  for (size_t l = 0; l < net->num_layers; l++) {
    histogram(counts, bins, lo, hi, net, l);
    const char *kind = nnkit__layer_kind_name(&net->layers[l]);
    for (size_t b = 0; b < bins; b++)
      fprintf(t.f, "%zu,%s,%.9g,%.9g,%llu\n", l + 1, kind, lo + (double)b * w,
              b + 1 == bins ? hi : lo + (double)(b + 1) * w,
              (unsigned long long)counts[b]);
  }
  nnkit__free(counts);
  return nnkit__tfile_commit(&t, 1);
}
