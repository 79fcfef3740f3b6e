/* Pooling over NCHW feature maps: max pooling, average pooling (padding
 * zeros counted, PyTorch's count_include_pad=True) and global average
 * pooling. Three ops tables sharing the window geometry of conv2d.c.
 *
 *   x [B, C, H, W]  ->  y [B, C, OH, OW]   (global: y [B, C])
 *
 * Max pooling remembers the position of each window's maximum (int32 per
 * output, sized by the reserve hook) and backward routes dy there. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

extern const nnkit__layer_kind nnkit__maxpool2d_kind; /* below */
extern const nnkit__layer_kind nnkit__avgpool2d_kind; /* below */
extern const nnkit__layer_kind nnkit__global_avgpool_kind; /* below */

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_COUNT ((size_t)1 << 16)

typedef struct pool_state {
  nnkit__conv_geom g; /* first member: nnkit__layer_geom() relies on it */
  size_t ph, pw;      /* padding as requested (NNKIT_PAD_SAME kept) */
  size_t cap;         /* samples `arg` holds */
  int32_t *arg;       /* max pooling: argmax in the channel map per output */
} pool_state;

/* Kernel rows [*i0, *i1) of output row o that fall inside [0, n). */
static void window(size_t o, size_t s, size_t before, size_t k, size_t n,
                   size_t *i0, size_t *i1, size_t *start)
{
  ptrdiff_t first = (ptrdiff_t)(o * s) - (ptrdiff_t)before;
  ptrdiff_t lo = first < 0 ? -first : 0;
  ptrdiff_t hi = (ptrdiff_t)n - first;
  if (hi > (ptrdiff_t)k)
    hi = (ptrdiff_t)k;
  if (hi < lo)
    hi = lo;
  *i0 = (size_t)lo;
  *i1 = (size_t)hi;
  *start = (size_t)(first + lo); /* input index of tap *i0 */
}

static nnkit_status pool_setup(nnkit__layer *l)
{
  pool_state *s = l->state;
  nnkit__conv_geom g;
  nnkit_status st = nnkit__conv_geom_setup(&g, &l->in, s->g.kh, s->g.kw, s->g.sh,
                                           s->g.sw, s->ph, s->pw, l->ops->name,
                                           l->index);
  if (st != NNKIT_OK)
    return st;
  s->g = g;
  l->out.ndim = 3;
  l->out.d[0] = g.c;
  l->out.d[1] = g.oh;
  l->out.d[2] = g.ow;
  l->num_params = 0;
  return NNKIT_OK;
}

static nnkit_status maxpool_reserve(nnkit__layer *l, size_t batch)
{
  pool_state *s = l->state;
  if (batch <= s->cap)
    return NNKIT_OK;
  int ovf = 0;
  size_t n = nnkit__mul_size(nnkit__mul_size(batch, nnkit__shape_size(&l->out), &ovf),
                             sizeof(int32_t), &ovf);
  int32_t *a = ovf ? NULL : nnkit__malloc(n);
  if (!a)
    return nnkit__err(NNKIT_E_NOMEM,
                      "maxpool2d (layer %zu): out of memory for a batch of %zu",
                      l->index, batch);
  nnkit__free(s->arg);
  s->arg = a;
  s->cap = batch;
  return NNKIT_OK;
}

/* Max of a window of rows x cols values starting at r (row stride w):
 * the first maximum, or the first NaN (PyTorch's rule). Branch-free
 * selection: the comparisons are data-dependent and would mispredict. */
static inline float window_max(const float *r, size_t rows, size_t cols, size_t w,
                               size_t base, size_t *where)
{
  float best = r[0];
  size_t at = base;
  int seen_nan = isnan(best);
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++) {
      float v = r[i * w + j];
      int take = (!seen_nan) & ((v > best) | isnan(v));
      best = take ? v : best;
      at = take ? base + i * w + j : at;
      seen_nan |= isnan(v);
    }
  *where = at;
  return best;
}

