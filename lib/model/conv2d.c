/* 2-D convolution (cross-correlation, PyTorch's Conv2d) over NCHW samples.
 *
 *   x [B, C, H, W]   w [OC, C, KH, KW]   b [OC]   y [B, OC, OH, OW]
 *
 * Per sample, with K = C KH KW and P = OH OW (Caffe's layout, every buffer
 * in cache): col [K, P] = im2col(x_i), then
 *   forward   y_i [OC, P] = bias + W [OC, K] col          (written in place)
 *   backward  dW += dy_i [OC, P] col^T,  db += rows of dy_i,
 *             dcol [K, P] = W^T dy_i,    dx_i = col2im(dcol)
 * dy_i is read where it lies (no transposed copy) and col is rebuilt in
 * backward from x_i rather than kept for the whole batch: an im2col from
 * cache is cheaper than streaming a batch-sized col through memory, and
 * the layer's memory no longer grows with the batch. The samples of a
 * batch are split over nnkit's threads (nnkit__parallel), each with its
 * own col/dcol and, for threads after the first, its own dW/db partial,
 * added in thread order after the join (deterministic for a thread
 * count). nnkit__conv2d_forward_naive / _backward_naive are the plain-loop
 * twins the tests compare with. On CPUs with AVX2+FMA, stride-1 layers
 * take the direct path instead ("direct path" below, kernels in
 * conv2d_direct.c): no im2col, the padded input read at tap offsets. */
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "internal.h"

extern const nnkit__layer_kind nnkit__conv2d_kind; /* below */

/* Limits on counts given at add time (keeps every product in range). */
#define MAX_COUNT ((size_t)1 << 16)

typedef struct conv_ws {
  float *col;  /* [K, P] */
  float *dcol; /* [K, P] */
  /* Direct path (see "direct path" below); zero borders written once. */
  float *xp;   /* padded input [C, HP, WP] + slack */
  float *yf;   /* flat output [OC, QR] */
  float *dyf;  /* dy in the output's flat layout [OC, QR], garbage columns 0 */
  float *dyp;  /* dy padded for the transposed pass [OC, HQ, WQ] + slack */
  float *dxf;  /* flat dx [C, Q2R] */
  float *wpk, *wpk2; /* packed W and flipped W^T (packed per call) */
} conv_ws;

/* Layout of the direct stride-1 path (conv2d_direct.c), fixed at setup. */
typedef struct conv_direct {
  size_t wp, sx, qr;             /* forward: padded row width, channel stride, positions */
  size_t wq, sq, q2r, top, left; /* dx: same for the padded dy */
  size_t xp_len, dyp_len;        /* floats, slack included */
  int32_t *toff, *toff2;         /* [K] and [OC KH KW] tap offsets */
} conv_direct;

typedef struct conv_state {
  nnkit__conv_geom g; /* first member: nnkit__layer_geom() relies on it */
  size_t ph, pw;      /* padding as requested (NNKIT_PAD_SAME kept) */
  int bias;
  int direct;         /* 1: the direct path can run for this geometry */
  /* The path the last forward ran (1 direct, 0 im2col; -1 none yet),
   * which backward follows. Written atomically: threads owning slices
   * pick at the same time (and pick the same). */
  int use_direct;
  conv_direct d;
  int nws;            /* per-thread workspaces allocated (0 = none yet) */
  conv_ws *ws;
  int nparts;         /* per-task dW/db partials [OC K + OC] (nnkit__task_part) */
  float **parts;
} conv_state;

/* ---- geometry, shared with pooling ------------------------------------ */

/* Output length and padding-before along one axis; 0 when the window does
 * not fit. */
static int axis_fit(size_t n, size_t k, size_t s, size_t p, size_t *out,
                    size_t *before)
{
  if (p == NNKIT_PAD_SAME) {
    size_t o = (n + s - 1) / s;
    size_t need = (o - 1) * s + k;
    *out = o;
    *before = need > n ? (need - n) / 2 : 0;
    return 1;
  }
  size_t padded = n + 2 * p;
  if (padded < k)
    return 0;
  *out = (padded - k) / s + 1;
  *before = p;
  return 1;
}

static void pad_text(char *buf, size_t len, size_t ph, size_t pw)
{
  if (ph == pw && ph == NNKIT_PAD_SAME)
    snprintf(buf, len, "same");
  else if (ph == pw)
    snprintf(buf, len, "%zu", ph);
  else if (ph == NNKIT_PAD_SAME)
    snprintf(buf, len, "same x %zu", pw);
  else if (pw == NNKIT_PAD_SAME)
    snprintf(buf, len, "%zu x same", ph);
  else
    snprintf(buf, len, "%zux%zu", ph, pw);
}

void nnkit__shape_text(const nnkit__shape *s, char *buf, size_t len)
{
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < s->ndim && used < len; i++) {
    int n = snprintf(buf + used, len - used, i ? "x%zu" : "%zu", s->d[i]);
    if (n < 0)
      break;
    used += (size_t)n;
  }
}

