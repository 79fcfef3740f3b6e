/* Normalizers: mean image, per-channel mean (and std), standardization,
 * PCA, PCA whitening and ZCA whitening.
 *
 * Fitting accumulates means and variances in double. The PCA kinds build
 * the covariance C = Xc^T Xc / (m - 1) in double with BLAS (dsyrk over
 * chunks of centred rows) and decompose it with LAPACK's dsyevd (through
 * LAPACKE's _work interface with nnkit-allocated workspace, column-major so
 * LAPACKE copies nothing). Everything a fitted normalizer applies is one
 * of two forms, which is also what it exports for saving:
 *   elementwise:  y = (x - mean) * scale     (per feature, or per channel)
 *   projection:   y = (x - mean) * P         (P: in_size x out_size)
 * A fitted normalizer is only read by transforms (callers pass scratch), so
 * several threads may share it. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "internal.h"

/* Largest feature count the PCA kinds accept: the covariance of 16384
 * features is 2 GiB of doubles. */
#define PCA_MAX_FEATURES 16384
#define TWO_POW_53 9007199254740992.0

struct nnkit_normalizer {
  nnkit_norm_kind kind;
  /* settings */
  int with_std;
  size_t components;
  double variance;
  double eps;
  uint64_t fit_samples;
  uint64_t seed;
  /* fitted state */
  int fitted;
  size_t ndim, shape[NNKIT_MAX_SAMPLE_DIMS];
  size_t in_size, out_size;
  size_t channels, plane; /* CHANNEL_MEAN: channels x plane = in_size */
  size_t fit_count;
  size_t stat_len;   /* length of mean, scale and std: in_size or channels */
  size_t k;          /* PCA kinds: components kept */
  float *mean;       /* stat_len */
  float *scale;      /* stat_len, or NULL */
  float *proj;       /* in_size x out_size, or NULL */
  float *variances;  /* k, or NULL */
  float *std;        /* stat_len population stds at fit time, or NULL */
};

static int is_pca(nnkit_norm_kind k)
{
  return k == NNKIT_NORM_PCA || k == NNKIT_NORM_PCA_WHITEN ||
         k == NNKIT_NORM_ZCA_WHITEN;
}

static int valid_kind(nnkit_norm_kind k)
{
  return k >= NNKIT_NORM_MEAN_IMAGE && k <= NNKIT_NORM_ZCA_WHITEN;
}

static const char *kind_name(nnkit_norm_kind k)
{
  switch (k) {
  case NNKIT_NORM_MEAN_IMAGE: return "mean image";
  case NNKIT_NORM_CHANNEL_MEAN: return "channel mean";
  case NNKIT_NORM_STANDARDIZE: return "standardize";
  case NNKIT_NORM_PCA: return "PCA";
  case NNKIT_NORM_PCA_WHITEN: return "PCA whitening";
  case NNKIT_NORM_ZCA_WHITEN: return "ZCA whitening";
  }
  return "unknown";
}

static void drop_fit(nnkit_normalizer *nz)
{
  nnkit__free(nz->mean);
  nnkit__free(nz->scale);
  nnkit__free(nz->proj);
  nnkit__free(nz->variances);
  nnkit__free(nz->std);
  nz->mean = nz->scale = nz->proj = nz->variances = nz->std = NULL;
  nz->fitted = 0;
  nz->in_size = nz->out_size = nz->stat_len = nz->k = nz->fit_count = 0;
}

/* ---- settings --------------------------------------------------------- */

/* The keyed-settings table (lib/core/settings.c): one row per (kind, key);
 * kind 0 rows apply to every kind. */
#define INT NNKIT_BOUND_INTEGER
static const nnkit__spec params[] = {
  {NNKIT_NORM_CHANNEL_MEAN, NNKIT_NORM_WITH_STD, "with_std", 0, 1, 0, INT},
  {NNKIT_NORM_STANDARDIZE, NNKIT_NORM_WITH_STD, "with_std", 0, 1, 1, INT},
  {NNKIT_NORM_PCA, NNKIT_NORM_COMPONENTS, "components", 0, 16777216.0, 0, INT},
  {NNKIT_NORM_PCA_WHITEN, NNKIT_NORM_COMPONENTS, "components", 0, 16777216.0, 0, INT},
  {NNKIT_NORM_ZCA_WHITEN, NNKIT_NORM_COMPONENTS, "components", 0, 16777216.0, 0, INT},
  {NNKIT_NORM_PCA, NNKIT_NORM_VARIANCE, "variance fraction", 0, 1, 1, 0},
  {NNKIT_NORM_PCA_WHITEN, NNKIT_NORM_VARIANCE, "variance fraction", 0, 1, 1, 0},
  {NNKIT_NORM_ZCA_WHITEN, NNKIT_NORM_VARIANCE, "variance fraction", 0, 1, 1, 0},
  {NNKIT_NORM_PCA_WHITEN, NNKIT_NORM_EPSILON, "epsilon", 0, 1e6, 1e-5, 0},
  {NNKIT_NORM_ZCA_WHITEN, NNKIT_NORM_EPSILON, "epsilon", 0, 1e6, 1e-5, 0},
  {0, NNKIT_NORM_FIT_SAMPLES, "fit samples", 0, TWO_POW_53, 0, INT},
  {0, NNKIT_NORM_SEED, "seed", 0, TWO_POW_53, 0, INT},
};
#undef INT
#define NPARAMS (sizeof params / sizeof params[0])

