/* Stratified hold-out and k-fold splits.
 *
 * Samples are grouped by class (one group for unlabelled and regression
 * sets); each group is shuffled with its own stream of the seeded
 * counter-based generator (stream SPLIT_STREAM + class id), so a split is a
 * pure function of the labels and the seed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SPLIT_STREAM (UINT64_C(0x5B17) << 32)

/* Samples grouped by class: the indices of group g are
 * idx[start[g] .. start[g + 1]), in increasing order. */
typedef struct groups {
  size_t num;    /* groups */
  size_t *start; /* num + 1 */
  size_t *idx;   /* count */
} groups;

static void groups_free(groups *g)
{
  nnkit__free(g->start);
  nnkit__free(g->idx);
}

static nnkit_status make_groups(groups *g, const nnkit_dataset *ds,
                                const char *fn)
{
  size_t n = ds->count;
  g->num = ds->labels ? ds->num_classes : 1;
  g->start = nnkit__calloc(g->num + 1, sizeof *g->start);
  g->idx = nnkit__malloc(n * sizeof *g->idx);
  if (!g->start || !g->idx) {
    groups_free(g);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu indices", fn,
                      n);
  }
  if (!ds->labels) {
    g->start[1] = n;
    for (size_t i = 0; i < n; i++)
      g->idx[i] = i;
    return NNKIT_OK;
  }
  for (size_t i = 0; i < n; i++)
    g->start[ds->labels[i] + 1]++;
  for (size_t c = 0; c < g->num; c++)
    g->start[c + 1] += g->start[c];
  /* Counting sort, stable: start[c] is used as a cursor and restored. */
  for (size_t i = 0; i < n; i++)
    g->idx[g->start[ds->labels[i]]++] = i;
  for (size_t c = g->num; c > 0; c--)
    g->start[c] = g->start[c - 1];
  g->start[0] = 0;
  return NNKIT_OK;
}

static void shuffle_group(groups *g, size_t c, uint64_t seed)
{
  nnkit__rng r;
  nnkit__rng_init(&r, seed, SPLIT_STREAM + c);
  nnkit__rng_shuffle(&r, g->idx + g->start[c], g->start[c + 1] - g->start[c]);
}

static nnkit_status check_common(const char *fn, const void *out, size_t len,
                                 const nnkit_dataset *ds)
{
  if (!out || !ds)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn,
                      !ds ? "ds" : "the output array");
  if (len < ds->count)
    return nnkit__err(NNKIT_E_INVALID, "%s: the output array holds %zu "
                      "values but the set has %zu samples; pass one value "
                      "per sample", fn, len, ds->count);
  return NNKIT_OK;
}

typedef struct quota {
  double rem;
  size_t cls;
} quota;

static int cmp_quota(const void *a, const void *b)
{
  const quota *x = a, *y = b;
  if (x->rem != y->rem)
    return x->rem > y->rem ? -1 : 1;
  return x->cls < y->cls ? -1 : x->cls > y->cls;
}