nnkit_status nnkit__conv_geom_setup(nnkit__conv_geom *g, const nnkit__shape *in,
                                    size_t kh, size_t kw, size_t sh, size_t sw,
                                    size_t ph, size_t pw, const char *what,
                                    size_t index)
{
  char sbuf[64];
  if (in->ndim != 2 && in->ndim != 3) {
    nnkit__shape_text(in, sbuf, sizeof sbuf);
    return nnkit__err(NNKIT_E_SHAPE,
                      "%s (layer %zu): needs feature maps [channels, height, width], "
                      "got an input of shape [%s]; create the net with a sample "
                      "shape such as {1, 28, 28}",
                      what, index, sbuf);
  }
  memset(g, 0, sizeof *g);
  g->c = in->ndim == 3 ? in->d[0] : 1;
  g->h = in->d[in->ndim - 2];
  g->w = in->d[in->ndim - 1];
  g->kh = kh;
  g->kw = kw;
  g->sh = sh;
  g->sw = sw;
  if (!axis_fit(g->h, kh, sh, ph, &g->oh, &g->pt) ||
      !axis_fit(g->w, kw, sw, pw, &g->ow, &g->pl)) {
    char pbuf[48];
    pad_text(pbuf, sizeof pbuf, ph, pw);
    return nnkit__err(NNKIT_E_SHAPE,
                      "%s (layer %zu): kernel %zux%zu does not fit input %zux%zu with "
                      "padding %s",
                      what, index, kh, kw, g->h, g->w, pbuf);
  }
  g->oc = g->c;
  return NNKIT_OK;
}

const nnkit__conv_geom *nnkit__layer_geom(const nnkit__layer *l)
{
  extern const nnkit__layer_kind nnkit__maxpool2d_kind, nnkit__avgpool2d_kind; /* pool.c */
  if (l->ops == &nnkit__conv2d_kind || l->ops == &nnkit__maxpool2d_kind ||
      l->ops == &nnkit__avgpool2d_kind)
    return (const nnkit__conv_geom *)l->state;
  return NULL;
}

int nnkit__conv_is_direct(const nnkit__layer *l)
{
  if (l->ops != &nnkit__conv2d_kind)
    return 0;
  const conv_state *s = l->state;
  if (!s->direct)
    return 0;
  int use = __atomic_load_n(&s->use_direct, __ATOMIC_ACQUIRE);
  if (use < 0) /* no forward yet: what the mode promises */
    return nnkit_get_kernels() != NNKIT_KERNELS_BLAS;
  return use;
}

/* ---- im2col / col2im --------------------------------------------------- */

/* Output columns [lo, hi) whose input column ox * sw + j - pl lies in [0, W). */
static void valid_cols(const nnkit__conv_geom *g, size_t j, size_t *lo,
                       size_t *hi)
{
  size_t l = g->pl > j ? (g->pl - j + g->sw - 1) / g->sw : 0;
  size_t h = g->w + g->pl > j ? (g->w + g->pl - j + g->sw - 1) / g->sw : 0;
  if (h > g->ow)
    h = g->ow;
  if (l > h)
    l = h;
  *lo = l;
  *hi = h;
}

/* Stride 1 with as many output as input columns (e.g. "same" padding):
 * the tap (i, j) of output k = oy * W + ox reads input k + shift with
 * shift = (i - pt) W + (j - pl), so a whole map is one flat copy plus
 * zeros where the read falls outside the map or wraps into the
 * neighbouring row (the first/last |j - pl| columns). */
static int flat_path(const nnkit__conv_geom *g)
{
  return g->sh == 1 && g->sw == 1 && g->ow == g->w;
}

/* The flat range [k0, k1) of outputs whose shifted read lies in the map. */
static void flat_range(const nnkit__conv_geom *g, size_t i, size_t j,
                       ptrdiff_t *shift, size_t *k0, size_t *k1)
{
  const ptrdiff_t P = (ptrdiff_t)(g->oh * g->ow), HW = (ptrdiff_t)(g->h * g->w);
  ptrdiff_t s = ((ptrdiff_t)i - (ptrdiff_t)g->pt) * (ptrdiff_t)g->w +
                ((ptrdiff_t)j - (ptrdiff_t)g->pl);
  ptrdiff_t lo = s < 0 ? -s : 0, hi = HW - s < P ? HW - s : P;
  if (hi < lo)
    hi = lo;
  *shift = s;
  *k0 = (size_t)lo;
  *k1 = (size_t)hi;
}

/* Zeroes the wrapped columns of a flat-path block [oh, ow] for tap column j. */
static void zero_wrapped(float *r, const nnkit__conv_geom *g, size_t j)
{
  if (j > g->pl) {
    size_t d = j - g->pl;
    for (size_t oy = 0; oy < g->oh; oy++)
      for (size_t q = g->ow - d; q < g->ow; q++)
        r[oy * g->ow + q] = 0.0f;
  } else if (j < g->pl) {
    size_t d = g->pl - j;
    for (size_t oy = 0; oy < g->oh; oy++)
      for (size_t q = 0; q < d && q < g->ow; q++)
        r[oy * g->ow + q] = 0.0f;
  }
}

/* col [K, P] from one sample x [C, H, W]. */
static void im2col(const float *x, float *col, const nnkit__conv_geom *g)
{
  const size_t P = g->oh * g->ow, HW = g->h * g->w;
  const int flat = flat_path(g);
  for (size_t c = 0; c < g->c; c++)
    for (size_t i = 0; i < g->kh; i++)
      for (size_t j = 0; j < g->kw; j++) {
        float *r = col + ((c * g->kh + i) * g->kw + j) * P;
        const float *xc = x + c * HW;
        if (flat) {
          ptrdiff_t shift;
          size_t k0, k1;
          flat_range(g, i, j, &shift, &k0, &k1);
          memset(r, 0, k0 * sizeof *r);
          memcpy(r + k0, xc + ((ptrdiff_t)k0 + shift), (k1 - k0) * sizeof *r);
          memset(r + k1, 0, (P - k1) * sizeof *r);
          zero_wrapped(r, g, j);
          continue;
        }
        size_t lo, hi;
        valid_cols(g, j, &lo, &hi);
        for (size_t oy = 0; oy < g->oh; oy++, r += g->ow) {
          size_t iy = oy * g->sh + i;
          if (iy < g->pt || iy - g->pt >= g->h) {
            memset(r, 0, g->ow * sizeof *r);
            continue;
          }
          const float *xr = xc + (iy - g->pt) * g->w;
          for (size_t ox = 0; ox < lo; ox++)
            r[ox] = 0.0f;
          if (hi > lo) {
            const float *src = xr + (lo * g->sw + j - g->pl);
            if (g->sw == 1) {
              memcpy(r + lo, src, (hi - lo) * sizeof *r);
            } else {
              for (size_t ox = lo, k = 0; ox < hi; ox++, k += g->sw)
                r[ox] = src[k];
            }
          }
          for (size_t ox = hi; ox < g->ow; ox++)
            r[ox] = 0.0f;
        }
      }
}