/* One output row of 2x2 / stride 2 max pooling: the rows r0 and r0 + w of
 * the input, ow outputs and their argmax (base + offset in the map). Only
 * selects, no branches (SSE2 where the target has it, the plain loop
 * otherwise). Returns nonzero
 * when a NaN was seen: the caller then redoes the row with window_max()
 * (the first NaN wins, PyTorch's rule); otherwise the first maximum in
 * a, b, c, d order wins, as there. */
static int max2x2_row(const float *restrict r0, size_t w, float *restrict y,
                      int32_t *restrict at, size_t ow, int32_t base)
{
  const float *restrict r1 = r0 + w;
  const int32_t iw = (int32_t)w;
  int nan = 0;
  size_t ox = 0;
#ifdef __SSE2__
  /* Four outputs at a time; a row whose length is not a multiple of four
   * ends with one more group overlapping the previous one (recomputing an
   * output is harmless), so maps of width 7 or 14 have no scalar tail. */
  if (ow >= 4) {
    const __m128i step = _mm_set_epi32(6, 4, 2, 0), wv = _mm_set1_epi32(iw);
    __m128i bad = _mm_setzero_si128();
    for (size_t g = 0;; g += 4) {
      if (g + 4 > ow)
        g = ow - 4;
      __m128 t0 = _mm_loadu_ps(r0 + 2 * g), t1 = _mm_loadu_ps(r0 + 2 * g + 4);
      __m128 u0 = _mm_loadu_ps(r1 + 2 * g), u1 = _mm_loadu_ps(r1 + 2 * g + 4);
      __m128 a = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));
      __m128 b = _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1));
      __m128 c = _mm_shuffle_ps(u0, u1, _MM_SHUFFLE(2, 0, 2, 0));
      __m128 d = _mm_shuffle_ps(u0, u1, _MM_SHUFFLE(3, 1, 3, 1));
      __m128i o = _mm_add_epi32(_mm_set1_epi32(base + 2 * (int32_t)g), step);
      __m128 bab = _mm_cmpgt_ps(b, a), dcd = _mm_cmpgt_ps(d, c);
      __m128 mab = _mm_or_ps(_mm_and_ps(bab, b), _mm_andnot_ps(bab, a));
      __m128 mcd = _mm_or_ps(_mm_and_ps(dcd, d), _mm_andnot_ps(dcd, c));
      __m128i iab = _mm_sub_epi32(o, _mm_castps_si128(bab)); /* mask -1 adds 1 */
      __m128i icd = _mm_sub_epi32(_mm_add_epi32(o, wv), _mm_castps_si128(dcd));
      __m128 low = _mm_cmpgt_ps(mcd, mab);
      __m128i lowi = _mm_castps_si128(low);
      _mm_storeu_ps(y + g, _mm_or_ps(_mm_and_ps(low, mcd), _mm_andnot_ps(low, mab)));
      _mm_storeu_si128((__m128i *)(void *)(at + g),
                       _mm_or_si128(_mm_and_si128(lowi, icd), _mm_andnot_si128(lowi, iab)));
      bad = _mm_or_si128(bad, _mm_castps_si128(_mm_or_ps(_mm_cmpunord_ps(a, b),
                                                         _mm_cmpunord_ps(c, d))));
      if (g + 4 >= ow)
        break;
    }
    nan = _mm_movemask_epi8(bad) != 0;
    ox = ow;
  }
#endif
  for (; ox < ow; ox++) {
    float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
    int32_t o = base + 2 * (int32_t)ox;
    float mab = b > a ? b : a, mcd = d > c ? d : c;
    int32_t iab = b > a ? o + 1 : o, icd = d > c ? o + iw + 1 : o + iw;
    y[ox] = mcd > mab ? mcd : mab;
    at[ox] = mcd > mab ? icd : iab;
    nan |= (a != a) | (b != b) | (c != c) | (d != d);
  }
  return nan;
}

/* Max pooling's maps are split over nnkit's threads. */
typedef struct pool_job {
  nnkit__layer *l;
  const float *x, *dy;
  float *y, *dx;
  size_t maps; /* batch x channels */
} pool_job;