static const nnkit__spec *find_param(nnkit_norm_kind kind, nnkit_norm_param key,
                                     const char *fn)
{
  const nnkit__spec *s = nnkit__spec_find(params, NPARAMS, (int)kind, (int)key);
  if (s && valid_kind(kind))
    return s;
  for (size_t i = 0; i < NPARAMS; i++)
    if (params[i].key == (int)key) {
      nnkit__err(NNKIT_E_INVALID, "%s: a %s normalizer has no %s setting", fn,
                 kind_name(kind), params[i].name);
      return NULL;
    }
  nnkit__err(NNKIT_E_INVALID, "%s: unknown setting %d; use an NNKIT_NORM_* "
             "key", fn, (int)key);
  return NULL;
}

static void set_value(nnkit_normalizer *nz, nnkit_norm_param key, double value)
{
  switch (key) {
  case NNKIT_NORM_WITH_STD: nz->with_std = (int)value; break;
  case NNKIT_NORM_COMPONENTS: nz->components = (size_t)value; break;
  case NNKIT_NORM_VARIANCE: nz->variance = value; break;
  case NNKIT_NORM_EPSILON: nz->eps = value; break;
  case NNKIT_NORM_FIT_SAMPLES: nz->fit_samples = (uint64_t)value; break;
  case NNKIT_NORM_SEED: nz->seed = (uint64_t)value; break;
  }
}

NNKIT_API nnkit_status nnkit_normalizer_create(nnkit_normalizer **out,
                                               nnkit_norm_kind kind)
{
  static const char fn[] = "nnkit_normalizer_create";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL", fn);
  *out = NULL;
  if (!valid_kind(kind))
    return nnkit__err(NNKIT_E_INVALID, "%s: unknown kind %d; use an "
                      "NNKIT_NORM_* kind", fn, (int)kind);
  nnkit_normalizer *nz = nnkit__calloc(1, sizeof *nz);
  if (!nz)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  nz->kind = kind;
  for (size_t i = 0; i < NPARAMS; i++) /* the defaults, as the table says */
    if (params[i].kind == (int)kind || params[i].kind == 0)
      set_value(nz, (nnkit_norm_param)params[i].key, params[i].def);
  if (!nnkit__spec_find(params, NPARAMS, (int)kind, NNKIT_NORM_VARIANCE))
    nz->variance = 1;
  if (!nnkit__spec_find(params, NPARAMS, (int)kind, NNKIT_NORM_EPSILON))
    nz->eps = 1e-5;
  *out = nz;
  return NNKIT_OK;
}

NNKIT_API void nnkit_normalizer_free(nnkit_normalizer *nz)
{
  if (!nz)
    return;
  drop_fit(nz);
  nnkit__free(nz);
}

NNKIT_API nnkit_norm_kind nnkit_normalizer_kind(const nnkit_normalizer *nz)
{
  return nz ? nz->kind : (nnkit_norm_kind)0;
}

NNKIT_API nnkit_status nnkit_normalizer_bounds(double *lo_out, double *hi_out,
                                               int *flags_out, nnkit_norm_kind kind,
                                               nnkit_norm_param key)
{
  static const char fn[] = "nnkit_normalizer_bounds";
  if (!valid_kind(kind))
    return nnkit__err(NNKIT_E_INVALID, "%s: unknown kind %d", fn, (int)kind);
  const nnkit__spec *p = find_param(kind, key, fn);
  if (!p)
    return NNKIT_E_INVALID;
  nnkit__spec_bounds(p, lo_out, hi_out, flags_out);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_normalizer_set(nnkit_normalizer *nz,
                                            nnkit_norm_param key, double value)
{
  static const char fn[] = "nnkit_normalizer_set";
  if (!nz)
    return nnkit__err(NNKIT_E_INVALID, "%s: nz is NULL", fn);
  const nnkit__spec *p = find_param(nz->kind, key, fn);
  if (!p)
    return NNKIT_E_INVALID;
  char owner[64];
  snprintf(owner, sizeof owner, "%s: %s normalizer", fn, kind_name(nz->kind));
  nnkit_status st = nnkit__spec_check(p, owner, value);
  if (st == NNKIT_OK)
    set_value(nz, key, value);
  return st;
}

NNKIT_API nnkit_status nnkit_normalizer_get(double *out,
                                            const nnkit_normalizer *nz,
                                            nnkit_norm_param key)
{
  static const char fn[] = "nnkit_normalizer_get";
  if (!out || !nz)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn,
                      !out ? "out" : "nz");
  if (!find_param(nz->kind, key, fn))
    return NNKIT_E_INVALID;
  switch (key) {
  case NNKIT_NORM_WITH_STD: *out = nz->with_std; break;
  case NNKIT_NORM_COMPONENTS: *out = (double)nz->components; break;
  case NNKIT_NORM_VARIANCE: *out = nz->variance; break;
  case NNKIT_NORM_EPSILON: *out = nz->eps; break;
  case NNKIT_NORM_FIT_SAMPLES: *out = (double)nz->fit_samples; break;
  case NNKIT_NORM_SEED: *out = (double)nz->seed; break;
  }
  return NNKIT_OK;
}

/* ---- statistics ------------------------------------------------------- */

/* Channel layout of a sample shape: [C, H, W] has C channels of H*W;
 * anything else is one channel. */
static void channel_layout(const size_t *shape, size_t ndim, size_t size,
                           size_t *channels, size_t *plane)
{
  *channels = ndim == 3 ? shape[0] : 1;
  *plane = size / *channels;
}

/* Mean and population std, in double, of each of `len` statistics over
 * the samples rows[0..m) (all samples when rows is NULL). Per feature when
 * plane == 0, else per channel (channel c = values [c*plane, (c+1)*plane)
 * of each sample). */