/* dx [C, H, W] += col2im(dcol [K, P]) for one sample. On the flat path
 * dcol's wrapped columns are zeroed first (dcol is scratch), so each map
 * is one flat, vectorizable add. */
static void col2im(float *dcol, float *dx, const nnkit__conv_geom *g)
{
  const size_t P = g->oh * g->ow, HW = g->h * g->w;
  const int flat = flat_path(g);
  for (size_t c = 0; c < g->c; c++)
    for (size_t i = 0; i < g->kh; i++)
      for (size_t j = 0; j < g->kw; j++) {
        float *r = dcol + ((c * g->kh + i) * g->kw + j) * P;
        float *xc = dx + c * HW;
        if (flat) {
          ptrdiff_t shift;
          size_t k0, k1;
          flat_range(g, i, j, &shift, &k0, &k1);
          float *dst = xc + ((ptrdiff_t)k0 + shift);
          zero_wrapped(r, g, j);
          for (size_t k = 0; k < k1 - k0; k++)
            dst[k] += r[k0 + k];
          continue;
        }
        size_t lo, hi;
        valid_cols(g, j, &lo, &hi);
        if (hi <= lo)
          continue;
        for (size_t oy = 0; oy < g->oh; oy++) {
          size_t iy = oy * g->sh + i;
          if (iy < g->pt || iy - g->pt >= g->h)
            continue;
          const float *ro = r + oy * g->ow;
          float *dst = xc + (iy - g->pt) * g->w + (lo * g->sw + j - g->pl);
          for (size_t ox = lo, k = 0; ox < hi; ox++, k += g->sw)
            dst[k] += ro[ox];
        }
      }
}

/* Sum of n floats: eight float lanes over blocks of 4096 (vectorized, no
 * serial dependency on one accumulator), the blocks added in double. */
static double row_sum(const float *r, size_t n)
{
  double sum = 0;
  for (size_t b = 0; b < n; b += 4096) {
    size_t e = n - b < 4096 ? n : b + 4096, p = b;
    float acc[8] = {0};
    for (; p + 8 <= e; p += 8)
      for (size_t j = 0; j < 8; j++)
        acc[j] += r[p + j];
    for (; p < e; p++)
      acc[0] += r[p];
    for (size_t j = 0; j < 8; j++)
      sum += acc[j];
  }
  return sum;
}

/* ---- direct path --------------------------------------------------------
 *
 * Stride 1 with padding below the kernel size, on CPUs with AVX2+FMA
 * (conv2d_direct.c). Per sample:
 *   forward   xp = x_i zero-padded, rows WP = OW + KW - 1 wide;
 *             yf [OC, QR] = bias + W . xp read at the K tap offsets;
 *             y_i = the first OW columns of each WP-wide row of yf
 *   backward  dyf = dy_i in yf's layout (garbage columns stay 0);
 *             dW += dyf . xp at the tap offsets;
 *             dyp = dy_i padded by KH-1-PT above and KW-1-PL on the left,
 *             rows WQ = W + KW - 1 wide; dxf [C, Q2R] = flip(W)^T . dyp;
 *             dx_i = the first W columns of each row of dxf
 * Padded buffers are zeroed once when allocated; only their interiors are
 * written afterwards. */

static void free_direct(conv_direct *d)
{
  nnkit__free(d->toff);
  nnkit__free(d->toff2);
  memset(d, 0, sizeof *d);
}

static size_t round_up(size_t n, size_t m)
{
  return (n + m - 1) / m * m;
}

/* Chooses the direct path for s when it applies; 0 when it does not (or
 * when the offsets would not fit in int32), NNKIT_E_NOMEM on failure. */
static nnkit_status direct_setup(conv_state *s, size_t index)
{
  const nnkit__conv_geom *g = &s->g;
  free_direct(&s->d);
  s->direct = 0;
  s->use_direct = -1;
  size_t hp = g->oh + g->kh - 1, wp = g->ow + g->kw - 1;
  if (g->sh != 1 || g->sw != 1 || !nnkit__direct_available() ||
      g->pt >= g->kh || g->pl >= g->kw || hp < g->h + g->pt ||
      wp < g->w + g->pl || hp - g->h - g->pt >= g->kh ||
      wp - g->w - g->pl >= g->kw)
    return NNKIT_OK;
  conv_direct *d = &s->d;
  size_t k = g->c * g->kh * g->kw, k2 = g->oc * g->kh * g->kw;
  d->wp = wp;
  d->sx = hp * wp;
  d->qr = round_up((g->oh - 1) * wp + g->ow, 8);
  d->wq = g->w + g->kw - 1;
  d->sq = (g->h + g->kh - 1) * d->wq;
  d->q2r = round_up((g->h - 1) * d->wq + g->w, 8);
  d->top = g->kh - 1 - g->pt;
  d->left = g->kw - 1 - g->pl;
  d->xp_len = g->c * d->sx + d->qr + 8;
  d->dyp_len = g->oc * d->sq + d->q2r + 8;
  if (d->xp_len > INT32_MAX / 2 || d->dyp_len > INT32_MAX / 2) {
    memset(d, 0, sizeof *d);
    return NNKIT_OK;
  }
  d->toff = nnkit__malloc(k * sizeof *d->toff);
  d->toff2 = nnkit__malloc(k2 * sizeof *d->toff2);
  if (!d->toff || !d->toff2) {
    free_direct(d);
    return nnkit__err(NNKIT_E_NOMEM, "conv2d (layer %zu): out of memory", index);
  }
  for (size_t c = 0, t = 0; c < g->c; c++)
    for (size_t i = 0; i < g->kh; i++)
      for (size_t j = 0; j < g->kw; j++)
        d->toff[t++] = (int32_t)(c * d->sx + i * wp + j);
  for (size_t o = 0, t = 0; o < g->oc; o++)
    for (size_t i = 0; i < g->kh; i++)
      for (size_t j = 0; j < g->kw; j++)
        d->toff2[t++] = (int32_t)(o * d->sq + i * d->wq + j);
  s->direct = 1;
  return NNKIT_OK;
}