static void maxpool_forward_task(void *ctx, int t, int n)
{
  const pool_job *j = ctx;
  pool_state *s = j->l->state;
  const nnkit__conv_geom *g = &s->g;
  const size_t HW = g->h * g->w, P = g->oh * g->ow;
  /* (SAME padding on an odd size pads after the input: the last window
   * is clipped, so that case takes the general path.) */
  const int k2s2 = g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 &&
                   g->pt == 0 && g->pl == 0 && 2 * g->oh <= g->h &&
                   2 * g->ow <= g->w;
  const size_t first = nnkit__net_slice0() * g->c; /* maps before this slice */
  size_t lo, hi;
  nnkit__split(j->maps, t, n, &lo, &hi);
  for (size_t m = lo; m < hi; m++) {
    const float *xc = j->x + m * HW;
    float *yc = j->y + m * P;
    int32_t *ac = s->arg + (first + m) * P;
    if (k2s2) { /* the common 2x2 / stride 2 case, no window clipping */
      for (size_t oy = 0; oy < g->oh; oy++) {
        size_t base = 2 * oy * g->w;
        if (!max2x2_row(xc + base, g->w, yc + oy * g->ow, ac + oy * g->ow, g->ow,
                        (int32_t)base))
          continue;
        for (size_t ox = 0; ox < g->ow; ox++) { /* a NaN in the row */
          size_t where;
          yc[oy * g->ow + ox] = window_max(xc + base + 2 * ox, 2, 2, g->w,
                                           base + 2 * ox, &where);
          ac[oy * g->ow + ox] = (int32_t)where;
        }
      }
      continue;
    }
    for (size_t oy = 0; oy < g->oh; oy++) {
      size_t i0, i1, y0;
      window(oy, g->sh, g->pt, g->kh, g->h, &i0, &i1, &y0);
      for (size_t ox = 0; ox < g->ow; ox++) {
        size_t j0, j1, x0, at;
        window(ox, g->sw, g->pl, g->kw, g->w, &j0, &j1, &x0);
        yc[oy * g->ow + ox] = window_max(xc + y0 * g->w + x0, i1 - i0, j1 - j0, g->w,
                                         y0 * g->w + x0, &at);
        ac[oy * g->ow + ox] = (int32_t)at;
      }
    }
  }
}

static void maxpool_backward_task(void *ctx, int t, int n)
{
  const pool_job *j = ctx;
  const pool_state *s = j->l->state;
  const nnkit__conv_geom *g = &s->g;
  const size_t HW = g->h * g->w, P = g->oh * g->ow;
  const size_t first = nnkit__net_slice0() * g->c; /* maps before this slice */
  size_t lo, hi;
  nnkit__split(j->maps, t, n, &lo, &hi);
  memset(j->dx + lo * HW, 0, (hi - lo) * HW * sizeof(float));
  for (size_t m = lo; m < hi; m++) {
    float *dxc = j->dx + m * HW;
    const float *dyc = j->dy + m * P;
    const int32_t *ac = s->arg + (first + m) * P;
    for (size_t p = 0; p < P; p++)
      dxc[ac[p]] += dyc[p];
  }
}

static int pool_tasks(const nnkit__layer *l, size_t batch)
{
  return nnkit__tasks_for((double)batch * (double)nnkit__shape_size(&l->in) / 10.0);
}

static void maxpool_forward(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  const pool_state *s = l->state;
  pool_job j = {l, x, NULL, y, NULL, batch * s->g.c};
  nnkit__parallel(maxpool_forward_task, &j, pool_tasks(l, batch));
}

static void maxpool_backward(nnkit__layer *l, const float *x, const float *y,
                             const float *dy, float *dx, size_t batch)
{
  (void)x;
  (void)y;
  if (!dx)
    return;
  const pool_state *s = l->state;
  pool_job j = {l, NULL, dy, NULL, dx, batch * s->g.c};
  nnkit__parallel(maxpool_backward_task, &j, pool_tasks(l, batch));
}

