/* Augmentation: a chain of random transforms, each with a probability.
 *
 * Randomness: sample (seed, epoch, index) gets one generator key; op j of
 * the chain draws from counter j * 2^32 onwards under that key, so each
 * op's draws are independent of what the other ops drew and of whether
 * they fired. The geometric ops that fire are composed, in chain order, as
 * forward affine maps about the image centre (pixel centres at integer
 * coordinates, y pointing down); the inverse of the composition maps each
 * output pixel to a source point, read with bilinear interpolation where
 * points outside the image read as 0. Value ops follow in chain order. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "internal.h"

#define AUG_STREAM (UINT64_C(3) << 62)
#define DEG (3.14159265358979323846 / 180.0)

typedef struct aug_op {
  nnkit_aug_kind kind;
  double p, a, b;
} aug_op;

struct nnkit_augmenter {
  size_t n, cap;
  aug_op *ops;
};

static int is_geometric(nnkit_aug_kind k)
{
  return k >= NNKIT_AUG_HFLIP && k <= NNKIT_AUG_CROP;
}

static const char *kind_name(nnkit_aug_kind k)
{
  static const char *names[] = {"?", "hflip", "vflip", "rotate", "scale",
                                "stretch", "shear_x", "shear_y", "translate",
                                "crop", "brightness", "contrast",
                                "saturation", "noise", "erase"};
  return k >= NNKIT_AUG_HFLIP && k <= NNKIT_AUG_ERASE ? names[k] : "unknown";
}

NNKIT_API nnkit_status nnkit_augmenter_create(nnkit_augmenter **out)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_augmenter_create: out is NULL");
  *out = nnkit__calloc(1, sizeof **out);
  if (!*out)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_augmenter_create: out of memory");
  return NNKIT_OK;
}

NNKIT_API void nnkit_augmenter_free(nnkit_augmenter *aug)
{
  if (!aug)
    return;
  nnkit__free(aug->ops);
  nnkit__free(aug);
}

NNKIT_API size_t nnkit_augmenter_count(const nnkit_augmenter *aug)
{
  return aug ? aug->n : 0;
}

/* Checks a and b for kind; returns NULL when fine, else the rule. */
static const char *param_rule(nnkit_aug_kind kind, double a, double b)
{
  switch (kind) {
  case NNKIT_AUG_HFLIP:
  case NNKIT_AUG_VFLIP:
    return a == 0 && b == 0 ? NULL : "takes no parameters: a = b = 0";
  case NNKIT_AUG_ROTATE:
    return a <= b && fabs(a) <= 360 && fabs(b) <= 360
               ? NULL : "needs an angle range a <= b within [-360, 360] degrees";
  case NNKIT_AUG_SCALE:
  case NNKIT_AUG_STRETCH:
    return a > 0 && a <= b && b <= 16
               ? NULL : "needs a factor range 0 < a <= b <= 16";
  case NNKIT_AUG_SHEAR_X:
  case NNKIT_AUG_SHEAR_Y:
    return a <= b && fabs(a) < 80 && fabs(b) < 80
               ? NULL : "needs an angle range a <= b within (-80, 80) degrees";
  case NNKIT_AUG_TRANSLATE:
    return a >= 0 && b >= 0 && a <= 4096 && b <= 4096
               ? NULL : "needs maximum shifts 0 <= a, b <= 4096 pixels";
  case NNKIT_AUG_CROP:
    return a >= 1 && a <= 1024 && a == floor(a) && b == 0
               ? NULL : "needs a whole padding 1 <= a <= 1024 and b = 0";
  case NNKIT_AUG_BRIGHTNESS:
    return a <= b && fabs(a) <= 1e6 && fabs(b) <= 1e6
               ? NULL : "needs a delta range a <= b within [-1e6, 1e6]";
  case NNKIT_AUG_CONTRAST:
  case NNKIT_AUG_SATURATION:
    return a >= 0 && a <= b && b <= 1000
               ? NULL : "needs a factor range 0 <= a <= b <= 1000";
  case NNKIT_AUG_NOISE:
    return a >= 0 && a <= b && b <= 1e6
               ? NULL : "needs a std range 0 <= a <= b <= 1e6";
  case NNKIT_AUG_ERASE:
    return a > 0 && a <= b && b <= 1
               ? NULL : "needs an area fraction range 0 < a <= b <= 1";
  }
  return "is not a known kind";
}