/* p: W [OC, K] in blocks of NNKIT__DIRECT_MR rows (forward). */
static void pack_forward(const conv_state *s, const float *w, float *p)
{
  const nnkit__conv_geom *g = &s->g;
  const size_t k = g->c * g->kh * g->kw, mr = NNKIT__DIRECT_MR;
  for (size_t b = 0; b < g->oc; b += mr)
    for (size_t t = 0; t < k; t++)
      for (size_t r = b; r < b + mr; r++)
        *p++ = r < g->oc ? w[r * k + t] : 0.0f;
}

/* p: row c, tap (o, i, j) = W[o][c][KH-1-i][KW-1-j] (the transposed
 * convolution's flipped kernel), in blocks of NNKIT__DIRECT_MR rows. */
static void pack_backward(const conv_state *s, const float *w, float *p)
{
  const nnkit__conv_geom *g = &s->g;
  const size_t kh = g->kh, kw = g->kw, mr = NNKIT__DIRECT_MR;
  for (size_t b = 0; b < g->c; b += mr)
    for (size_t o = 0; o < g->oc; o++)
      for (size_t i = 0; i < kh; i++)
        for (size_t j = 0; j < kw; j++)
          for (size_t c = b; c < b + mr; c++)
            *p++ = c < g->c ? w[((o * g->c + c) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)]
                            : 0.0f;
}

/* Copies x_i [C, H, W] into the interior of xp. */
static void pad_input(const conv_state *s, const float *x, float *xp)
{
  const nnkit__conv_geom *g = &s->g;
  for (size_t c = 0; c < g->c; c++)
    nnkit__direct_copy_rows(xp + c * s->d.sx + g->pt * s->d.wp + g->pl, s->d.wp,
                            x + c * g->h * g->w, g->w, g->h, g->w);
}

/* ---- the layer --------------------------------------------------------- */

static nnkit_status conv_setup(nnkit__layer *l)
{
  conv_state *s = l->state;
  size_t oc = s->g.oc, kh = s->g.kh, kw = s->g.kw, sh = s->g.sh, sw = s->g.sw;
  nnkit__conv_geom g;
  nnkit_status st = nnkit__conv_geom_setup(&g, &l->in, kh, kw, sh, sw, s->ph,
                                           s->pw, "conv2d", l->index);
  if (st != NNKIT_OK)
    return st;
  g.oc = oc;
  int ovf = 0;
  size_t K = nnkit__mul_size(nnkit__mul_size(g.c, kh, &ovf), kw, &ovf);
  size_t P = nnkit__mul_size(g.oh, g.ow, &ovf);
  size_t kp = nnkit__mul_size(K, P, &ovf);
  size_t outn = nnkit__mul_size(oc, P, &ovf);
  size_t nw = nnkit__mul_size(oc, K, &ovf);
  if (ovf || kp > ((size_t)1 << 31) || outn > ((size_t)1 << 31) ||
      nw > ((size_t)1 << 31))
    return nnkit__err(NNKIT_E_SHAPE,
                      "conv2d (layer %zu): %zu -> %zu channels with kernel %zux%zu on "
                      "%zux%zu maps is too large (limit 2^31 values per sample)",
                      l->index, g.c, oc, kh, kw, g.h, g.w);
  s->g = g;
  l->out.ndim = 3;
  l->out.d[0] = oc;
  l->out.d[1] = g.oh;
  l->out.d[2] = g.ow;
  l->num_params = nw + (s->bias ? oc : 0);
  return direct_setup(s, l->index);
}

static void conv_fans(const nnkit__layer *l, size_t *fan_in, size_t *fan_out,
                      size_t *num_weights)
{
  const conv_state *s = l->state;
  const nnkit__conv_geom *g = &s->g;
  *fan_in = g->c * g->kh * g->kw;
  *fan_out = g->oc * g->kh * g->kw;
  *num_weights = g->oc * *fan_in;
}

static void free_ws(conv_state *s)
{
  for (int t = 0; t < s->nws; t++) {
    nnkit__free(s->ws[t].col);
    nnkit__free(s->ws[t].dcol);
    nnkit__free(s->ws[t].xp);
    nnkit__free(s->ws[t].yf);
    nnkit__free(s->ws[t].dyf);
    nnkit__free(s->ws[t].dyp);
    nnkit__free(s->ws[t].dxf);
    nnkit__free(s->ws[t].wpk);
    nnkit__free(s->ws[t].wpk2);
  }
  nnkit__free(s->ws);
  s->ws = NULL;
  s->nws = 0;
  for (int t = 0; t < s->nparts; t++)
    nnkit__free(s->parts[t]);
  nnkit__free(s->parts);
  s->parts = NULL;
  s->nparts = 0;
}

/* One workspace per thread and one gradient partial per task; the batch
 * size does not matter. */