NNKIT_API nnkit_status nnkit_split_holdout(uint32_t *assign_out, size_t len,
                                           const nnkit_dataset *ds,
                                           double fraction, uint64_t seed)
{
  static const char fn[] = "nnkit_split_holdout";
  nnkit_status st = check_common(fn, assign_out, len, ds);
  if (st != NNKIT_OK)
    return st;
  size_t n = ds->count;
  if (!(fraction > 0 && fraction < 1))
    return nnkit__err(NNKIT_E_INVALID, "%s: fraction %g must lie in (0, 1), "
                      "e.g. 0.2 to hold out a fifth", fn, fraction);
  double want = floor(fraction * (double)n + 0.5);
  size_t held = (size_t)want;
  if (held == 0 || held >= n)
    return nnkit__err(NNKIT_E_INVALID, "%s: holding out %g of %zu samples "
                      "leaves %s part empty; use a fraction between %g and %g",
                      fn, fraction, n, held == 0 ? "the held-out" : "the "
                      "training", 0.5 / (double)n, 1 - 0.5 / (double)n);
  groups g;
  st = make_groups(&g, ds, fn);
  if (st != NNKIT_OK)
    return st;
  /* Quotas per class by largest remainders. */
  size_t *take = nnkit__calloc(g.num, sizeof *take);
  quota *q = nnkit__malloc(g.num * sizeof *q);
  if (!take || !q) {
    nnkit__free(take);
    nnkit__free(q);
    groups_free(&g);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  }
  size_t given = 0;
  for (size_t c = 0; c < g.num; c++) {
    size_t nc = g.start[c + 1] - g.start[c];
    double exact = (double)held * (double)nc / (double)n;
    take[c] = (size_t)floor(exact);
    if (take[c] > nc)
      take[c] = nc;
    q[c].rem = exact - (double)take[c];
    q[c].cls = c;
    given += take[c];
  }
  qsort(q, g.num, sizeof *q, cmp_quota);
  for (size_t i = 0; given < held && i < g.num; i++) {
    size_t c = q[i].cls;
    if (take[c] < g.start[c + 1] - g.start[c]) {
      take[c]++;
      given++;
    }
  }
  for (size_t i = 0; i < n; i++)
    assign_out[i] = 0;
  for (size_t c = 0; c < g.num; c++) {
    shuffle_group(&g, c, seed);
    for (size_t j = 0; j < take[c]; j++)
      assign_out[g.idx[g.start[c] + j]] = 1;
  }
  nnkit__free(take);
  nnkit__free(q);
  groups_free(&g);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_split_kfold(uint32_t *fold_out, size_t len,
                                         const nnkit_dataset *ds, size_t k,
                                         uint64_t seed)
{
  static const char fn[] = "nnkit_split_kfold";
  nnkit_status st = check_common(fn, fold_out, len, ds);
  if (st != NNKIT_OK)
    return st;
  if (k < 2 || k > UINT32_MAX)
    return nnkit__err(NNKIT_E_INVALID, "%s: k = %zu folds; use at least 2 "
                      "(5 or 10 are usual)", fn, k);
  if (k > ds->count)
    return nnkit__err(NNKIT_E_INVALID, "%s: k = %zu folds but the set has "
                      "only %zu samples; use k <= %zu", fn, k, ds->count,
                      ds->count);
  groups g;
  st = make_groups(&g, ds, fn);
  if (st != NNKIT_OK)
    return st;
  if (ds->labels) {
    size_t smallest = SIZE_MAX, which = 0;
    for (size_t c = 0; c < g.num; c++) {
      size_t nc = g.start[c + 1] - g.start[c];
      if (nc > 0 && nc < smallest) {
        smallest = nc;
        which = c;
      }
    }
    if (k > smallest) {
      const char *name = nnkit_dataset_class_name(ds, (uint32_t)which);
      groups_free(&g);
      return nnkit__err(NNKIT_E_INVALID, "%s: k = %zu folds but class %zu%s%s%s "
                        "has only %zu samples, so some fold would miss it; "
                        "use k <= %zu or gather more samples of that class",
                        fn, k, which, name ? " ('" : "", name ? name : "",
                        name ? "')" : "", smallest, smallest);
    }
  }
  size_t offset = 0;
  for (size_t c = 0; c < g.num; c++) {
    size_t nc = g.start[c + 1] - g.start[c];
    shuffle_group(&g, c, seed);
    /* Deal round-robin, continuing where the previous class stopped, so
     * fold sizes differ by at most one overall as well as per class. */
    for (size_t j = 0; j < nc; j++)
      fold_out[g.idx[g.start[c] + j]] = (uint32_t)((offset + j) % k);
    offset = (offset + nc) % k;
  }
  groups_free(&g);
  return NNKIT_OK;
}

/* Builds the two subsets where part[i] == sel (into a) or != sel (into b). */
static nnkit_status two_subsets(nnkit_dataset **a, nnkit_dataset **b,
                                const nnkit_dataset *ds, const uint32_t *part,
                                uint32_t sel, const char *fn)
{
  size_t n = ds->count, na = 0;
  for (size_t i = 0; i < n; i++)
    na += part[i] == sel;
  size_t *ia = nnkit__malloc((na ? na : 1) * sizeof *ia);
  size_t *ib = nnkit__malloc((n - na ? n - na : 1) * sizeof *ib);
  nnkit_status st = NNKIT_OK;
  if (!ia || !ib) {
    st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  } else {
    size_t ka = 0, kb = 0;
    for (size_t i = 0; i < n; i++) {
      if (part[i] == sel)
        ia[ka++] = i;
      else
        ib[kb++] = i;
    }
    st = nnkit_dataset_subset(a, ds, ia, na);
    if (st == NNKIT_OK)
      st = nnkit_dataset_subset(b, ds, ib, n - na);
    if (st != NNKIT_OK) {
      nnkit_dataset_free(*a);
      *a = NULL;
    }
  }
  nnkit__free(ia);
  nnkit__free(ib);
  return st;
}

NNKIT_API nnkit_status nnkit_dataset_split(nnkit_dataset **train_out,
                                           nnkit_dataset **held_out,
                                           const nnkit_dataset *ds,
                                           double fraction, uint64_t seed)
{
  static const char fn[] = "nnkit_dataset_split";
  if (!train_out || !held_out)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL; pass the address of "
                      "a nnkit_dataset pointer", fn,
                      !train_out ? "train_out" : "held_out");
  *train_out = *held_out = NULL;
  if (!ds)
    return nnkit__err(NNKIT_E_INVALID, "%s: ds is NULL", fn);
  uint32_t *assign = nnkit__malloc(ds->count * sizeof *assign);
  if (!assign)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  nnkit_status st = nnkit_split_holdout(assign, ds->count, ds, fraction, seed);
  if (st == NNKIT_OK)
    st = two_subsets(train_out, held_out, ds, assign, 0, fn);
  nnkit__free(assign);
  return st;
}

NNKIT_API nnkit_status nnkit_dataset_fold(nnkit_dataset **train_out,
                                          nnkit_dataset **val_out,
                                          const nnkit_dataset *ds, size_t k,
                                          size_t fold, uint64_t seed)
{
  static const char fn[] = "nnkit_dataset_fold";
  if (!train_out || !val_out)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL; pass the address of "
                      "a nnkit_dataset pointer", fn,
                      !train_out ? "train_out" : "val_out");
  *train_out = *val_out = NULL;
  if (!ds)
    return nnkit__err(NNKIT_E_INVALID, "%s: ds is NULL", fn);
  if (fold >= k)
    return nnkit__err(NNKIT_E_INVALID, "%s: fold %zu does not exist with k = "
                      "%zu folds (they are 0 to %zu)", fn, fold, k,
                      k ? k - 1 : 0);
  uint32_t *folds = nnkit__malloc(ds->count * sizeof *folds);
  if (!folds)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  nnkit_status st = nnkit_split_kfold(folds, ds->count, ds, k, seed);
  if (st == NNKIT_OK) {
    /* fold's samples go to val (selected), the rest to train. */
    st = two_subsets(val_out, train_out, ds, folds, (uint32_t)fold, fn);
  }
  nnkit__free(folds);
  return st;
}