NNKIT_API nnkit_status nnkit_augmenter_add(nnkit_augmenter *aug,
                                           nnkit_aug_kind kind,
                                           double probability, double a,
                                           double b)
{
  static const char fn[] = "nnkit_augmenter_add";
  if (!aug)
    return nnkit__err(NNKIT_E_INVALID, "%s: aug is NULL", fn);
  if (kind < NNKIT_AUG_HFLIP || kind > NNKIT_AUG_ERASE)
    return nnkit__err(NNKIT_E_INVALID, "%s: unknown kind %d; use an "
                      "NNKIT_AUG_* kind", fn, (int)kind);
  if (!(probability >= 0 && probability <= 1))
    return nnkit__err(NNKIT_E_INVALID, "%s: %s: probability %g is outside "
                      "[0, 1]", fn, kind_name(kind), probability);
  const char *rule = isfinite(a) && isfinite(b) ? param_rule(kind, a, b)
                                                : "needs finite parameters";
  if (rule)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s with a = %g, b = %g: it %s",
                      fn, kind_name(kind), a, b, rule);
  if (aug->n == aug->cap) {
    size_t cap = aug->cap ? 2 * aug->cap : 8;
    aug_op *ops = nnkit__realloc(aug->ops, cap * sizeof *ops);
    if (!ops)
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
    aug->ops = ops;
    aug->cap = cap;
  }
  aug->ops[aug->n++] = (aug_op){kind, probability, a, b};
  return NNKIT_OK;
}

nnkit_status nnkit__augmenter_clone(nnkit_augmenter **out,
                                    const nnkit_augmenter *aug)
{
  nnkit_status st = nnkit_augmenter_create(out);
  if (st != NNKIT_OK || aug->n == 0)
    return st;
  (*out)->ops = nnkit__malloc(aug->n * sizeof *aug->ops);
  if (!(*out)->ops) {
    nnkit_augmenter_free(*out);
    *out = NULL;
    return nnkit__err(NNKIT_E_NOMEM, "augmenter: out of memory copying");
  }
  memcpy((*out)->ops, aug->ops, aug->n * sizeof *aug->ops);
  (*out)->n = (*out)->cap = aug->n;
  return NNKIT_OK;
}

nnkit_status nnkit__augmenter_geometry(const nnkit_augmenter *aug,
                                       const size_t *shape, size_t ndim,
                                       size_t *c, size_t *h, size_t *w,
                                       const char *fn)
{
  if (ndim == 3) {
    *c = shape[0];
    *h = shape[1];
    *w = shape[2];
  } else if (ndim == 2) {
    *c = 1;
    *h = shape[0];
    *w = shape[1];
  } else {
    return nnkit__err(NNKIT_E_SHAPE, "%s: augmentation needs image samples "
                      "of shape [C, H, W] or [H, W], not %zu-D ones (after a "
                      "PCA normalizer samples are no longer images)", fn, ndim);
  }
  if ((double)*c * (double)*h * (double)*w >= 4294967296.0)
    return nnkit__err(NNKIT_E_SHAPE, "%s: images of %zu x %zu x %zu values "
                      "are too large to augment", fn, *c, *h, *w);
  for (size_t i = 0; aug && i < aug->n; i++)
    if (aug->ops[i].kind == NNKIT_AUG_SATURATION && *c != 3)
      return nnkit__err(NNKIT_E_SHAPE, "%s: saturation (transform %zu) needs "
                        "RGB samples of 3 channels, but these have %zu", fn,
                        i, *c);
  return NNKIT_OK;
}

/* ---- drawing ---------------------------------------------------------- */

static void sample_rng(nnkit__rng *r, uint64_t seed, uint64_t epoch,
                       uint64_t index)
{
  nnkit__rng_init(r, seed, AUG_STREAM + (epoch << 40) + index);
}

/* Op j's own generator under the sample's key. */
static void op_rng(nnkit__rng *r, const nnkit__rng *base, size_t j)
{
  r->key = base->key;
  r->counter = (uint64_t)j << 32;
}