static nnkit_status conv_reserve(nnkit__layer *l, size_t batch)
{
  (void)batch;
  conv_state *s = l->state;
  const nnkit__conv_geom *g = &s->g;
  int n = nnkit__num_threads(), tasks = nnkit__max_tasks();
  if (s->nws >= n && s->nparts >= tasks)
    return NNKIT_OK;
  free_ws(s);
  int ovf = 0;
  size_t kp = nnkit__mul_size(
      nnkit__mul_size(nnkit__mul_size(g->c, g->kh * g->kw, &ovf), g->oh * g->ow, &ovf),
      sizeof(float), &ovf);
  if (ovf)
    kp = SIZE_MAX; /* the allocations fail: NNKIT_E_NOMEM below */
  s->ws = nnkit__calloc((size_t)n, sizeof *s->ws);
  s->parts = nnkit__calloc((size_t)tasks, sizeof *s->parts);
  int ok = s->ws != NULL && s->parts != NULL;
  for (int t = 0; ok && t < tasks; t++) {
    s->nparts = t + 1;
    s->parts[t] = nnkit__calloc(l->num_params, sizeof(float));
    ok = s->parts[t] != NULL;
  }
  for (int t = 0; ok && t < n; t++) {
    conv_ws *w = &s->ws[t];
    s->nws = t + 1;
    w->col = nnkit__malloc(kp); /* im2col: the fallback, and a candidate */
    w->dcol = nnkit__malloc(kp);
    ok = w->col && w->dcol;
    if (ok && s->direct) {
      const conv_direct *d = &s->d;
      size_t k = g->c * g->kh * g->kw, k2 = g->oc * g->kh * g->kw;
      w->xp = nnkit__calloc(d->xp_len, sizeof(float));
      w->yf = nnkit__calloc(g->oc * d->qr, sizeof(float));
      w->dyf = nnkit__calloc(g->oc * d->qr, sizeof(float));
      w->dyp = nnkit__calloc(d->dyp_len, sizeof(float));
      w->dxf = nnkit__calloc(g->c * d->q2r, sizeof(float));
      w->wpk = nnkit__malloc(round_up(g->oc, NNKIT__DIRECT_MR) * k * sizeof(float));
      w->wpk2 = nnkit__malloc(round_up(g->c, NNKIT__DIRECT_MR) * k2 * sizeof(float));
      ok = w->xp && w->yf && w->dyf && w->dyp && w->dxf && w->wpk && w->wpk2;
    }
  }
  if (!ok) {
    free_ws(s);
    return nnkit__err(NNKIT_E_NOMEM,
                      "conv2d (layer %zu): out of memory for the workspaces of %d "
                      "threads", l->index, n);
  }
  return NNKIT_OK;
}

typedef struct conv_job {
  nnkit__layer *l;
  const float *x, *dy;
  float *y, *dx;
  size_t batch;
  int tasks; /* set by task 0: how many ran */
  int owned; /* the call runs inside a task that owns a slice of the batch:
              * gradient partials stay in the slot until conv_gather */
} conv_job;

/* A backward task's dW/db partial, one per task whichever thread runs it.
 * Partials are zero between backward calls; a task that owns slices
 * keeps accumulating until conv_gather. */
static float *task_part(conv_job *j, int t, int n)
{
  conv_state *s = j->l->state;
  if (t == 0)
    j->tasks = n;
  return s->parts[nnkit__task_part(t)];
}

/* Adds the partials of tasks [0, tasks) into l->grads in task order and
 * zeroes them. */
static void add_parts(nnkit__layer *l, int tasks)
{
  conv_state *s = l->state;
  for (int t = 0; t < tasks; t++) {
    float *part = s->parts[t];
    for (size_t k = 0; k < l->num_params; k++)
      l->grads[k] += part[k];
    memset(part, 0, l->num_params * sizeof *part);
  }
}

static void forward_task(void *ctx, int t, int n)
{
  conv_job *j = ctx;
  conv_state *s = j->l->state;
  const nnkit__conv_geom *g = &s->g;
  const size_t K = g->c * g->kh * g->kw, P = g->oh * g->ow, OC = g->oc;
  const size_t in = g->c * g->h * g->w, out = OC * P;
  const float *w = j->l->params, *bias = s->bias ? j->l->params + OC * K : NULL;
  float *col = s->ws[nnkit__task_slot()].col;
  size_t lo, hi;
  nnkit__split(j->batch, t, n, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    float *yi = j->y + i * out;
    for (size_t o = 0; o < OC; o++) {
      float bv = bias ? bias[o] : 0.0f;
      for (size_t p = 0; p < P; p++)
        yi[o * P + p] = bv;
    }
    im2col(j->x + i * in, col, g);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)OC, (int)P, (int)K,
                1.0f, w, (int)K, col, (int)P, 1.0f, yi, (int)P);
  }
}

static void backward_task(void *ctx, int t, int n)
{
  conv_job *j = ctx;
  nnkit__layer *l = j->l;
  conv_state *s = l->state;
  const nnkit__conv_geom *g = &s->g;
  const size_t K = g->c * g->kh * g->kw, P = g->oh * g->ow, OC = g->oc;
  const size_t in = g->c * g->h * g->w, out = OC * P;
  const float *w = l->params;
  float *dw = task_part(j, t, n);
  float *db = s->bias ? dw + OC * K : NULL;
  conv_ws *ws = &s->ws[nnkit__task_slot()];
  float *col = ws->col, *dcol = ws->dcol;
  size_t lo, hi;
  nnkit__split(j->batch, t, n, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    const float *dyi = j->dy + i * out;
    im2col(j->x + i * in, col, g);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)OC, (int)K, (int)P,
                1.0f, dyi, (int)P, col, (int)P, 1.0f, dw, (int)K);
    if (db)
      for (size_t o = 0; o < OC; o++)
        db[o] += (float)row_sum(dyi + o * P, P);
    if (!j->dx)
      continue;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)P, (int)OC,
                1.0f, w, (int)K, dyi, (int)P, 0.0f, dcol, (int)P);
    float *dxi = j->dx + i * in;
    memset(dxi, 0, in * sizeof *dxi);
    col2im(dcol, dxi, g);
  }
}