static void moments(const nnkit_dataset *ds, const size_t *rows, size_t m,
                    size_t len, size_t plane, double *mean, double *std)
{
  size_t d = ds->sample_size;
  memset(mean, 0, len * sizeof *mean);
  memset(std, 0, len * sizeof *std);
  for (size_t i = 0; i < m; i++) {
    size_t x = (rows ? rows[i] : i) * d; /* first value of the sample */
    if (!plane) {
      for (size_t j = 0; j < d; j++)
        mean[j] += nnkit__ds_at(ds, x + j);
    } else {
      for (size_t c = 0; c < len; c++)
        for (size_t j = 0; j < plane; j++)
          mean[c] += nnkit__ds_at(ds, x + c * plane + j);
    }
  }
  double per = (double)m * (double)(plane ? plane : 1);
  for (size_t j = 0; j < len; j++)
    mean[j] /= per;
  for (size_t i = 0; i < m; i++) {
    size_t x = (rows ? rows[i] : i) * d;
    if (!plane) {
      for (size_t j = 0; j < d; j++) {
        double t = nnkit__ds_at(ds, x + j) - mean[j];
        std[j] += t * t;
      }
    } else {
      for (size_t c = 0; c < len; c++)
        for (size_t j = 0; j < plane; j++) {
          double t = nnkit__ds_at(ds, x + c * plane + j) - mean[c];
          std[c] += t * t;
        }
    }
  }
  for (size_t j = 0; j < len; j++)
    std[j] = sqrt(std[j] / per);
}

/* scikit-learn's rule: a feature whose variance is within rounding error
 * of zero is only centred (scale 1). */
static double safe_scale(double mean, double std, double n)
{
  double var = std * std;
  double bound = n * DBL_EPSILON * var + (n * mean * DBL_EPSILON) *
                 (n * mean * DBL_EPSILON);
  if (var <= bound || std < 10 * DBL_EPSILON)
    return 1.0;
  return 1.0 / std;
}

static int cmp_size(const void *a, const void *b)
{
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

/* Picks m of n rows at random (sorted), or NULL = all when m >= n. */
static nnkit_status pick_rows(size_t **rows_out, size_t *m_out, size_t n,
                              uint64_t want, uint64_t seed, const char *fn)
{
  *rows_out = NULL;
  *m_out = n;
  if (want == 0 || want >= n)
    return NNKIT_OK;
  size_t m = (size_t)want;
  size_t *idx = nnkit__malloc(n * sizeof *idx);
  if (!idx)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory choosing %zu of %zu "
                      "samples", fn, m, n);
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  nnkit__rng r;
  nnkit__rng_init(&r, seed, UINT64_C(0x4E4F524D) << 32);
  for (size_t i = 0; i < m; i++) { /* partial Fisher-Yates */
    size_t j = i + (size_t)nnkit__rng_below(&r, n - i);
    size_t t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  qsort(idx, m, sizeof *idx, cmp_size);
  *rows_out = idx;
  *m_out = m;
  return NNKIT_OK;
}

/* ---- PCA -------------------------------------------------------------- */

/* Covariance (divisor m - 1) of the chosen rows about mean into cov
 * (d x d, full symmetric), via chunks of centred rows. */
static nnkit_status covariance(double *cov, const nnkit_dataset *ds,
                               const size_t *rows, size_t m,
                               const double *mean, const char *fn)
{
  size_t d = ds->sample_size;
  size_t chunk = NNKIT__NORM_CHUNK;
  double *buf = nnkit__malloc(chunk * d * sizeof *buf);
  if (!buf)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for the covariance",
                      fn);
  memset(cov, 0, d * d * sizeof *cov);
  for (size_t s = 0; s < m; s += chunk) {
    size_t b = m - s < chunk ? m - s : chunk;
    for (size_t i = 0; i < b; i++) {
      size_t x = (rows ? rows[s + i] : s + i) * d;
      for (size_t j = 0; j < d; j++)
        buf[i * d + j] = nnkit__ds_at(ds, x + j) - mean[j];
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)b, 1.0,
                buf, (int)d, 1.0, cov, (int)d);
  }
  nnkit__free(buf);
  double inv = 1.0 / (double)(m - 1);
  for (size_t i = 0; i < d; i++)
    for (size_t j = i; j < d; j++) {
      double v = cov[i * d + j] * inv;
      cov[i * d + j] = v;
      cov[j * d + i] = v;
    }
  return NNKIT_OK;
}

/* Eigen-decomposition of the symmetric d x d matrix a (overwritten by the
 * eigenvectors: column-major, vector j = a[j*d .. j*d + d)); w receives
 * the eigenvalues in ascending order. */
static nnkit_status eigen(double *a, double *w, size_t d, const char *fn)
{
  lapack_int n = (lapack_int)d, lwork = -1, liwork = -1, iq = 0;
  double wq = 0;
  lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'L', n, a, n,
                                        w, &wq, lwork, &iq, liwork);
  if (info != 0)
    return nnkit__err(NNKIT_E_DIVERGED, "%s: LAPACK dsyevd workspace query "
                      "failed (info %d)", fn, (int)info);
  lwork = (lapack_int)wq;
  liwork = iq;
  double *work = nnkit__malloc((size_t)lwork * sizeof *work);
  lapack_int *iwork = nnkit__malloc((size_t)liwork * sizeof *iwork);
  if (!work || !iwork) {
    nnkit__free(work);
    nnkit__free(iwork);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for the "
                      "eigendecomposition of %zu features", fn, d);
  }
  info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'L', n, a, n, w, work,
                             lwork, iwork, liwork);
  nnkit__free(work);
  nnkit__free(iwork);
  if (info != 0)
    return nnkit__err(NNKIT_E_DIVERGED, "%s: LAPACK dsyevd did not converge "
                      "(info %d); check the data for extreme values", fn,
                      (int)info);
  return NNKIT_OK;
}