static double uniform(nnkit__rng *r, double a, double b)
{
  return a == b ? a : a + (b - a) * nnkit__rng_uniform(r);
}

/* Composes m (2x3, forward, centred coordinates) := f o m. */
static void compose(double m[6], const double f[6])
{
  double r[6];
  r[0] = f[0] * m[0] + f[1] * m[3];
  r[1] = f[0] * m[1] + f[1] * m[4];
  r[2] = f[0] * m[2] + f[1] * m[5] + f[2];
  r[3] = f[3] * m[0] + f[4] * m[3];
  r[4] = f[3] * m[1] + f[4] * m[4];
  r[5] = f[3] * m[2] + f[4] * m[5] + f[5];
  memcpy(m, r, sizeof r);
}

int nnkit__augment_matrix(const nnkit_augmenter *aug, size_t h, size_t w,
                          uint64_t seed, uint64_t epoch, uint64_t index,
                          double m[6])
{
  nnkit__rng base, r;
  sample_rng(&base, seed, epoch, index);
  double fwd[6] = {1, 0, 0, 0, 1, 0};
  int any = 0;
  for (size_t j = 0; j < aug->n; j++) {
    const aug_op *op = &aug->ops[j];
    if (!is_geometric(op->kind))
      continue;
    op_rng(&r, &base, j);
    if (!(nnkit__rng_uniform(&r) < op->p))
      continue;
    double f[6] = {1, 0, 0, 0, 1, 0};
    switch (op->kind) {
    case NNKIT_AUG_HFLIP: f[0] = -1; break;
    case NNKIT_AUG_VFLIP: f[4] = -1; break;
    case NNKIT_AUG_ROTATE: {
      double t = uniform(&r, op->a, op->b) * DEG, c = cos(t), s = sin(t);
      f[0] = c; f[1] = s; f[3] = -s; f[4] = c;
      break;
    }
    case NNKIT_AUG_SCALE: f[0] = f[4] = uniform(&r, op->a, op->b); break;
    case NNKIT_AUG_STRETCH:
      f[0] = uniform(&r, op->a, op->b);
      f[4] = uniform(&r, op->a, op->b);
      break;
    case NNKIT_AUG_SHEAR_X: f[1] = tan(uniform(&r, op->a, op->b) * DEG); break;
    case NNKIT_AUG_SHEAR_Y: f[3] = tan(uniform(&r, op->a, op->b) * DEG); break;
    case NNKIT_AUG_TRANSLATE:
      f[2] = uniform(&r, -op->a, op->a);
      f[5] = uniform(&r, -op->b, op->b);
      break;
    case NNKIT_AUG_CROP: {
      uint64_t span = 2 * (uint64_t)op->a + 1;
      f[2] = (double)nnkit__rng_below(&r, span) - op->a;
      f[5] = (double)nnkit__rng_below(&r, span) - op->a;
      break;
    }
    default: break;
    }
    compose(fwd, f);
    any = 1;
  }
  if (!any) {
    double id[6] = {1, 0, 0, 0, 1, 0};
    memcpy(m, id, sizeof id);
    return 0;
  }
  /* Inverse of [A | t]: [A^-1 | -A^-1 t]; det != 0 for every allowed op. */
  double det = fwd[0] * fwd[4] - fwd[1] * fwd[3];
  double inv[6];
  inv[0] = fwd[4] / det;
  inv[1] = -fwd[1] / det;
  inv[3] = -fwd[3] / det;
  inv[4] = fwd[0] / det;
  inv[2] = -(inv[0] * fwd[2] + inv[1] * fwd[5]);
  inv[5] = -(inv[3] * fwd[2] + inv[4] * fwd[5]);
  /* Snap values within rounding of a whole number (cos 90 degrees is
   * 6e-17), so right-angle rotations and flips move pixels exactly. */
  for (int i = 0; i < 6; i++) {
    double rnd = nearbyint(inv[i]);
    if (fabs(inv[i] - rnd) < 1e-9)
      inv[i] = rnd;
  }
  /* To pixel coordinates: src = inv * (p - c) + c. */
  double cx = ((double)w - 1) / 2, cy = ((double)h - 1) / 2;
  m[0] = inv[0];
  m[1] = inv[1];
  m[2] = inv[2] + cx - inv[0] * cx - inv[1] * cy;
  m[3] = inv[3];
  m[4] = inv[4];
  m[5] = inv[5] + cy - inv[3] * cx - inv[4] * cy;
  return 1;
}