static void direct_forward_task(void *ctx, int t, int n)
{
  conv_job *j = ctx;
  const conv_state *s = j->l->state;
  const nnkit__conv_geom *g = &s->g;
  const conv_direct *d = &s->d;
  const size_t K = g->c * g->kh * g->kw, P = g->oh * g->ow, OC = g->oc;
  const size_t in = g->c * g->h * g->w, out = OC * P;
  const float *bias = s->bias ? j->l->params + OC * K : NULL;
  conv_ws *w = &s->ws[nnkit__task_slot()];
  size_t lo, hi;
  nnkit__split(j->batch, t, n, &lo, &hi);
  pack_forward(s, j->l->params, w->wpk);
  for (size_t i = lo; i < hi; i++) {
    pad_input(s, j->x + i * in, w->xp);
    nnkit__direct_corr(w->yf, d->qr, OC, w->xp, d->toff, K, w->wpk, bias, d->qr);
    float *yi = j->y + i * out;
    for (size_t o = 0; o < OC; o++)
      nnkit__direct_copy_rows(yi + o * P, g->ow, w->yf + o * d->qr, d->wp, g->oh,
                              g->ow);
  }
}

static void direct_backward_task(void *ctx, int t, int n)
{
  conv_job *j = ctx;
  const conv_state *s = j->l->state;
  const nnkit__conv_geom *g = &s->g;
  const conv_direct *d = &s->d;
  const size_t K = g->c * g->kh * g->kw, P = g->oh * g->ow, OC = g->oc;
  const size_t in = g->c * g->h * g->w, out = OC * P;
  conv_ws *w = &s->ws[nnkit__task_slot()];
  float *dw = task_part(j, t, n);
  if (j->dx)
    pack_backward(s, j->l->params, w->wpk2);
  size_t lo, hi;
  nnkit__split(j->batch, t, n, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    const float *dyi = j->dy + i * out;
    pad_input(s, j->x + i * in, w->xp);
    for (size_t o = 0; o < OC; o++)
      nnkit__direct_copy_rows(w->dyf + o * d->qr, d->wp, dyi + o * P, g->ow, g->oh,
                              g->ow);
    nnkit__direct_dw(dw, w->dyf, d->qr, OC, w->xp, d->toff, K, d->qr);
    if (s->bias)
      nnkit__direct_row_sums(dw + OC * K, dyi, OC, P);
    if (!j->dx)
      continue;
    for (size_t o = 0; o < OC; o++)
      nnkit__direct_copy_rows(w->dyp + o * d->sq + d->top * d->wq + d->left, d->wq,
                              dyi + o * P, g->ow, g->oh, g->ow);
    nnkit__direct_corr(w->dxf, d->q2r, g->c, w->dyp, d->toff2, OC * g->kh * g->kw,
                       w->wpk2, NULL, d->q2r);
    float *dxi = j->dx + i * in;
    for (size_t c = 0; c < g->c; c++)
      nnkit__direct_copy_rows(dxi + c * g->h * g->w, g->w, w->dxf + c * d->q2r, d->wq,
                              g->h, g->w);
  }
}

static int conv_tasks(const nnkit__layer *l, size_t batch)
{
  const conv_state *s = l->state;
  const nnkit__conv_geom *g = &s->g;
  double macs = (double)batch * (double)(g->c * g->kh * g->kw) * (double)g->oc *
                (double)(g->oh * g->ow);
  int n = nnkit__tasks_for(macs);
  return n < s->nws ? n : s->nws;
}

/* ---- choosing the path by measurement ------------------------------------
 * Where the direct path can run, the first forward at a thread count times
 * it against im2col + sgemm (nnkit__choose) on up to PICK_SAMPLES of the
 * real samples, forward and backward (dx too, unless the layer is the
 * first), in the calling thread's slot: the real shapes and working
 * memory, one thread's share. The trial writes y (the real forward
 * overwrites it next), its own dx scratch and the slot's gradient
 * partial, which it zeroes again (partials are zero between passes). */
#define PICK_SAMPLES 8

typedef struct conv_trial {
  nnkit__layer *l;
  const float *x;
  float *y, *dx;
  size_t m;
} conv_trial;

static void conv_candidate(void *ctx, int k)
{
  const conv_trial *c = ctx;
  conv_job f = {c->l, c->x, NULL, c->y, NULL, c->m, 0, 1};
  conv_job b = {c->l, c->x, c->y, NULL, c->dx, c->m, 0, 1};
  if (k == 0) {
    direct_forward_task(&f, 0, 1);
    direct_backward_task(&b, 0, 1);
  } else {
    forward_task(&f, 0, 1);
    backward_task(&b, 0, 1);
  }
}

static void conv_key(const nnkit__layer *l, char *buf, size_t len)
{
  const nnkit__conv_geom *g = &((const conv_state *)l->state)->g;
  snprintf(buf, len, "conv2d %zux%zux%zu->%zux%zux%zu k%zux%zu t%d", g->c, g->h, g->w,
           g->oc, g->oh, g->ow, g->kh, g->kw, nnkit__num_threads());
}

static const char *const conv_paths[] = {"direct", "im2col"};