static void avgpool_forward(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  pool_state *s = l->state;
  const nnkit__conv_geom *g = &s->g;
  const size_t HW = g->h * g->w, P = g->oh * g->ow;
  const float inv = 1.0f / (float)(g->kh * g->kw);
  for (size_t m = 0; m < batch * g->c; m++) {
    const float *xc = x + m * HW;
    float *yc = y + m * P;
    for (size_t oy = 0; oy < g->oh; oy++) {
      size_t i0, i1, y0;
      window(oy, g->sh, g->pt, g->kh, g->h, &i0, &i1, &y0);
      for (size_t ox = 0; ox < g->ow; ox++) {
        size_t j0, j1, x0;
        window(ox, g->sw, g->pl, g->kw, g->w, &j0, &j1, &x0);
        float sum = 0.0f;
        for (size_t i = 0; i < i1 - i0; i++) {
          const float *r = xc + (y0 + i) * g->w + x0;
          for (size_t j = 0; j < j1 - j0; j++)
            sum += r[j];
        }
        yc[oy * g->ow + ox] = sum * inv;
      }
    }
  }
}

static void avgpool_backward(nnkit__layer *l, const float *x, const float *y,
                             const float *dy, float *dx, size_t batch)
{
  (void)x;
  (void)y;
  if (!dx)
    return;
  pool_state *s = l->state;
  const nnkit__conv_geom *g = &s->g;
  const size_t HW = g->h * g->w, P = g->oh * g->ow;
  const float inv = 1.0f / (float)(g->kh * g->kw);
  memset(dx, 0, batch * g->c * HW * sizeof *dx);
  for (size_t m = 0; m < batch * g->c; m++) {
    float *dxc = dx + m * HW;
    const float *dyc = dy + m * P;
    for (size_t oy = 0; oy < g->oh; oy++) {
      size_t i0, i1, y0;
      window(oy, g->sh, g->pt, g->kh, g->h, &i0, &i1, &y0);
      for (size_t ox = 0; ox < g->ow; ox++) {
        size_t j0, j1, x0;
        window(ox, g->sw, g->pl, g->kw, g->w, &j0, &j1, &x0);
        float d = dyc[oy * g->ow + ox] * inv;
        for (size_t i = 0; i < i1 - i0; i++) {
          float *r = dxc + (y0 + i) * g->w + x0;
          for (size_t j = 0; j < j1 - j0; j++)
            r[j] += d;
        }
      }
    }
  }
}

static void pool_describe(const nnkit__layer *l, char *buf, size_t len)
{
  const pool_state *s = l->state;
  const nnkit__conv_geom *g = &s->g;
  char ins[64], outs[64], pads[48];
  nnkit__shape_text(&l->in, ins, sizeof ins);
  nnkit__shape_text(&l->out, outs, sizeof outs);
  if (s->ph == NNKIT_PAD_SAME && s->pw == NNKIT_PAD_SAME)
    snprintf(pads, sizeof pads, "same");
  else if (s->ph == s->pw)
    snprintf(pads, sizeof pads, "%zu", s->ph);
  else
    snprintf(pads, sizeof pads, "%zux%zu", g->pt, g->pl);
  if (g->sh == g->sw)
    snprintf(buf, len, "%s %s -> %s, kernel %zux%zu, stride %zu, pad %s",
             l->ops->name, ins, outs, g->kh, g->kw, g->sh, pads);
  else
    snprintf(buf, len, "%s %s -> %s, kernel %zux%zu, stride %zux%zu, pad %s",
             l->ops->name, ins, outs, g->kh, g->kw, g->sh, g->sw, pads);
}

static void pool_destroy(nnkit__layer *l)
{
  pool_state *s = l->state;
  if (!s)
    return;
  nnkit__free(s->arg);
  nnkit__free(s);
  l->state = NULL;
}