/* ---- applying --------------------------------------------------------- */

/* One output pixel, any source point: zero outside (-1, w) x (-1, h),
 * neighbours outside the image read as 0. floor(s) = (int)(s + 1) - 1 is
 * exact for s > -1. */
static void warp_pixel(const float *src, float *dst, size_t c, size_t h,
                       size_t w, double sx, double sy)
{
  const size_t plane = h * w;
  const long W = (long)w, H = (long)h;
  if (!(sx > -1.0 && sx < (double)W && sy > -1.0 && sy < (double)H)) {
    for (size_t k = 0; k < c; k++)
      dst[k * plane] = 0;
    return;
  }
  long ix = (long)(sx + 1.0) - 1, iy = (long)(sy + 1.0) - 1;
  float a = (float)(sx - (double)ix), b = (float)(sy - (double)iy);
  float w01 = a * (1 - b), w11 = a * b, w00 = (1 - b) - w01, w10 = b - w11;
  int cx0 = ix >= 0, cx1 = ix + 1 < W, cy0 = iy >= 0, cy1 = iy + 1 < H;
  for (size_t k = 0; k < c; k++) {
    const float *s = src + k * plane;
    float v = 0;
    if (cy0 && cx0) v += w00 * s[iy * W + ix];
    if (cy0 && cx1) v += w01 * s[iy * W + ix + 1];
    if (cy1 && cx0) v += w10 * s[(iy + 1) * W + ix];
    if (cy1 && cx1) v += w11 * s[(iy + 1) * W + ix + 1];
    dst[k * plane] = v;
  }
}

/* Narrows [*lo, *hi] to the x where a <= b0 + m x <= b. */
static void clip_range(double *lo, double *hi, double b0, double m, double a,
                       double b)
{
  if (m == 0) {
    if (b0 < a || b0 > b)
      *hi = *lo - 1; /* empty */
    return;
  }
  double t0 = (a - b0) / m, t1 = (b - b0) / m;
  if (t0 > t1) {
    double t = t0;
    t0 = t1;
    t1 = t;
  }
  if (t0 > *lo)
    *lo = t0;
  if (t1 < *hi)
    *hi = t1;
}

/* dst = src warped by m (output pixel -> source point: sx = m0 x + m1 y +
 * m2, sy = m3 x + m4 y + m5), bilinear. Along a row the source point moves
 * on a line, so the pixels whose four neighbours all lie inside the image
 * form one interval, computed per row with a 1e-4 pixel margin; there the
 * loop needs no checks. The pixels around it take the careful path. */
static void warp(const float *src, float *dst, size_t c, size_t h, size_t w,
                 const double m[6])
{
  const size_t plane = h * w;
  const long W = (long)w, H = (long)h;
  const double e = 1e-4;
  for (long y = 0; y < H; y++) {
    double bx = m[1] * (double)y + m[2], by = m[4] * (double)y + m[5];
    double lo = 0, hi = (double)(W - 1);
    clip_range(&lo, &hi, bx, m[0], e, (double)(W - 1) - e);
    clip_range(&lo, &hi, by, m[3], e, (double)(H - 1) - e);
    long xs = W, xe = W; /* fast interval [xs, xe) */
    if (hi >= lo) {
      xs = (long)ceil(lo);
      xe = (long)floor(hi) + 1;
      if (xs < 0)
        xs = 0;
      if (xe > W)
        xe = W;
      if (xs > xe)
        xs = xe = W;
    }
    float *drow = dst + (size_t)y * w;
    for (long x = 0; x < xs; x++)
      warp_pixel(src, drow + x, c, h, w, bx + m[0] * (double)x,
                 by + m[3] * (double)x);
    for (long x = xs; x < xe; x++) {
      double sx = bx + m[0] * (double)x, sy = by + m[3] * (double)x;
      long ix = (long)sx, iy = (long)sy; /* sx, sy > 0: truncation = floor */
      float a = (float)(sx - (double)ix), b = (float)(sy - (double)iy);
      float w01 = a * (1 - b), w11 = a * b, w00 = (1 - b) - w01, w10 = b - w11;
      const float *s0 = src + iy * W + ix;
      if (c == 1) {
        drow[x] = w00 * s0[0] + w01 * s0[1] + w10 * s0[w] + w11 * s0[w + 1];
        continue;
      }
      for (size_t k = 0; k < c; k++) {
        const float *s = s0 + k * plane;
        drow[k * plane + (size_t)x] = w00 * s[0] + w01 * s[1] + w10 * s[w] +
                                      w11 * s[w + 1];
      }
    }
    for (long x = xe; x < W; x++)
      warp_pixel(src, drow + x, c, h, w, bx + m[0] * (double)x,
                 by + m[3] * (double)x);
  }
}