/* Fills nz->proj, nz->variances, nz->k and nz->out_size from the
 * eigenvectors vec (column-major, ascending eigenvalues w). */
static nnkit_status build_projection(nnkit_normalizer *nz, double *vec,
                                     const double *w, size_t d,
                                     const char *fn)
{
  /* Descending order: component j is column d - 1 - j. */
  double total = 0, lmax = 0;
  for (size_t j = 0; j < d; j++) {
    double l = w[j] > 0 ? w[j] : 0;
    total += l;
    if (l > lmax)
      lmax = l;
  }
  size_t k = nz->components;
  if (k > d)
    return nnkit__err(NNKIT_E_INVALID, "%s: %zu components asked for but "
                      "samples have only %zu features; use at most %zu", fn,
                      k, d, d);
  if (k == 0) {
    k = d;
    if (nz->variance > 0 && nz->variance < 1 && total > 0) {
      double cum = 0;
      for (size_t j = 0; j < d; j++) {
        double l = w[d - 1 - j] > 0 ? w[d - 1 - j] : 0;
        cum += l;
        if (cum / total > nz->variance) {
          k = j + 1;
          break;
        }
      }
    }
  }
  int whiten = nz->kind != NNKIT_NORM_PCA;
  double *inv = nnkit__malloc(k * sizeof *inv);
  float *var = nnkit__malloc(k * sizeof *var);
  if (!inv || !var) {
    nnkit__free(inv);
    nnkit__free(var);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  }
  for (size_t j = 0; j < k; j++) {
    double l = w[d - 1 - j] > 0 ? w[d - 1 - j] : 0;
    var[j] = (float)l;
    if (whiten && nz->eps == 0 && !(l > lmax * 1e-12 && l > 0)) {
      nnkit__free(inv);
      nnkit__free(var);
      return nnkit__err(NNKIT_E_INVALID, "%s: component %zu of %zu has zero "
                        "variance, so whitening with epsilon 0 divides by "
                        "zero; keep fewer components (at most %zu) or set a "
                        "positive NNKIT_NORM_EPSILON", fn, j + 1, k, j);
    }
    inv[j] = whiten ? 1.0 / sqrt(l + nz->eps) : 1.0;
    /* Sign: the largest-magnitude entry of each vector is positive. */
    double *v = vec + (d - 1 - j) * d;
    size_t big = 0;
    for (size_t i = 1; i < d; i++)
      if (fabs(v[i]) > fabs(v[big]))
        big = i;
    if (v[big] < 0)
      for (size_t i = 0; i < d; i++)
        v[i] = -v[i];
  }
  size_t out = nz->kind == NNKIT_NORM_ZCA_WHITEN ? d : k;
  float *proj = nnkit__malloc(d * out * sizeof *proj);
  if (!proj) {
    nnkit__free(inv);
    nnkit__free(var);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for a %zu x %zu "
                      "projection", fn, d, out);
  }
  if (nz->kind != NNKIT_NORM_ZCA_WHITEN) {
    for (size_t i = 0; i < d; i++)
      for (size_t j = 0; j < k; j++)
        proj[i * k + j] = (float)(vec[(d - 1 - j) * d + i] * inv[j]);
  } else {
    /* W = U_k diag(inv) U_k^T, in double: A = U_k diag(inv) (d x k), with
     * U_k (d x k row-major) read from the column-major vectors. */
    double *uk = nnkit__malloc(2 * d * k * sizeof *uk);
    double *wz = nnkit__malloc(d * d * sizeof *wz);
    if (!uk || !wz) {
      nnkit__free(uk);
      nnkit__free(wz);
      nnkit__free(inv);
      nnkit__free(var);
      nnkit__free(proj);
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for the ZCA "
                        "matrix", fn);
    }
    double *ak = uk + d * k;
    for (size_t i = 0; i < d; i++)
      for (size_t j = 0; j < k; j++) {
        uk[i * k + j] = vec[(d - 1 - j) * d + i];
        ak[i * k + j] = uk[i * k + j] * inv[j];
      }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d, (int)d,
                (int)k, 1.0, ak, (int)k, uk, (int)k, 0.0, wz, (int)d);
    for (size_t i = 0; i < d * d; i++)
      proj[i] = (float)wz[i];
    nnkit__free(uk);
    nnkit__free(wz);
  }
  nnkit__free(inv);
  nz->proj = proj;
  nz->variances = var;
  nz->k = k;
  nz->out_size = out;
  return NNKIT_OK;
}

/* ---- fitting ---------------------------------------------------------- */