static int pick_direct(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  conv_state *s = l->state;
  int use = 0;
  if (s->direct) {
    char key[128];
    conv_key(l, key, sizeof key);
    int k = nnkit__choice_known(key, 2);
    if (k < 0) { /* the first forward on this geometry and thread count */
      const nnkit__conv_geom *g = &s->g;
      size_t m = batch < PICK_SAMPLES ? batch : PICK_SAMPLES;
      float *dx = l->index ? nnkit__malloc(m * g->c * g->h * g->w * sizeof(float)) : NULL;
      conv_trial c = {l, x, y, dx, m};
      k = nnkit__choose(key, 2, conv_paths, conv_candidate, &c);
      nnkit__free(dx);
      memset(s->parts[nnkit__task_part(0)], 0, l->num_params * sizeof(float));
    }
    use = k == 0;
  }
  __atomic_store_n(&s->use_direct, use, __ATOMIC_RELEASE);
  return use;
}

static void conv_forward(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  conv_job j = {l, x, NULL, y, NULL, batch, 0, 0};
  nnkit__parallel(pick_direct(l, x, y, batch) ? direct_forward_task : forward_task, &j,
                  conv_tasks(l, batch));
}

static void conv_backward(nnkit__layer *l, const float *x, const float *y,
                          const float *dy, float *dx, size_t batch)
{
  (void)y;
  conv_job j = {l, x, dy, NULL, dx, batch, 0, nnkit__in_task()};
  nnkit__parallel(nnkit__conv_is_direct(l) ? direct_backward_task : backward_task, &j,
                  conv_tasks(l, batch));
  if (!j.owned)
    add_parts(l, j.tasks); /* partials in task order */
}

/* After tasks owned slices: every task's partial, in task order. */
static void conv_gather(nnkit__layer *l)
{
  conv_state *s = l->state;
  add_parts(l, s->nparts);
}

static void conv_describe(const nnkit__layer *l, char *buf, size_t len)
{
  const conv_state *s = l->state;
  const nnkit__conv_geom *g = &s->g;
  char ins[64], outs[64], pads[48], strides[48];
  nnkit__shape_text(&l->in, ins, sizeof ins);
  nnkit__shape_text(&l->out, outs, sizeof outs);
  pad_text(pads, sizeof pads, s->ph, s->pw);
  if (g->sh == g->sw)
    snprintf(strides, sizeof strides, "%zu", g->sh);
  else
    snprintf(strides, sizeof strides, "%zux%zu", g->sh, g->sw);
  snprintf(buf, len, "conv2d %s -> %s, kernel %zux%zu, stride %s, pad %s%s (%zu params)",
           ins, outs, g->kh, g->kw, strides, pads, s->bias ? "" : ", no bias",
           l->num_params);
}

static double conv_macs(const nnkit__layer *l)
{
  const nnkit__conv_geom *g = &((const conv_state *)l->state)->g;
  return (double)(g->c * g->kh * g->kw) * (double)g->oc * (double)(g->oh * g->ow);
}

static void conv_kernel(const nnkit__layer *l, char *buf, size_t len)
{
  const conv_state *s = l->state;
  char key[128];
  conv_key(l, key, sizeof key);
  if (s->direct)
    nnkit__choice_explain(key, 2, conv_paths, 1, buf, len);
  else
    snprintf(buf, len, "im2col (the direct path needs stride 1, padding below the "
                       "kernel size and a CPU with AVX2 and FMA)");
}

static void conv_destroy(nnkit__layer *l)
{
  conv_state *s = l->state;
  if (!s)
    return;
  free_ws(s);
  free_direct(&s->d);
  nnkit__free(s);
  l->state = NULL;
}


NNKIT_API nnkit_status nnkit_net_add_conv2d(nnkit_net *net, size_t out_channels,
                                            size_t kernel_h, size_t kernel_w,
                                            size_t stride_h, size_t stride_w,
                                            size_t pad_h, size_t pad_w, int bias)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_add_conv2d: net is NULL");
  size_t idx = net->num_layers;
  if (out_channels == 0 || out_channels > MAX_COUNT)
    return nnkit__err(NNKIT_E_INVALID,
                      "conv2d (layer %zu): %zu output channels is outside [1, 2^16]",
                      idx, out_channels);
  if (kernel_h == 0 || kernel_w == 0 || kernel_h > MAX_COUNT || kernel_w > MAX_COUNT)
    return nnkit__err(NNKIT_E_INVALID,
                      "conv2d (layer %zu): kernel %zux%zu needs sizes in [1, 2^16]",
                      idx, kernel_h, kernel_w);
  if (stride_h == 0 || stride_w == 0 || stride_h > MAX_COUNT || stride_w > MAX_COUNT)
    return nnkit__err(NNKIT_E_INVALID,
                      "conv2d (layer %zu): stride %zux%zu needs sizes in [1, 2^16]",
                      idx, stride_h, stride_w);
  if ((pad_h != NNKIT_PAD_SAME && pad_h > MAX_COUNT) ||
      (pad_w != NNKIT_PAD_SAME && pad_w > MAX_COUNT))
    return nnkit__err(NNKIT_E_INVALID,
                      "conv2d (layer %zu): padding %zux%zu is above 2^16; pass a "
                      "size or NNKIT_PAD_SAME", idx, pad_h, pad_w);
  conv_state *s = nnkit__calloc(1, sizeof *s);
  if (!s)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_add_conv2d: out of memory");
  s->g.oc = out_channels;
  s->g.kh = kernel_h;
  s->g.kw = kernel_w;
  s->g.sh = stride_h;
  s->g.sw = stride_w;
  s->ph = pad_h;
  s->pw = pad_w;
  s->bias = bias != 0;
  nnkit__layer l = {0};
  l.ops = &nnkit__conv2d_kind;
  l.state = s;
  return nnkit__net_add_layer(net, &l);
}

/* ---- model files: weight [oc, c, kh, kw], bias [oc] when it has one ----- */