static nnkit_status add_pool(nnkit_net *net, const nnkit__layer_kind *ops,
                             size_t kh, size_t kw, size_t sh, size_t sw,
                             size_t ph, size_t pw)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_add_%s: net is NULL", ops->name);
  size_t idx = net->num_layers;
  if (kh == 0 || kw == 0 || kh > MAX_COUNT || kw > MAX_COUNT)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s (layer %zu): kernel %zux%zu needs sizes in [1, 2^16]",
                      ops->name, idx, kh, kw);
  if (sh == 0)
    sh = kh;
  if (sw == 0)
    sw = kw;
  if (sh > MAX_COUNT || sw > MAX_COUNT)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s (layer %zu): stride %zux%zu is above 2^16", ops->name, idx,
                      sh, sw);
  if ((ph != NNKIT_PAD_SAME && ph > kh / 2) || (pw != NNKIT_PAD_SAME && pw > kw / 2))
    return nnkit__err(NNKIT_E_INVALID,
                      "%s (layer %zu): padding %zux%zu is more than half the kernel "
                      "%zux%zu; windows would lie entirely in the padding",
                      ops->name, idx, ph, pw, kh, kw);
  pool_state *s = nnkit__calloc(1, sizeof *s);
  if (!s)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_add_%s: out of memory", ops->name);
  s->g.kh = kh;
  s->g.kw = kw;
  s->g.sh = sh;
  s->g.sw = sw;
  s->ph = ph;
  s->pw = pw;
  nnkit__layer l = {0};
  l.ops = ops;
  l.state = s;
  return nnkit__net_add_layer(net, &l);
}

NNKIT_API nnkit_status nnkit_net_add_maxpool2d(nnkit_net *net, size_t kernel_h,
                                               size_t kernel_w, size_t stride_h,
                                               size_t stride_w, size_t pad_h,
                                               size_t pad_w)
{
  return add_pool(net, &nnkit__maxpool2d_kind, kernel_h, kernel_w, stride_h, stride_w,
                  pad_h, pad_w);
}

NNKIT_API nnkit_status nnkit_net_add_avgpool2d(nnkit_net *net, size_t kernel_h,
                                               size_t kernel_w, size_t stride_h,
                                               size_t stride_w, size_t pad_h,
                                               size_t pad_w)
{
  return add_pool(net, &nnkit__avgpool2d_kind, kernel_h, kernel_w, stride_h, stride_w,
                  pad_h, pad_w);
}

/* ---- global average pooling: [C, H, W] -> [C] ------------------------- */

static nnkit_status gap_setup(nnkit__layer *l)
{
  if (l->in.ndim != 2 && l->in.ndim != 3) {
    char sbuf[64];
    nnkit__shape_text(&l->in, sbuf, sizeof sbuf);
    return nnkit__err(NNKIT_E_SHAPE,
                      "global_avgpool (layer %zu): needs feature maps [channels, "
                      "height, width], got an input of shape [%s]",
                      l->index, sbuf);
  }
  l->out.ndim = 1;
  l->out.d[0] = l->in.ndim == 3 ? l->in.d[0] : 1;
  l->num_params = 0;
  return NNKIT_OK;
}

static void gap_forward(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  size_t C = l->out.d[0], HW = nnkit__shape_size(&l->in) / C;
  for (size_t m = 0; m < batch * C; m++) {
    const float *xc = x + m * HW;
    double sum = 0;
    for (size_t p = 0; p < HW; p++)
      sum += xc[p];
    y[m] = (float)(sum / (double)HW);
  }
}

static void gap_backward(nnkit__layer *l, const float *x, const float *y,
                         const float *dy, float *dx, size_t batch)
{
  (void)x;
  (void)y;
  if (!dx)
    return;
  size_t C = l->out.d[0], HW = nnkit__shape_size(&l->in) / C;
  float inv = 1.0f / (float)HW;
  for (size_t m = 0; m < batch * C; m++) {
    float d = dy[m] * inv;
    float *dxc = dx + m * HW;
    for (size_t p = 0; p < HW; p++)
      dxc[p] = d;
  }
}