/* ---- fast standard normals: Marsaglia and Tsang's ziggurat ------------- */
/* 128 layers; the layer index and the 32-bit value come from different
 * bits of one 64-bit draw (Doornik's fix for the original's correlation).
 * About 98.8% of draws cost one generator call, a compare and a multiply;
 * Box-Muller's log and sincos per pair would dominate an augmented
 * batch. Tables are built once (pthread_once). */
static uint32_t zig_k[128];
static double zig_w[128], zig_f[128];
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void zig_setup(void)
{
  const double m1 = 2147483648.0, vn = 9.91256303526217e-3;
  double dn = 3.442619855899, tn = dn;
  double q = vn / exp(-0.5 * dn * dn);
  zig_k[0] = (uint32_t)((dn / q) * m1);
  zig_k[1] = 0;
  zig_w[0] = q / m1;
  zig_w[127] = dn / m1;
  zig_f[0] = 1.0;
  zig_f[127] = exp(-0.5 * dn * dn);
  for (int i = 126; i >= 1; i--) {
    dn = sqrt(-2.0 * log(vn / dn + exp(-0.5 * dn * dn)));
    zig_k[i + 1] = (uint32_t)((dn / tn) * m1);
    tn = dn;
    zig_f[i] = exp(-0.5 * dn * dn);
    zig_w[i] = dn / m1;
  }
}

/* The noise op's own counter-based stream (SplitMix64 finalizer over a
 * Weyl sequence, like nnkit__rng), inlined: a call per value would cost
 * more than the value. Seeded from the op's generator. */
typedef struct fast_rng {
  uint64_t key, ctr;
} fast_rng;