NNKIT_API nnkit_status nnkit_normalizer_fit(nnkit_normalizer *nz,
                                            const nnkit_dataset *train)
{
  static const char fn[] = "nnkit_normalizer_fit";
  if (!nz || !train)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn,
                      !nz ? "nz" : "train");
  size_t d = train->sample_size, n = train->count;
  int pca = is_pca(nz->kind);
  if (pca && d > PCA_MAX_FEATURES)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s of %zu features needs a %zu x "
                      "%zu covariance; nnkit allows at most %d features "
                      "(downsample the images first)", fn,
                      kind_name(nz->kind), d, d, d, PCA_MAX_FEATURES);
  if (pca && nz->components > d)
    return nnkit__err(NNKIT_E_INVALID, "%s: %zu components asked for but "
                      "samples have only %zu features; use at most %zu", fn,
                      nz->components, d, d);
  size_t *rows;
  size_t m;
  nnkit_status st = pick_rows(&rows, &m, n, nz->fit_samples, nz->seed, fn);
  if (st != NNKIT_OK)
    return st;
  if (pca && m < 2) {
    nnkit__free(rows);
    return nnkit__err(NNKIT_E_INVALID, "%s: %s needs at least 2 samples to "
                      "estimate a covariance, got %zu", fn,
                      kind_name(nz->kind), m);
  }
  /* The new fit is built in a scratch copy and swapped in on success, so a
   * failure keeps the earlier fit. */
  nnkit_normalizer nf = *nz;
  nf.mean = nf.scale = nf.proj = nf.variances = nf.std = NULL;
  nf.ndim = train->ndim;
  memcpy(nf.shape, train->shape, sizeof nf.shape);
  nf.in_size = d;
  nf.out_size = d;
  nf.k = 0;
  size_t plane = 0;
  nf.channels = 1;
  nf.plane = d;
  nf.stat_len = d;
  if (nz->kind == NNKIT_NORM_CHANNEL_MEAN) {
    channel_layout(train->shape, train->ndim, d, &nf.channels, &nf.plane);
    plane = nf.plane;
    nf.stat_len = nf.channels;
  }
  size_t len = nf.stat_len;
  int ovf = 0;
  size_t dbytes = nnkit__mul_size(nnkit__mul_size(2, len, &ovf), sizeof(double), &ovf);
  size_t cbytes = pca ? nnkit__mul_size(nnkit__mul_size(d, d, &ovf), sizeof(double), &ovf) : 0;
  double *dmean = ovf ? NULL : nnkit__malloc(dbytes);
  double *dcov = NULL, *w = NULL;
  nf.mean = nnkit__malloc(len * sizeof *nf.mean);
  nf.std = nnkit__malloc(len * sizeof *nf.std);
  int want_scale = (nz->kind == NNKIT_NORM_STANDARDIZE ||
                    nz->kind == NNKIT_NORM_CHANNEL_MEAN) && nz->with_std;
  if (want_scale)
    nf.scale = nnkit__malloc(len * sizeof *nf.scale);
  if (pca) {
    dcov = ovf ? NULL : nnkit__malloc(cbytes);
    w = nnkit__malloc(d * sizeof *w);
  }
  if (!dmean || !nf.mean || !nf.std || (want_scale && !nf.scale) ||
      (pca && (!dcov || !w))) {
    st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory fitting on %zu "
                    "samples of %zu features", fn, m, d);
    goto done;
  }
  double *dstd = dmean + len;
  moments(train, rows, m, len, plane, dmean, dstd);
  double per = (double)m * (double)(plane ? plane : 1);
  for (size_t j = 0; j < len; j++) {
    nf.mean[j] = (float)dmean[j];
    nf.std[j] = (float)dstd[j];
    if (want_scale)
      nf.scale[j] = (float)safe_scale(dmean[j], dstd[j], per);
  }
  if (pca) {
    st = covariance(dcov, train, rows, m, dmean, fn);
    if (st == NNKIT_OK)
      st = eigen(dcov, w, d, fn);
    if (st == NNKIT_OK)
      st = build_projection(&nf, dcov, w, d, fn);
  }
  if (st == NNKIT_OK) {
    nf.fitted = 1;
    nf.fit_count = m;
    drop_fit(nz);
    *nz = nf;
    nf.mean = nf.scale = nf.proj = nf.variances = nf.std = NULL;
  }
done:
  nnkit__free(nf.mean);
  nnkit__free(nf.scale);
  nnkit__free(nf.proj);
  nnkit__free(nf.variances);
  nnkit__free(nf.std);
  nnkit__free(dmean);
  nnkit__free(dcov);
  nnkit__free(w);
  nnkit__free(rows);
  return st;
}

/* ---- getters ---------------------------------------------------------- */

NNKIT_API int nnkit_normalizer_is_fitted(const nnkit_normalizer *nz)
{
  return nz ? nz->fitted : 0;
}

NNKIT_API size_t nnkit_normalizer_in_size(const nnkit_normalizer *nz)
{
  return nz && nz->fitted ? nz->in_size : 0;
}

NNKIT_API size_t nnkit_normalizer_out_size(const nnkit_normalizer *nz)
{
  return nz && nz->fitted ? nz->out_size : 0;
}

NNKIT_API size_t nnkit_normalizer_fit_count(const nnkit_normalizer *nz)
{
  return nz && nz->fitted ? nz->fit_count : 0;
}