static void conv_get_args(const nnkit__layer *l, double *v)
{
  const conv_state *s = l->state;
  v[0] = (double)s->g.oc;
  v[1] = (double)s->g.kh;
  v[2] = (double)s->g.kw;
  v[3] = (double)s->g.sh;
  v[4] = (double)s->g.sw;
  v[5] = nnkit__size_arg(s->ph); /* as requested: NNKIT_PAD_SAME stays "same" */
  v[6] = nnkit__size_arg(s->pw);
  v[7] = s->bias;
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
  const conv_state *s = l->state;
  const nnkit__conv_geom *g = &s->g;
  size_t nw = g->oc * g->c * g->kh * g->kw;
  t[0] = (nnkit__tensor){"weight", l->params, 4, {g->oc, g->c, g->kh, g->kw},
                         NNKIT__ROLE_WEIGHT, NULL};
  if (!s->bias)
    return 1;
  t[1] = (nnkit__tensor){"bias", l->params + nw, 1, {g->oc}, NNKIT__ROLE_BIAS, NULL};
  return 2;
}


/* ---- plain-loop twins -------------------------------------------------- */

/* Input index of output (oy, ox) and kernel tap (i, j), or -1 in padding. */
static ptrdiff_t tap(const nnkit__conv_geom *g, size_t oy, size_t ox, size_t i,
                     size_t j)
{
  ptrdiff_t iy = (ptrdiff_t)(oy * g->sh + i) - (ptrdiff_t)g->pt;
  ptrdiff_t ix = (ptrdiff_t)(ox * g->sw + j) - (ptrdiff_t)g->pl;
  if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)g->h || ix >= (ptrdiff_t)g->w)
    return -1;
  return iy * (ptrdiff_t)g->w + ix;
}

void nnkit__conv2d_forward_naive(const float *x, const float *w, const float *b,
                                 float *y, size_t batch, const nnkit__conv_geom *g)
{
  const size_t HW = g->h * g->w, P = g->oh * g->ow;
  for (size_t n = 0; n < batch; n++)
    for (size_t o = 0; o < g->oc; o++)
      for (size_t oy = 0; oy < g->oh; oy++)
        for (size_t ox = 0; ox < g->ow; ox++) {
          double sum = b ? b[o] : 0.0;
          for (size_t c = 0; c < g->c; c++)
            for (size_t i = 0; i < g->kh; i++)
              for (size_t j = 0; j < g->kw; j++) {
                ptrdiff_t t = tap(g, oy, ox, i, j);
                if (t >= 0)
                  sum += (double)x[(n * g->c + c) * HW + (size_t)t] *
                         w[((o * g->c + c) * g->kh + i) * g->kw + j];
              }
          y[(n * g->oc + o) * P + oy * g->ow + ox] = (float)sum;
        }
}

void nnkit__conv2d_backward_naive(const float *x, const float *w,
                                  const float *dy, float *dx, float *dw,
                                  float *db, size_t batch,
                                  const nnkit__conv_geom *g)
{
  /* Sums in double, so the twin is a reference for long reductions too. */
  const size_t HW = g->h * g->w, P = g->oh * g->ow;
  const size_t nw = g->oc * g->c * g->kh * g->kw, nx = batch * g->c * HW;
  double *sw = nnkit__calloc(nw + g->oc + (dx ? nx : 0), sizeof *sw);
  if (!sw)
    return;
  double *sb = sw + nw, *sx = sb + g->oc;
  for (size_t n = 0; n < batch; n++)
    for (size_t o = 0; o < g->oc; o++)
      for (size_t oy = 0; oy < g->oh; oy++)
        for (size_t ox = 0; ox < g->ow; ox++) {
          double d = dy[(n * g->oc + o) * P + oy * g->ow + ox];
          sb[o] += d;
          for (size_t c = 0; c < g->c; c++)
            for (size_t i = 0; i < g->kh; i++)
              for (size_t j = 0; j < g->kw; j++) {
                ptrdiff_t t = tap(g, oy, ox, i, j);
                if (t < 0)
                  continue;
                size_t wi = ((o * g->c + c) * g->kh + i) * g->kw + j;
                size_t xi = (n * g->c + c) * HW + (size_t)t;
                sw[wi] += d * x[xi];
                if (dx)
                  sx[xi] += d * w[wi];
              }
        }
  for (size_t i = 0; i < nw; i++)
    dw[i] = (float)sw[i];
  if (db)
    for (size_t o = 0; o < g->oc; o++)
      db[o] = (float)sb[o];
  if (dx)
    for (size_t i = 0; i < nx; i++)
      dx[i] = (float)sx[i];
  nnkit__free(sw);
}

/* ---- the descriptor ---- */

static const nnkit__spec conv_opts[] = {
  {0, NNKIT_LAYER_OUT_CHANNELS, "out_channels", 1, 65536, 1, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_KERNEL_H, "kernel_h", 1, 65536, 3, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_KERNEL_W, "kernel_w", 1, 65536, 3, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_STRIDE_H, "stride_h", 1, 65536, 1, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_STRIDE_W, "stride_w", 1, 65536, 1, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_PAD_H, "pad_h", -1, 65536, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_PAD_W, "pad_w", -1, 65536, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_BIAS, "bias", 0, 1, 1, NNKIT_BOUND_INTEGER},
};

const nnkit__layer_kind nnkit__conv2d_kind = {
  .name = "conv2d",
  .opts = conv_opts,
  .num_opts = 8,
  .get_opts = conv_get_args,
  .add = conv_add,
  .tensors = conv_tensors,
  .setup = conv_setup,
  .fans = conv_fans,
  .forward = conv_forward,
  .backward = conv_backward,
  .init = NULL,
  .describe = conv_describe,
  .destroy = conv_destroy,
  .reserve = conv_reserve,
  .macs = conv_macs,
  .kernel = conv_kernel,
  .slice_ok = 1,
  .gather = conv_gather,
  .backward_ignores_y = 1,
};