static inline uint64_t fast_u64(fast_rng *f)
{
  uint64_t z = f->key + (++f->ctr) * UINT64_C(0x9E3779B97F4A7C15);
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static inline double fast_uniform(fast_rng *f)
{
  return (double)(fast_u64(f) >> 11) * 0x1.0p-53;
}

static double zig_normal(fast_rng *r)
{
  const double tail = 3.442619855899;
  for (;;) {
    uint64_t u = fast_u64(r);
    int32_t hz = (int32_t)(uint32_t)u;
    unsigned iz = (unsigned)(u >> 32) & 127u;
    uint32_t mag = hz < 0 ? (uint32_t)0 - (uint32_t)hz : (uint32_t)hz;
    double x = (double)hz * zig_w[iz];
    if (mag < zig_k[iz])
      return x;
    if (iz == 0) { /* the tail beyond 3.44 */
      double a, b;
      do {
        a = -log(1.0 - fast_uniform(r)) / tail;
        b = -log(1.0 - fast_uniform(r));
      } while (b + b < a * a);
      return hz > 0 ? tail + a : -tail - a;
    }
    if (zig_f[iz] + fast_uniform(r) * (zig_f[iz - 1] - zig_f[iz]) <
        exp(-0.5 * x * x))
      return x;
  }
}

static void value_op(const aug_op *op, nnkit__rng *r, float *x, size_t c,
                     size_t h, size_t w)
{
  size_t n = c * h * w, plane = h * w;
  switch (op->kind) {
  case NNKIT_AUG_BRIGHTNESS: {
    float d = (float)uniform(r, op->a, op->b);
    for (size_t i = 0; i < n; i++)
      x[i] += d;
    break;
  }
  case NNKIT_AUG_CONTRAST: {
    float f = (float)uniform(r, op->a, op->b);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
      sum += x[i];
    float mean = (float)(sum / (double)n);
    for (size_t i = 0; i < n; i++)
      x[i] = mean + f * (x[i] - mean);
    break;
  }
  case NNKIT_AUG_SATURATION: {
    float f = (float)uniform(r, op->a, op->b);
    for (size_t i = 0; i < plane; i++) {
      float g = 0.299f * x[i] + 0.587f * x[plane + i] + 0.114f * x[2 * plane + i];
      for (size_t k = 0; k < 3; k++)
        x[k * plane + i] = g + f * (x[k * plane + i] - g);
    }
    break;
  }
  case NNKIT_AUG_NOISE: {
    double sd = uniform(r, op->a, op->b);
    if (sd == 0)
      break;
    pthread_once(&zig_once, zig_setup);
    fast_rng f = {nnkit__rng_u64(r), 0};
    for (size_t i = 0; i < n; i++)
      x[i] += (float)(sd * zig_normal(&f));
    break;
  }
  case NNKIT_AUG_ERASE: {
    double area = uniform(r, op->a, op->b) * (double)h * (double)w;
    double ratio = exp(uniform(r, log(0.3), log(3.3)));
    double eh = floor(sqrt(area * ratio) + 0.5), ew = floor(sqrt(area / ratio) + 0.5);
    size_t rh = eh < 1 ? 1 : eh > (double)h ? h : (size_t)eh;
    size_t rw = ew < 1 ? 1 : ew > (double)w ? w : (size_t)ew;
    size_t y0 = (size_t)nnkit__rng_below(r, h - rh + 1);
    size_t x0 = (size_t)nnkit__rng_below(r, w - rw + 1);
    for (size_t k = 0; k < c; k++)
      for (size_t y = y0; y < y0 + rh; y++)
        memset(x + k * plane + y * w + x0, 0, rw * sizeof *x);
    break;
  }
  default: break;
  }
}

void nnkit__augment_sample(const nnkit_augmenter *aug, const float *src,
                           float *dst, size_t c, size_t h, size_t w,
                           uint64_t seed, uint64_t epoch, uint64_t index)
{
  double m[6];
  if (aug && aug->n && nnkit__augment_matrix(aug, h, w, seed, epoch, index, m))
    warp(src, dst, c, h, w, m);
  else
    memcpy(dst, src, c * h * w * sizeof *dst);
  if (!aug)
    return;
  nnkit__rng base, r;
  sample_rng(&base, seed, epoch, index);
  for (size_t j = 0; j < aug->n; j++) {
    const aug_op *op = &aug->ops[j];
    if (is_geometric(op->kind))
      continue;
    op_rng(&r, &base, j);
    if (nnkit__rng_uniform(&r) < op->p)
      value_op(op, &r, dst, c, h, w);
  }
}

NNKIT_API nnkit_status nnkit_augmenter_apply(const nnkit_augmenter *aug,
                                             float *x, size_t count,
                                             const size_t *shape, size_t ndim,
                                             uint64_t seed, uint64_t epoch,
                                             uint64_t first_index)
{
  static const char fn[] = "nnkit_augmenter_apply";
  if (!aug || !x || !shape)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn,
                      !aug ? "aug" : !x ? "x" : "shape");
  if (count == 0)
    return nnkit__err(NNKIT_E_INVALID, "%s: count is 0", fn);
  for (size_t i = 0; i < ndim && i < NNKIT_MAX_SAMPLE_DIMS; i++)
    if (shape[i] == 0)
      return nnkit__err(NNKIT_E_INVALID, "%s: shape[%zu] is 0", fn, i);
  size_t c, h, w;
  nnkit_status st = nnkit__augmenter_geometry(aug, shape, ndim, &c, &h, &w, fn);
  if (st != NNKIT_OK)
    return st == NNKIT_E_SHAPE && ndim != 2 && ndim != 3 ? NNKIT_E_INVALID : st;
  size_t per = c * h * w;
  float *tmp = nnkit__malloc(per * sizeof *tmp);
  if (!tmp)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  for (size_t i = 0; i < count; i++) {
    memcpy(tmp, x + i * per, per * sizeof *tmp);
    nnkit__augment_sample(aug, tmp, x + i * per, c, h, w, seed, epoch,
                          first_index + i);
  }
  nnkit__free(tmp);
  return NNKIT_OK;
}