static nnkit_status need_fitted(const nnkit_normalizer *nz, const char *fn)
{
  if (!nz)
    return nnkit__err(NNKIT_E_INVALID, "%s: nz is NULL", fn);
  if (!nz->fitted)
    return nnkit__err(NNKIT_E_STATE, "%s: the %s normalizer is not fitted; "
                      "call nnkit_normalizer_fit() on the training set first",
                      fn, kind_name(nz->kind));
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_normalizer_shape(size_t *dims_out, size_t len,
                                              size_t *ndim_out,
                                              const nnkit_normalizer *nz)
{
  static const char fn[] = "nnkit_normalizer_shape";
  nnkit_status st = need_fitted(nz, fn);
  if (st != NNKIT_OK)
    return st;
  if (!dims_out || !ndim_out)
    return nnkit__err(NNKIT_E_INVALID, "%s: NULL output pointer", fn);
  if (len < nz->ndim)
    return nnkit__err(NNKIT_E_INVALID, "%s: dims_out holds %zu values but "
                      "the shape has %zu dimensions", fn, len, nz->ndim);
  memcpy(dims_out, nz->shape, nz->ndim * sizeof *dims_out);
  *ndim_out = nz->ndim;
  return NNKIT_OK;
}

void nnkit__normalizer_out_shape(const nnkit_normalizer *nz, size_t *dims,
                                 size_t *ndim)
{
  if (nz->proj && nz->kind != NNKIT_NORM_ZCA_WHITEN) {
    *ndim = 1;
    dims[0] = nz->out_size;
    dims[1] = dims[2] = 0;
    return;
  }
  *ndim = nz->ndim;
  memcpy(dims, nz->shape, sizeof nz->shape);
}

/* ---- transforms ------------------------------------------------------- */

size_t nnkit__normalizer_scratch_len(const nnkit_normalizer *nz)
{
  return nz->proj ? NNKIT__NORM_CHUNK * nz->in_size : 0;
}

void nnkit__normalizer_transform(const nnkit_normalizer *nz, const float *x,
                                 float *y, size_t count, float *scratch)
{
  size_t d = nz->in_size;
  if (nz->proj) {
    size_t out = nz->out_size;
    for (size_t s = 0; s < count; s += NNKIT__NORM_CHUNK) {
      size_t b = count - s < NNKIT__NORM_CHUNK ? count - s : NNKIT__NORM_CHUNK;
      const float *xs = x + s * d;
      for (size_t i = 0; i < b; i++)
        for (size_t j = 0; j < d; j++)
          scratch[i * d + j] = xs[i * d + j] - nz->mean[j];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b, (int)out,
                  (int)d, 1.0f, scratch, (int)d, nz->proj, (int)out, 0.0f,
                  y + s * out, (int)out);
    }
    return;
  }
  if (nz->kind == NNKIT_NORM_CHANNEL_MEAN) {
    size_t pl = nz->plane;
    for (size_t i = 0; i < count; i++)
      for (size_t c = 0; c < nz->channels; c++) {
        float m = nz->mean[c], sc = nz->scale ? nz->scale[c] : 1.0f;
        const float *xs = x + i * d + c * pl;
        float *ys = y + i * d + c * pl;
        for (size_t j = 0; j < pl; j++)
          ys[j] = (xs[j] - m) * sc;
      }
    return;
  }
  for (size_t i = 0; i < count; i++) {
    const float *xs = x + i * d;
    float *ys = y + i * d;
    if (nz->scale)
      for (size_t j = 0; j < d; j++)
        ys[j] = (xs[j] - nz->mean[j]) * nz->scale[j];
    else
      for (size_t j = 0; j < d; j++)
        ys[j] = xs[j] - nz->mean[j];
  }
}

/* Formats a shape as "1x28x28". */
static void shape_text(char *buf, size_t len, const size_t *d, size_t n)
{
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && used < len; i++) {
    int k = snprintf(buf + used, len - used, i ? "x%zu" : "%zu", d[i]);
    if (k < 0)
      break;
    used += (size_t)k;
  }
}

static nnkit_status check_shape(const nnkit_normalizer *nz,
                                const nnkit_dataset *ds, const char *fn)
{
  int same = ds->ndim == nz->ndim;
  for (size_t i = 0; same && i < ds->ndim; i++)
    same = ds->shape[i] == nz->shape[i];
  if (same)
    return NNKIT_OK;
  char a[80], b[80];
  shape_text(a, sizeof a, ds->shape, ds->ndim);
  shape_text(b, sizeof b, nz->shape, nz->ndim);
  return nnkit__err(NNKIT_E_SHAPE, "%s: the dataset's samples are %s but the "
                    "normalizer was fitted on %s samples; apply it to data "
                    "shaped like its training set", fn, a, b);
}

NNKIT_API nnkit_status nnkit_normalizer_transform(const nnkit_normalizer *nz,
                                                  const float *x, float *y,
                                                  size_t count)
{
  static const char fn[] = "nnkit_normalizer_transform";
  nnkit_status st = need_fitted(nz, fn);
  if (st != NNKIT_OK)
    return st;
  if (!x || !y || count == 0)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s", fn,
                      count == 0 ? "count is 0" : !x ? "x is NULL"
                                                     : "y is NULL");
  size_t sl = nnkit__normalizer_scratch_len(nz);
  float *scratch = NULL;
  if (sl) {
    size_t rows = count < NNKIT__NORM_CHUNK ? count : NNKIT__NORM_CHUNK;
    scratch = nnkit__malloc(rows * nz->in_size * sizeof *scratch);
    if (!scratch)
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  }
  nnkit__normalizer_transform(nz, x, y, count, scratch);
  nnkit__free(scratch);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_normalizer_apply(const nnkit_normalizer *nz,
                                              nnkit_dataset *ds)
{
  static const char fn[] = "nnkit_normalizer_apply";
  nnkit_status st = need_fitted(nz, fn);
  if (st != NNKIT_OK)
    return st;
  if (!ds)
    return nnkit__err(NNKIT_E_INVALID, "%s: ds is NULL", fn);
  st = check_shape(nz, ds, fn);
  if (st == NNKIT_OK) /* a compact set becomes floats: the values change */
    st = nnkit__dataset_own_floats(ds, fn);
  if (st != NNKIT_OK)
    return st;
  st = nnkit_normalizer_transform(nz, ds->x, ds->x, ds->count);
  if (st != NNKIT_OK)
    return st;
  size_t dims[NNKIT_MAX_SAMPLE_DIMS], nd;
  nnkit__normalizer_out_shape(nz, dims, &nd);
  if (nz->out_size < nz->in_size) {
    float *shrunk = nnkit__realloc(ds->x, ds->count * nz->out_size *
                                              sizeof(float));
    if (shrunk) /* keeping the larger block is fine too */
      ds->x = shrunk;
  }
  ds->ndim = nd;
  memcpy(ds->shape, dims, sizeof ds->shape);
  ds->sample_size = nz->out_size;
  return NNKIT_OK;
}