static void gap_describe(const nnkit__layer *l, char *buf, size_t len)
{
  char ins[64];
  nnkit__shape_text(&l->in, ins, sizeof ins);
  snprintf(buf, len, "global_avgpool %s -> %zu", ins, l->out.d[0]);
}


NNKIT_API nnkit_status nnkit_net_add_global_avgpool(nnkit_net *net)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_add_global_avgpool: net is NULL");
  nnkit__layer l = {0};
  l.ops = &nnkit__global_avgpool_kind;
  return nnkit__net_add_layer(net, &l);
}

/* Model files: kernel, stride and the padding as requested. */

static void pool_get_args(const nnkit__layer *l, double *v)
{
  const pool_state *s = l->state;
  v[0] = (double)s->g.kh;
  v[1] = (double)s->g.kw;
  v[2] = (double)s->g.sh;
  v[3] = (double)s->g.sw;
  v[4] = nnkit__size_arg(s->ph);
  v[5] = nnkit__size_arg(s->pw);
}

static nnkit_status maxpool_add(nnkit_net *net, const double *v)
{
  return nnkit_net_add_maxpool2d(net, nnkit__arg_size(v[0]), nnkit__arg_size(v[1]),
                                 nnkit__arg_size(v[2]), nnkit__arg_size(v[3]),
                                 nnkit__arg_size(v[4]), nnkit__arg_size(v[5]));
}

static nnkit_status avgpool_add(nnkit_net *net, const double *v)
{
  return nnkit_net_add_avgpool2d(net, nnkit__arg_size(v[0]), nnkit__arg_size(v[1]),
                                 nnkit__arg_size(v[2]), nnkit__arg_size(v[3]),
                                 nnkit__arg_size(v[4]), nnkit__arg_size(v[5]));
}

static nnkit_status gap_add(nnkit_net *net, const double *v)
{
  (void)v;
  return nnkit_net_add_global_avgpool(net);
}

/* ---- the descriptors ---- */

static const nnkit__spec pool_opts[] = {
  {0, NNKIT_LAYER_KERNEL_H, "kernel_h", 1, 65536, 2, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_KERNEL_W, "kernel_w", 1, 65536, 2, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_STRIDE_H, "stride_h", 1, 65536, 2, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_STRIDE_W, "stride_w", 1, 65536, 2, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_PAD_H, "pad_h", -1, 65536, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_PAD_W, "pad_w", -1, 65536, 0, NNKIT_BOUND_INTEGER},
};

const nnkit__layer_kind nnkit__maxpool2d_kind = {
  .name = "maxpool2d",
  .opts = pool_opts,
  .num_opts = 6,
  .get_opts = pool_get_args,
  .add = maxpool_add,
  .setup = pool_setup,
  .fans = NULL,
  .forward = maxpool_forward,
  .backward = maxpool_backward,
  .init = NULL,
  .describe = pool_describe,
  .destroy = pool_destroy,
  .reserve = maxpool_reserve,
  .slice_ok = 1,
  .backward_ignores_y = 1,
};

const nnkit__layer_kind nnkit__avgpool2d_kind = {
  .name = "avgpool2d",
  .opts = pool_opts,
  .num_opts = 6,
  .get_opts = pool_get_args,
  .add = avgpool_add,
  .setup = pool_setup,
  .fans = NULL,
  .forward = avgpool_forward,
  .backward = avgpool_backward,
  .init = NULL,
  .describe = pool_describe,
  .destroy = pool_destroy,
  .reserve = NULL,
  .slice_ok = 1,
  .backward_ignores_y = 1,
};

const nnkit__layer_kind nnkit__global_avgpool_kind = {
  .name = "global_avgpool",
  .add = gap_add,
  .setup = gap_setup,
  .fans = NULL,
  .forward = gap_forward,
  .backward = gap_backward,
  .init = NULL,
  .describe = gap_describe,
  .destroy = NULL,
  .reserve = NULL,
  .slice_ok = 1,
  .backward_ignores_y = 1,
};