/* ---- parameter arrays ------------------------------------------------- */

NNKIT_API size_t nnkit_normalizer_array_len(const nnkit_normalizer *nz,
                                            nnkit_norm_array which)
{
  if (!nz || !nz->fitted)
    return 0;
  switch (which) {
  case NNKIT_NORM_ARRAY_MEAN: return nz->stat_len;
  case NNKIT_NORM_ARRAY_SCALE: return nz->scale ? nz->stat_len : 0;
  case NNKIT_NORM_ARRAY_PROJECTION:
    return nz->proj ? nz->in_size * nz->out_size : 0;
  case NNKIT_NORM_ARRAY_VARIANCES: return nz->variances ? nz->k : 0;
  }
  return 0;
}

NNKIT_API nnkit_status nnkit_normalizer_get_array(float *out, size_t len,
                                                  const nnkit_normalizer *nz,
                                                  nnkit_norm_array which)
{
  static const char fn[] = "nnkit_normalizer_get_array";
  nnkit_status st = need_fitted(nz, fn);
  if (st != NNKIT_OK)
    return st;
  const float *src = NULL;
  switch (which) {
  case NNKIT_NORM_ARRAY_MEAN: src = nz->mean; break;
  case NNKIT_NORM_ARRAY_SCALE: src = nz->scale; break;
  case NNKIT_NORM_ARRAY_PROJECTION: src = nz->proj; break;
  case NNKIT_NORM_ARRAY_VARIANCES: src = nz->variances; break;
  default:
    return nnkit__err(NNKIT_E_INVALID, "%s: unknown array %d; use an "
                      "NNKIT_NORM_ARRAY_* value", fn, (int)which);
  }
  size_t n = nnkit_normalizer_array_len(nz, which);
  if (!src)
    return nnkit__err(NNKIT_E_INVALID, "%s: a %s normalizer has no such "
                      "array (its length is 0)", fn, kind_name(nz->kind));
  if (!out || len < n)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s; the array has %zu values", fn,
                      !out ? "out is NULL" : "out is too short", n);
  memcpy(out, src, n * sizeof *out);
  return NNKIT_OK;
}

static int all_finite(const float *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      return 0;
  return 1;
}

NNKIT_API nnkit_status nnkit_normalizer_from_arrays(
    nnkit_normalizer **out, nnkit_norm_kind kind, const size_t *shape,
    size_t ndim, size_t out_size, const float *mean, size_t mean_len,
    const float *scale, size_t scale_len, const float *projection,
    size_t projection_len)
{
  static const char fn[] = "nnkit_normalizer_from_arrays";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL", fn);
  *out = NULL;
  if (!valid_kind(kind))
    return nnkit__err(NNKIT_E_INVALID, "%s: unknown kind %d", fn, (int)kind);
  if (!shape || ndim < 1 || ndim > NNKIT_MAX_SAMPLE_DIMS)
    return nnkit__err(NNKIT_E_INVALID, "%s: the shape must have 1 to %d "
                      "dimensions", fn, NNKIT_MAX_SAMPLE_DIMS);
  size_t in = 1;
  int ovf = 0;
  for (size_t i = 0; i < ndim; i++) {
    if (shape[i] == 0)
      return nnkit__err(NNKIT_E_INVALID, "%s: shape[%zu] is 0", fn, i);
    in = nnkit__mul_size(in, shape[i], &ovf);
  }
  if (ovf || in > (size_t)1 << 31)
    return nnkit__err(NNKIT_E_INVALID, "%s: the sample shape is too large",
                      fn);
  int pca = is_pca(kind);
  size_t channels = 1, plane = in;
  if (kind == NNKIT_NORM_CHANNEL_MEAN)
    channel_layout(shape, ndim, in, &channels, &plane);
  size_t stat_len = kind == NNKIT_NORM_CHANNEL_MEAN ? channels : in;
  size_t want_out = in;
  if (kind == NNKIT_NORM_PCA || kind == NNKIT_NORM_PCA_WHITEN) {
    if (out_size < 1 || out_size > in)
      return nnkit__err(NNKIT_E_INVALID, "%s: out_size %zu must be in [1, "
                        "%zu] for %s", fn, out_size, in, kind_name(kind));
    want_out = out_size;
  } else if (out_size != in) {
    return nnkit__err(NNKIT_E_INVALID, "%s: out_size %zu must equal the "
                      "input size %zu for %s", fn, out_size, in,
                      kind_name(kind));
  }
  if (pca && in > PCA_MAX_FEATURES)
    return nnkit__err(NNKIT_E_INVALID, "%s: %zu features exceed the %d the "
                      "PCA kinds allow", fn, in, PCA_MAX_FEATURES);
  int scaled = kind == NNKIT_NORM_CHANNEL_MEAN ||
               kind == NNKIT_NORM_STANDARDIZE;
  size_t want_proj = pca ? in * want_out : 0;
  if (!mean || mean_len != stat_len)
    return nnkit__err(NNKIT_E_INVALID, "%s: mean has %zu values but %s of "
                      "this shape needs %zu", fn, mean ? mean_len : 0,
                      kind_name(kind), stat_len);
  if (scale ? (!scaled || scale_len != stat_len) : scale_len != 0)
    return nnkit__err(NNKIT_E_INVALID, "%s: scale has %zu values but %s needs "
                      "%s", fn, scale ? scale_len : scale_len, kind_name(kind),
                      scaled ? "as many as mean (or NULL with length 0)"
                             : "none (NULL with length 0)");
  if (pca ? (!projection || projection_len != want_proj)
          : (projection || projection_len != 0))
    return nnkit__err(NNKIT_E_INVALID, "%s: projection has %zu values but %s "
                      "needs %zu", fn, projection ? projection_len : 0,
                      kind_name(kind), want_proj);
  if (!all_finite(mean, mean_len) || (scale && !all_finite(scale, scale_len)) ||
      (projection && !all_finite(projection, projection_len)))
    return nnkit__err(NNKIT_E_INVALID, "%s: the arrays hold a NaN or infinite "
                      "value; the saved normalizer is damaged", fn);
  nnkit_normalizer *nz;
  nnkit_status st = nnkit_normalizer_create(&nz, kind);
  if (st != NNKIT_OK)
    return st;
  nz->mean = nnkit__malloc(stat_len * sizeof(float));
  if (scale)
    nz->scale = nnkit__malloc(stat_len * sizeof(float));
  if (projection)
    nz->proj = nnkit__malloc(want_proj * sizeof(float));
  if (!nz->mean || (scale && !nz->scale) || (projection && !nz->proj)) {
    nnkit_normalizer_free(nz);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  }
  memcpy(nz->mean, mean, stat_len * sizeof(float));
  if (scale)
    memcpy(nz->scale, scale, stat_len * sizeof(float));
  if (projection)
    memcpy(nz->proj, projection, want_proj * sizeof(float));
  nz->ndim = ndim;
  memset(nz->shape, 0, sizeof nz->shape);
  memcpy(nz->shape, shape, ndim * sizeof *shape);
  nz->in_size = in;
  nz->out_size = want_out;
  nz->channels = channels;
  nz->plane = plane;
  nz->stat_len = stat_len;
  nz->with_std = scale != NULL;
  if (pca) {
    nz->k = want_out;
    nz->components = kind == NNKIT_NORM_ZCA_WHITEN ? 0 : want_out;
  }
  nz->fitted = 1;
  *out = nz;
  return NNKIT_OK;
}

nnkit_status nnkit__normalizer_clone(nnkit_normalizer **out,
                                     const nnkit_normalizer *nz)
{
  *out = NULL;
  nnkit_normalizer *c = nnkit__malloc(sizeof *c);
  if (!c)
    return nnkit__err(NNKIT_E_NOMEM, "normalizer: out of memory copying");
  *c = *nz;
  c->mean = c->scale = c->proj = c->variances = c->std = NULL;
  struct {
    float **dst;
    const float *src;
    size_t n;
  } arrays[5] = {
    {&c->mean, nz->mean, nz->stat_len},
    {&c->scale, nz->scale, nz->stat_len},
    {&c->proj, nz->proj, nz->in_size * nz->out_size},
    {&c->variances, nz->variances, nz->k},
    {&c->std, nz->std, nz->stat_len},
  };
  for (int i = 0; i < 5; i++) {
    if (!arrays[i].src)
      continue;
    *arrays[i].dst = nnkit__malloc(arrays[i].n * sizeof(float));
    if (!*arrays[i].dst) {
      nnkit_normalizer_free(c);
      return nnkit__err(NNKIT_E_NOMEM, "normalizer: out of memory copying");
    }
    memcpy(*arrays[i].dst, arrays[i].src, arrays[i].n * sizeof(float));
  }
  *out = c;
  return NNKIT_OK;
}

/* ---- subset versus full-set statistics -------------------------------- */

NNKIT_API nnkit_status nnkit_normalizer_compare(double *mean_diff_out,
                                                double *std_diff_out,
                                                const nnkit_normalizer *nz,
                                                const nnkit_dataset *ds)
{
  static const char fn[] = "nnkit_normalizer_compare";
  nnkit_status st = need_fitted(nz, fn);
  if (st != NNKIT_OK)
    return st;
  if (!ds)
    return nnkit__err(NNKIT_E_INVALID, "%s: ds is NULL", fn);
  st = check_shape(nz, ds, fn);
  if (st != NNKIT_OK)
    return st;
  size_t len = nz->stat_len;
  double *m = nnkit__malloc(2 * len * sizeof *m);
  if (!m)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  double *s = m + len;
  size_t plane = nz->kind == NNKIT_NORM_CHANNEL_MEAN ? nz->plane : 0;
  moments(ds, NULL, ds->count, len, plane, m, s);
  double dm = 0, dsd = nz->std ? 0 : NAN;
  for (size_t j = 0; j < len; j++) {
    double a = fabs(m[j] - nz->mean[j]);
    if (a > dm)
      dm = a;
    if (nz->std) {
      double b = fabs(s[j] - nz->std[j]);
      if (b > dsd)
        dsd = b;
    }
  }
  nnkit__free(m);
  if (mean_diff_out)
    *mean_diff_out = dm;
  if (std_diff_out)
    *std_diff_out = dsd;
  return NNKIT_OK;
}
