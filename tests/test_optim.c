/* Optimizers, schedules, regularizers, clipping and freezing.
 *
 * Golden numbers come from PyTorch (tests/fixtures/gen_optim.py writes
 * tests/fixtures/optim/); every update and schedule is also recomputed here
 * in double precision from its formula. */
#include "testutil.h"

#include <float.h>

#ifndef NNKIT_FIXTURES
#  error "tests/meson.build must define NNKIT_FIXTURES"
#endif

/* ---- helpers ------------------------------------------------------------ */

/* |a - b| <= tol * max(1, |b|): relative for values of magnitude >= 1. */
static int close_rel(double a, double b, double tol)
{
  double s = fabs(b) > 1 ? fabs(b) : 1;
  return fabs(a - b) <= tol * s;
}

/* dense(3 -> 2), ReLU, dense(2 -> 2): 14 parameters in layers 0 and 2. */
static nnkit_net *small_net(uint64_t seed)
{
  size_t in = 3;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, seed));
  ck_ok(nnkit_net_add_dense(net, 2));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dense(net, 2));
  ck_assert_uint_eq(nnkit_net_num_params(net), 14);
  return net;
}

/* A deterministic gradient stream. */
static void fill_grads(float *g, size_t n, size_t step)
{
  for (size_t i = 0; i < n; i++)
    g[i] = (float)(sin(0.7 * (double)i + 1.3 * (double)step) * (1.0 + (double)(step % 3)));
}

/* Two Gaussian blobs per class on a circle: separable, 4 classes. */
static nnkit_dataset *blobs(size_t n, uint64_t seed)
{
  return tu_blobs4(n, 0.5, seed);
}

static nnkit_net *blob_mlp(uint64_t seed)
{
  size_t in = 2;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, seed));
  ck_ok(nnkit_net_add_dense(net, 16));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(net, 16));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dense(net, 4));
  return net;
}

/* ---- fixture files ------------------------------------------------------ */

typedef struct name_value {
  const char *name;
  int value;
} name_value;

static const name_value optim_kinds[] = {
  {"SGD", NNKIT_OPTIM_SGD},       {"RMSPROP", NNKIT_OPTIM_RMSPROP},
  {"ADAGRAD", NNKIT_OPTIM_ADAGRAD}, {"ADAM", NNKIT_OPTIM_ADAM},
  {"ADAMW", NNKIT_OPTIM_ADAMW},   {"NADAM", NNKIT_OPTIM_NADAM},
  {NULL, 0}};
static const name_value optim_keys[] = {
  {"LR", NNKIT_OPT_LR},         {"MOMENTUM", NNKIT_OPT_MOMENTUM},
  {"NESTEROV", NNKIT_OPT_NESTEROV}, {"WEIGHT_DECAY", NNKIT_OPT_WEIGHT_DECAY},
  {"BETA1", NNKIT_OPT_BETA1},   {"BETA2", NNKIT_OPT_BETA2},
  {"EPS", NNKIT_OPT_EPS},       {"DECAY", NNKIT_OPT_DECAY},
  {"MOMENTUM_DECAY", NNKIT_OPT_MOMENTUM_DECAY},
  {NULL, 0}};
static const name_value sched_kinds[] = {
  {"CONSTANT", NNKIT_SCHEDULE_CONSTANT},   {"STEP", NNKIT_SCHEDULE_STEP},
  {"MULTISTEP", NNKIT_SCHEDULE_MULTISTEP}, {"EXPONENTIAL", NNKIT_SCHEDULE_EXPONENTIAL},
  {"COSINE", NNKIT_SCHEDULE_COSINE},
  {"COSINE_RESTARTS", NNKIT_SCHEDULE_COSINE_RESTARTS},
  {"PLATEAU", NNKIT_SCHEDULE_PLATEAU},     {NULL, 0}};
static const name_value sched_keys[] = {
  {"GAMMA", NNKIT_SCHED_GAMMA},
  {"STEP_SIZE", NNKIT_SCHED_STEP_SIZE},
  {"T_MAX", NNKIT_SCHED_T_MAX},
  {"MIN_LR", NNKIT_SCHED_MIN_LR},
  {"T_0", NNKIT_SCHED_T_0},
  {"T_MULT", NNKIT_SCHED_T_MULT},
  {"PATIENCE", NNKIT_SCHED_PATIENCE},
  {"THRESHOLD", NNKIT_SCHED_THRESHOLD},
  {"THRESHOLD_ABS", NNKIT_SCHED_THRESHOLD_ABS},
  {"COOLDOWN", NNKIT_SCHED_COOLDOWN},
  {"MAXIMIZE", NNKIT_SCHED_MAXIMIZE},
  {"WARMUP_STEPS", NNKIT_SCHED_WARMUP_STEPS},
  {"WARMUP_START", NNKIT_SCHED_WARMUP_START},
  {NULL, 0}};

static int lookup(const name_value *t, const char *name)
{
  for (; t->name; t++)
    if (!strcmp(t->name, name))
      return t->value;
  ck_abort_msg("fixture: unknown name '%s'", name);
  return 0;
}

/* Reads numbers after the first word of line into v (at most cap). */
static size_t numbers(const char *line, double *v, size_t cap)
{
  const char *p = strchr(line, ' ');
  size_t n = 0;
  while (p && n < cap) {
    char *end;
    double x = strtod(p, &end);
    if (end == p)
      break;
    v[n++] = x;
    p = end;
  }
  return n;
}

static FILE *open_fixture(const char *name)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/optim/%s", NNKIT_FIXTURES, name);
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "cannot open fixture %s", path);
  return f;
}

#define MAXN 14
#define MAXSTEPS 16
#define MAXSETS 8

typedef struct opt_case {
  nnkit_optim_kind kind;
  size_t nsets;
  nnkit_optim_param keys[MAXSETS];
  double vals[MAXSETS];
  double lr_mult[3];
  int frozen[3][MAXSTEPS];
  size_t n, steps;
  double init[MAXN];
  double grad[MAXSTEPS][MAXN], after[MAXSTEPS][MAXN];
} opt_case;

static void read_opt_case(opt_case *c, const char *name)
{
  memset(c, 0, sizeof *c);
  c->lr_mult[0] = c->lr_mult[1] = c->lr_mult[2] = 1;
  FILE *f = open_fixture(name);
  char line[8192], word[64];
  size_t ng = 0, na = 0;
  double v[64];
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#' || sscanf(line, "%63s", word) != 1)
      continue;
    size_t k = numbers(line, v, 64);
    if (!strcmp(word, "kind")) {
      char kn[64];
      ck_assert(sscanf(line, "kind %63s", kn) == 1);
      c->kind = (nnkit_optim_kind)lookup(optim_kinds, kn);
    } else if (!strcmp(word, "set")) {
      char kn[64];
      double val;
      ck_assert(sscanf(line, "set %63s %lf", kn, &val) == 2);
      ck_assert_uint_lt(c->nsets, MAXSETS);
      c->keys[c->nsets] = (nnkit_optim_param)lookup(optim_keys, kn);
      c->vals[c->nsets++] = val;
    } else if (!strcmp(word, "lr_mult")) {
      ck_assert_uint_eq(k, 2);
      c->lr_mult[(size_t)v[0]] = v[1];
    } else if (!strcmp(word, "frozen")) {
      for (size_t i = 1; i < k; i++)
        c->frozen[(size_t)v[0]][(size_t)v[i]] = 1;
    } else if (!strcmp(word, "params")) {
      c->n = (size_t)v[0];
      ck_assert_uint_eq(c->n, MAXN);
    } else if (!strcmp(word, "steps")) {
      c->steps = (size_t)v[0];
      ck_assert_uint_le(c->steps, MAXSTEPS);
    } else if (!strcmp(word, "init")) {
      ck_assert_uint_eq(k, c->n);
      memcpy(c->init, v, k * sizeof *v);
    } else if (!strcmp(word, "grad")) {
      ck_assert_uint_eq(k, c->n);
      memcpy(c->grad[ng++], v, k * sizeof *v);
    } else if (!strcmp(word, "after")) {
      ck_assert_uint_eq(k, c->n);
      memcpy(c->after[na++], v, k * sizeof *v);
    }
  }
  fclose(f);
  ck_assert_uint_eq(ng, c->steps);
  ck_assert_uint_eq(na, c->steps);
}

/* The update rules written out in double precision, from the formulas of
 * nnkit_optim_kind (the lecture's velocity form, PyTorch's eps placement). */
typedef struct ref_opt {
  nnkit_optim_kind kind;
  double lr, mom, nest, wd, b1, b2, eps, decay, psi;
  double s0[MAXN], s1[MAXN];
  uint64_t t[3];
  double mu_prod[3]; /* NAdam: the layer's momentum product */
} ref_opt;

static void ref_init(ref_opt *r, const nnkit_optimizer *opt)
{
  memset(r, 0, sizeof *r);
  r->kind = nnkit_optimizer_kind(opt);
  struct {
    nnkit_optim_param key;
    double *dst;
  } m[] = {{NNKIT_OPT_LR, &r->lr},       {NNKIT_OPT_MOMENTUM, &r->mom},
           {NNKIT_OPT_NESTEROV, &r->nest}, {NNKIT_OPT_WEIGHT_DECAY, &r->wd},
           {NNKIT_OPT_BETA1, &r->b1},     {NNKIT_OPT_BETA2, &r->b2},
           {NNKIT_OPT_EPS, &r->eps},      {NNKIT_OPT_DECAY, &r->decay},
           {NNKIT_OPT_MOMENTUM_DECAY, &r->psi}};
  for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
    if (nnkit_optimizer_get(m[i].dst, opt, m[i].key) != NNKIT_OK)
      *m[i].dst = 0;
  nnkit_clear_error();
  r->mu_prod[0] = r->mu_prod[1] = r->mu_prod[2] = 1;
}

/* NAdam's momentum coefficient of update t. */
static double ref_mu(const ref_opt *r, double t)
{
  return r->b1 * (1 - 0.5 * pow(0.96, t * r->psi));
}

/* One step on parameters [lo, hi) of layer `layer` of x. */
static void ref_layer_step(ref_opt *r, double *x, const double *g, size_t lo,
                           size_t hi, size_t layer, double mult)
{
  uint64_t t = ++r->t[layer];
  double lr = r->lr * mult;
  if (r->kind == NNKIT_OPTIM_NADAM)
    r->mu_prod[layer] *= ref_mu(r, (double)t);
  for (size_t i = lo; i < hi; i++) {
    double d = g[i];
    if (r->kind != NNKIT_OPTIM_ADAMW)
      d += r->wd * x[i];
    switch (r->kind) {
    case NNKIT_OPTIM_SGD:
      if (r->mom > 0) {
        r->s0[i] = r->mom * r->s0[i] + d;
        d = r->nest != 0 ? d + r->mom * r->s0[i] : r->s0[i];
      }
      x[i] -= lr * d;
      break;
    case NNKIT_OPTIM_RMSPROP: {
      r->s0[i] = r->decay * r->s0[i] + (1 - r->decay) * d * d;
      double avg = sqrt(r->s0[i]) + r->eps;
      if (r->mom > 0) {
        r->s1[i] = r->mom * r->s1[i] + d / avg;
        x[i] -= lr * r->s1[i];
      } else {
        x[i] -= lr * d / avg;
      }
      break;
    }
    case NNKIT_OPTIM_ADAGRAD:
      r->s0[i] += d * d;
      x[i] -= lr * d / (sqrt(r->s0[i]) + r->eps);
      break;
    case NNKIT_OPTIM_ADAM:
    case NNKIT_OPTIM_ADAMW: {
      if (r->kind == NNKIT_OPTIM_ADAMW)
        x[i] *= 1 - lr * r->wd;
      r->s0[i] = r->b1 * r->s0[i] + (1 - r->b1) * d;
      r->s1[i] = r->b2 * r->s1[i] + (1 - r->b2) * d * d;
      double mhat = r->s0[i] / (1 - pow(r->b1, (double)t));
      double vhat = r->s1[i] / (1 - pow(r->b2, (double)t));
      x[i] -= lr * mhat / (sqrt(vhat) + r->eps);
      break;
    }
    case NNKIT_OPTIM_NADAM: {
      /* torch.optim.NAdam's single-tensor step. */
      double mu = ref_mu(r, (double)t), mu_next = ref_mu(r, (double)t + 1);
      double prod = r->mu_prod[layer];
      r->s0[i] = r->b1 * r->s0[i] + (1 - r->b1) * d;
      r->s1[i] = r->b2 * r->s1[i] + (1 - r->b2) * d * d;
      double denom = sqrt(r->s1[i] / (1 - pow(r->b2, (double)t))) + r->eps;
      x[i] -= lr * (1 - mu) / (1 - prod) * d / denom;
      x[i] -= lr * mu_next / (1 - prod * mu_next) * r->s0[i] / denom;
      break;
    }
    }
  }
}

/* ---- optimizers: keys and bounds ---------------------------------------- */

START_TEST(create_and_defaults)
{
  nnkit_optimizer *opt = (nnkit_optimizer *)1;
  ck_fails(nnkit_optimizer_create(&opt, (nnkit_optim_kind)99), NNKIT_E_INVALID,
           "unknown optimizer");
  ck_assert_ptr_null(opt);
  ck_fails(nnkit_optimizer_create(NULL, NNKIT_OPTIM_SGD), NNKIT_E_INVALID, "NULL");
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_assert_int_eq(nnkit_optimizer_kind(opt), NNKIT_OPTIM_SGD);
  double lr;
  ck_ok(nnkit_optimizer_get(&lr, opt, NNKIT_OPT_LR));
  ck_assert_double_eq(lr, 0.01);
  ck_assert_uint_eq(nnkit_optimizer_steps(opt), 0);
  ck_assert_double_eq(nnkit_optimizer_reg_loss(opt), 0);
  ck_assert_uint_eq(nnkit_optimizer_state_size(opt), 0);
  nnkit_optimizer_free(opt);
  nnkit_optimizer_free(NULL);

  /* PyTorch's defaults, kind by kind. */
  struct {
    nnkit_optim_kind kind;
    nnkit_optim_param key;
    double def;
  } d[] = {
    {NNKIT_OPTIM_SGD, NNKIT_OPT_MOMENTUM, 0},
    {NNKIT_OPTIM_SGD, NNKIT_OPT_NESTEROV, 0},
    {NNKIT_OPTIM_SGD, NNKIT_OPT_WEIGHT_DECAY, 0},
    {NNKIT_OPTIM_SGD, NNKIT_OPT_CLIP_NORM, 0},
    {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_LR, 0.01},
    {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_DECAY, 0.99},
    {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_EPS, 1e-8},
    {NNKIT_OPTIM_ADAGRAD, NNKIT_OPT_LR, 0.01},
    {NNKIT_OPTIM_ADAGRAD, NNKIT_OPT_EPS, 1e-10},
    {NNKIT_OPTIM_ADAM, NNKIT_OPT_LR, 1e-3},
    {NNKIT_OPTIM_ADAM, NNKIT_OPT_BETA1, 0.9},
    {NNKIT_OPTIM_ADAM, NNKIT_OPT_BETA2, 0.999},
    {NNKIT_OPTIM_ADAM, NNKIT_OPT_EPS, 1e-8},
    {NNKIT_OPTIM_ADAM, NNKIT_OPT_WEIGHT_DECAY, 0},
    {NNKIT_OPTIM_ADAMW, NNKIT_OPT_WEIGHT_DECAY, 0.01},
    {NNKIT_OPTIM_ADAMW, NNKIT_OPT_CLIP_VALUE, 0},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_LR, 2e-3},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_BETA1, 0.9},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_BETA2, 0.999},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_EPS, 1e-8},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_WEIGHT_DECAY, 0},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_MOMENTUM_DECAY, 4e-3},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_CLIP_NORM, 0},
  };
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
    double v = -1;
    ck_ok(nnkit_optimizer_create(&opt, d[i].kind));
    ck_assert_int_eq(nnkit_optimizer_kind(opt), d[i].kind);
    ck_ok(nnkit_optimizer_get(&v, opt, d[i].key));
    ck_assert_msg(v == d[i].def, "kind %d key %d: default %g, expected %g",
                  (int)d[i].kind, (int)d[i].key, v, d[i].def);
    nnkit_optimizer_free(opt);
  }
}
END_TEST

START_TEST(keys_and_bounds)
{
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  double lo, hi, v;
  int flags = -1;
  ck_ok(nnkit_optimizer_bounds(&lo, &hi, &flags, NNKIT_OPTIM_SGD, NNKIT_OPT_LR));
  ck_assert_double_eq(lo, 0.0);
  ck_assert_double_eq(hi, 1e6);
  ck_assert_int_eq(flags, 0);
  ck_ok(nnkit_optimizer_bounds(NULL, NULL, NULL, NNKIT_OPTIM_SGD, NNKIT_OPT_LR));
  ck_fails(nnkit_optimizer_bounds(&lo, &hi, &flags, NNKIT_OPTIM_SGD,
                                  (nnkit_optim_param)55),
           NNKIT_E_INVALID, "key 55");
  ck_fails(nnkit_optimizer_bounds(&lo, &hi, &flags, (nnkit_optim_kind)42, NNKIT_OPT_LR),
           NNKIT_E_INVALID, "unknown optimizer");
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 3e-3));
  ck_ok(nnkit_optimizer_get(&v, opt, NNKIT_OPT_LR));
  ck_assert_double_eq(v, 3e-3);
  /* A negative learning rate names the valid range; the value is kept. */
  ck_fails(nnkit_optimizer_set(opt, NNKIT_OPT_LR, -1.0), NNKIT_E_INVALID, "[0, 1e+06]");
  ck_fails(nnkit_optimizer_set(opt, NNKIT_OPT_LR, NAN), NNKIT_E_INVALID, "range");
  ck_ok(nnkit_optimizer_get(&v, opt, NNKIT_OPT_LR));
  ck_assert_double_eq(v, 3e-3);
  ck_fails(nnkit_optimizer_set(opt, (nnkit_optim_param)55, 1.0), NNKIT_E_INVALID,
           "no hyperparameter");
  ck_fails(nnkit_optimizer_get(&v, opt, (nnkit_optim_param)55), NNKIT_E_INVALID,
           "no hyperparameter");
  ck_fails(nnkit_optimizer_set(NULL, NNKIT_OPT_LR, 1.0), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_optimizer_get(NULL, opt, NNKIT_OPT_LR), NNKIT_E_INVALID, "NULL");
  nnkit_optimizer_free(opt);
}
END_TEST

/* Every key's range, and the sentences for values just outside it. */
START_TEST(bounds_of_every_kind)
{
  struct {
    nnkit_optim_kind kind;
    nnkit_optim_param key;
    double lo, hi;
    int flags;
    double bad, good;
    const char *says;
  } b[] = {
    {NNKIT_OPTIM_SGD, NNKIT_OPT_MOMENTUM, 0, 1, NNKIT_BOUND_HI_OPEN, 1.0, 0.99,
     "SGD momentum 1 is outside its range [0, 1)"},
    {NNKIT_OPTIM_SGD, NNKIT_OPT_MOMENTUM, 0, 1, NNKIT_BOUND_HI_OPEN, -0.1, 0,
     "[0, 1)"},
    {NNKIT_OPTIM_SGD, NNKIT_OPT_NESTEROV, 0, 1, NNKIT_BOUND_INTEGER, 0.5, 1,
     "SGD nesterov 0.5 must be 0 or 1"},
    {NNKIT_OPTIM_SGD, NNKIT_OPT_WEIGHT_DECAY, 0, 1e6, 0, -1e-4, 5e-4, "[0, 1e+06]"},
    {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_DECAY, 0, 1, NNKIT_BOUND_HI_OPEN, 1.0, 0.9,
     "RMSProp decay rate 1 is outside its range [0, 1)"},
    {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_EPS, 0, 1, NNKIT_BOUND_LO_OPEN, 0.0, 1e-6,
     "RMSProp eps 0 is outside its range (0, 1]"},
    {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_MOMENTUM, 0, 1, NNKIT_BOUND_HI_OPEN, 1.5, 0.5,
     "[0, 1)"},
    {NNKIT_OPTIM_ADAGRAD, NNKIT_OPT_EPS, 0, 1, NNKIT_BOUND_LO_OPEN, 2.0, 1.0, "(0, 1]"},
    {NNKIT_OPTIM_ADAM, NNKIT_OPT_BETA1, 0, 1, NNKIT_BOUND_HI_OPEN, 1.0, 0.0,
     "Adam beta1 1 is outside its range [0, 1)"},
    {NNKIT_OPTIM_ADAM, NNKIT_OPT_BETA2, 0, 1, NNKIT_BOUND_HI_OPEN, -0.5, 0.99,
     "Adam beta2 -0.5 is outside its range [0, 1)"},
    {NNKIT_OPTIM_ADAMW, NNKIT_OPT_BETA1, 0, 1, NNKIT_BOUND_HI_OPEN, INFINITY, 0.5,
     "AdamW beta1 inf"},
    {NNKIT_OPTIM_ADAMW, NNKIT_OPT_LR, 0, 1e6, 0, -1e-3, 0, "[0, 1e+06]"},
    {NNKIT_OPTIM_ADAGRAD, NNKIT_OPT_CLIP_NORM, 0, 1e30, 0, -1, 5, "[0, 1e+30]"},
    {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_CLIP_VALUE, 0, 1e30, 0, NAN, 0.5, "[0, 1e+30]"},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_MOMENTUM_DECAY, 0, 1e6, 0, -1e-3, 0,
     "NAdam momentum decay -0.001 is outside its range [0, 1e+06]"},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_MOMENTUM_DECAY, 0, 1e6, 0, 2e6, 1e6, "[0, 1e+06]"},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_MOMENTUM_DECAY, 0, 1e6, 0, NAN, 0.1, "[0, 1e+06]"},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_LR, 0, 1e6, 0, -1e-3, 0.5,
     "NAdam learning rate -0.001 is outside its range [0, 1e+06]"},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_BETA1, 0, 1, NNKIT_BOUND_HI_OPEN, 1.0, 0.0,
     "NAdam beta1 1 is outside its range [0, 1)"},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_BETA2, 0, 1, NNKIT_BOUND_HI_OPEN, -0.5, 0.99,
     "NAdam beta2 -0.5 is outside its range [0, 1)"},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_EPS, 0, 1, NNKIT_BOUND_LO_OPEN, 0.0, 1e-6,
     "NAdam eps 0 is outside its range (0, 1]"},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_WEIGHT_DECAY, 0, 1e6, 0, -1e-4, 5e-4, "[0, 1e+06]"},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_CLIP_NORM, 0, 1e30, 0, -1, 5, "[0, 1e+30]"},
  };
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
    double lo, hi, v;
    int flags;
    ck_ok(nnkit_optimizer_bounds(&lo, &hi, &flags, b[i].kind, b[i].key));
    ck_assert_double_eq(lo, b[i].lo);
    ck_assert_double_eq(hi, b[i].hi);
    ck_assert_int_eq(flags, b[i].flags);
    nnkit_optimizer *opt = NULL;
    ck_ok(nnkit_optimizer_create(&opt, b[i].kind));
    double before;
    ck_ok(nnkit_optimizer_get(&before, opt, b[i].key));
    ck_fails(nnkit_optimizer_set(opt, b[i].key, b[i].bad), NNKIT_E_INVALID, b[i].says);
    ck_ok(nnkit_optimizer_get(&v, opt, b[i].key));
    ck_assert_double_eq(v, before);
    ck_ok(nnkit_optimizer_set(opt, b[i].key, b[i].good));
    ck_ok(nnkit_optimizer_get(&v, opt, b[i].key));
    ck_assert_double_eq(v, b[i].good);
    nnkit_optimizer_free(opt);
  }
  /* Keys an algorithm does not have. */
  struct {
    nnkit_optim_kind kind;
    nnkit_optim_param key;
  } none[] = {
    {NNKIT_OPTIM_SGD, NNKIT_OPT_BETA1},     {NNKIT_OPTIM_SGD, NNKIT_OPT_EPS},
    {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_NESTEROV}, {NNKIT_OPTIM_ADAGRAD, NNKIT_OPT_MOMENTUM},
    {NNKIT_OPTIM_ADAM, NNKIT_OPT_DECAY},    {NNKIT_OPTIM_ADAMW, NNKIT_OPT_MOMENTUM},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_MOMENTUM}, {NNKIT_OPTIM_NADAM, NNKIT_OPT_NESTEROV},
    {NNKIT_OPTIM_NADAM, NNKIT_OPT_DECAY},   {NNKIT_OPTIM_ADAM, NNKIT_OPT_MOMENTUM_DECAY},
    {NNKIT_OPTIM_SGD, NNKIT_OPT_MOMENTUM_DECAY},
  };
  for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
    nnkit_optimizer *opt = NULL;
    double v;
    ck_ok(nnkit_optimizer_create(&opt, none[i].kind));
    ck_fails(nnkit_optimizer_set(opt, none[i].key, 0.5), NNKIT_E_INVALID,
             "no hyperparameter");
    ck_fails(nnkit_optimizer_get(&v, opt, none[i].key), NNKIT_E_INVALID,
             "no hyperparameter");
    ck_fails(nnkit_optimizer_bounds(NULL, NULL, NULL, none[i].kind, none[i].key),
             NNKIT_E_INVALID, "no hyperparameter");
    nnkit_optimizer_free(opt);
  }
}
END_TEST

START_TEST(sgd_step_is_closed_form)
{
  size_t in = 3;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 4));
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_fails(nnkit_optimizer_step(opt, net), NNKIT_E_STATE, "no parameters");
  ck_ok(nnkit_net_add_dense(net, 2));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.25));
  size_t np = nnkit_net_num_params(net);
  float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
  float before[8];
  for (size_t t = 1; t <= 3; t++) {
    for (size_t i = 0; i < np; i++)
      g[i] = (float)(i + 1) * (float)t * 0.1f;
    memcpy(before, p, np * sizeof(float));
    ck_ok(nnkit_optimizer_step(opt, net));
    for (size_t i = 0; i < np; i++)
      ck_assert_float_eq_tol(p[i], before[i] - 0.25f * g[i], 1e-7);
    ck_assert_uint_eq(nnkit_optimizer_steps(opt), t);
  }
  /* Plain SGD keeps no state. */
  ck_assert_uint_eq(nnkit_optimizer_state_size(opt), 0);
  ck_fails(nnkit_optimizer_step(NULL, net), NNKIT_E_INVALID, "NULL");
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

/* ---- optimizers against PyTorch and the formulas ------------------------- */

static const char *opt_cases[] = {
  "opt_sgd.txt",      "opt_sgd_wd.txt",       "opt_momentum.txt",
  "opt_momentum_groups.txt", "opt_nesterov.txt", "opt_rmsprop.txt",
  "opt_rmsprop_momentum.txt", "opt_adagrad.txt", "opt_adagrad_wd.txt",
  "opt_adam.txt",     "opt_adam_wd.txt",      "opt_adam_groups.txt",
  "opt_adamw.txt",    "opt_adamw_groups.txt", "opt_nadam.txt",
  "opt_nadam_wd.txt", "opt_nadam_groups.txt",
};
#define NUM_OPT_CASES (sizeof opt_cases / sizeof opt_cases[0])

START_TEST(matches_torch_and_formula)
{
  opt_case *c = malloc(sizeof *c);
  read_opt_case(c, opt_cases[_i]);
  nnkit_net *net = small_net(3);
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, c->kind));
  for (size_t k = 0; k < c->nsets; k++)
    ck_ok(nnkit_optimizer_set(opt, c->keys[k], c->vals[k]));
  for (size_t l = 0; l < 3; l++)
    ck_ok(nnkit_net_set_lr_multiplier(net, l, c->lr_mult[l]));
  ref_opt ref;
  ref_init(&ref, opt);
  double x[MAXN];
  float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
  for (size_t i = 0; i < c->n; i++) {
    p[i] = (float)c->init[i];
    x[i] = p[i];
  }
  double worst_torch = 0, worst_ref = 0;
  for (size_t s = 0; s < c->steps; s++) {
    for (size_t l = 0; l < 3; l += 2)
      ck_ok(nnkit_net_set_trainable(net, l, !c->frozen[l][s]));
    for (size_t i = 0; i < c->n; i++)
      g[i] = (float)c->grad[s][i];
    double gd[MAXN];
    for (size_t i = 0; i < c->n; i++)
      gd[i] = g[i];
    ck_ok(nnkit_optimizer_step(opt, net));
    if (!c->frozen[0][s])
      ref_layer_step(&ref, x, gd, 0, 8, 0, c->lr_mult[0]);
    if (!c->frozen[2][s])
      ref_layer_step(&ref, x, gd, 8, 14, 2, c->lr_mult[2]);
    for (size_t i = 0; i < c->n; i++) {
      double t = c->after[s][i];
      ck_assert_msg(close_rel(p[i], t, 1e-6),
                    "%s step %zu param %zu: nnkit %.9g, torch %.9g", opt_cases[_i], s, i,
                    (double)p[i], t);
      ck_assert_msg(close_rel(p[i], x[i], 1e-6),
                    "%s step %zu param %zu: nnkit %.9g, formula %.9g", opt_cases[_i], s,
                    i, (double)p[i], x[i]);
      double s1 = fabs(t) > 1 ? fabs(t) : 1;
      if (fabs(p[i] - t) / s1 > worst_torch)
        worst_torch = fabs(p[i] - t) / s1;
      if (fabs(p[i] - x[i]) / s1 > worst_ref)
        worst_ref = fabs(p[i] - x[i]) / s1;
    }
  }
  ck_assert_uint_eq(nnkit_optimizer_steps(opt), c->steps);
  /* The update moved the parameters well beyond the tolerance. */
  double moved = 0;
  for (size_t i = 0; i < c->n; i++)
    moved += fabs(c->after[c->steps - 1][i] - c->init[i]);
  ck_assert_double_gt(moved, 1e-3);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  free(c);
}
END_TEST

/* Adam's bias correction counts each layer's own updates, so a layer
 * unfrozen late starts with full-size steps, as in PyTorch. */
START_TEST(layer_step_counts)
{
  nnkit_net *net = small_net(5);
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_ADAM));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.1));
  ck_ok(nnkit_net_set_trainable(net, 2, 0));
  float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
  for (int s = 0; s < 5; s++) {
    for (size_t i = 0; i < 14; i++)
      g[i] = 1.0f;
    ck_ok(nnkit_optimizer_step(opt, net));
  }
  ck_ok(nnkit_net_set_trainable(net, 2, 1));
  float before[14];
  memcpy(before, p, sizeof before);
  ck_ok(nnkit_optimizer_step(opt, net));
  /* First Adam step of a constant gradient moves by lr exactly. */
  for (size_t i = 8; i < 14; i++)
    ck_assert_float_eq_tol(before[i] - p[i], 0.1f, 1e-6f);
  ck_assert_uint_eq(nnkit_optimizer_steps(opt), 6);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

/* ---- state: read out, restore, reset ------------------------------------- */

static nnkit_optimizer *configured(nnkit_optim_kind kind)
{
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, kind));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.05));
  if (kind == NNKIT_OPTIM_SGD || kind == NNKIT_OPTIM_RMSPROP)
    ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.8));
  if (kind == NNKIT_OPTIM_SGD)
    ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_NESTEROV, 1));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_CLIP_NORM, 3.0));
  nnkit_schedule *s = NULL;
  ck_ok(nnkit_schedule_create(&s, NNKIT_SCHEDULE_PLATEAU));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_PATIENCE, 1));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_GAMMA, 0.5));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_WARMUP_STEPS, 2));
  ck_ok(nnkit_optimizer_set_schedule(opt, s));
  nnkit_regularizer *r = NULL;
  ck_ok(nnkit_regularizer_create(&r, NNKIT_REG_L2, 1e-3));
  ck_ok(nnkit_optimizer_add_regularizer(opt, r));
  return opt;
}

static void run_steps(nnkit_optimizer *opt, nnkit_net *net, size_t from, size_t to)
{
  float *g = nnkit_net_grads(net);
  for (size_t s = from; s < to; s++) {
    fill_grads(g, nnkit_net_num_params(net), s);
    ck_ok(nnkit_net_set_trainable(net, 0, s % 4 != 1)); /* freeze now and then */
    ck_ok(nnkit_optimizer_step(opt, net));
    if (nnkit_optimizer_schedule(opt))
      ck_ok(nnkit_optimizer_schedule_step(opt, (double)(s % 3)));
  }
}

static const nnkit_optim_kind all_kinds[] = {
  NNKIT_OPTIM_SGD, NNKIT_OPTIM_RMSPROP, NNKIT_OPTIM_ADAGRAD, NNKIT_OPTIM_ADAM,
  NNKIT_OPTIM_ADAMW, NNKIT_OPTIM_NADAM};

START_TEST(state_round_trip_resumes_identically)
{
  nnkit_optim_kind kind = all_kinds[_i];
  /* Reference: 12 uninterrupted steps. */
  nnkit_net *a = small_net(9);
  nnkit_optimizer *oa = configured(kind);
  float init[14];
  memcpy(init, nnkit_net_params(a), sizeof init);
  run_steps(oa, a, 0, 12);

  /* 5 steps, save, restore into fresh objects, 7 more. */
  nnkit_net *b = small_net(9);
  nnkit_optimizer *ob = configured(kind);
  run_steps(ob, b, 0, 5);
  size_t ns = nnkit_optimizer_state_size(ob), nc = nnkit_optimizer_state_scalars(ob);
  size_t bufs = kind == NNKIT_OPTIM_ADAGRAD ? 1 : 2;
  if (kind == NNKIT_OPTIM_SGD)
    bufs = 1;
  ck_assert_uint_eq(ns, bufs * 14);
  float *state = malloc(ns * sizeof *state);
  double *scal = malloc(nc * sizeof *scal);
  ck_fails(nnkit_optimizer_get_state(state, ns - 1, scal, nc, ob), NNKIT_E_INVALID,
           "floats");
  ck_fails(nnkit_optimizer_get_state(state, ns, scal, nc - 1, ob), NNKIT_E_INVALID,
           "scalars");
  ck_ok(nnkit_optimizer_get_state(state, ns, scal, nc, ob));
  float params5[14];
  memcpy(params5, nnkit_net_params(b), sizeof params5);
  double lr5;
  ck_ok(nnkit_optimizer_get(&lr5, ob, NNKIT_OPT_LR));
  nnkit_optimizer_free(ob);
  nnkit_net_free(b);

  nnkit_net *c = small_net(1234); /* different init, overwritten */
  memcpy(nnkit_net_params(c), params5, sizeof params5);
  nnkit_optimizer *oc = configured(kind);
  ck_ok(nnkit_optimizer_set_state(oc, c, state, ns, scal, nc));
  ck_assert_uint_eq(nnkit_optimizer_steps(oc), 5);
  ck_assert_uint_eq(nnkit_schedule_steps(nnkit_optimizer_schedule(oc)), 5);
  double lr;
  ck_ok(nnkit_optimizer_get(&lr, oc, NNKIT_OPT_LR));
  ck_assert_double_eq(lr, lr5);
  run_steps(oc, c, 5, 12);
  ck_assert_msg(memcmp(nnkit_net_params(a), nnkit_net_params(c), 14 * sizeof(float)) == 0,
                "resumed training differs from uninterrupted training");
  ck_assert_uint_eq(nnkit_optimizer_steps(oc), nnkit_optimizer_steps(oa));
  double la, lc;
  ck_ok(nnkit_optimizer_get(&la, oa, NNKIT_OPT_LR));
  ck_ok(nnkit_optimizer_get(&lc, oc, NNKIT_OPT_LR));
  ck_assert_double_eq(la, lc);
  ck_assert_double_lt(la, 0.05); /* the plateau schedule did reduce it */
  (void)init;
  free(state);
  free(scal);
  nnkit_optimizer_free(oa);
  nnkit_optimizer_free(oc);
  nnkit_net_free(a);
  nnkit_net_free(c);
}
END_TEST

START_TEST(state_errors)
{
  nnkit_net *net = small_net(2);
  nnkit_optimizer *opt = configured(NNKIT_OPTIM_ADAM);
  run_steps(opt, net, 0, 3);
  size_t ns = nnkit_optimizer_state_size(opt), nc = nnkit_optimizer_state_scalars(opt);
  float state[28];
  double scal[32], bad[32];
  ck_assert_uint_eq(ns, 28);
  ck_assert_uint_le(nc, 32);
  ck_ok(nnkit_optimizer_get_state(state, ns, scal, nc, opt));
  ck_fails(nnkit_optimizer_get_state(state, ns, NULL, nc, opt), NNKIT_E_INVALID, "NULL");

  nnkit_optimizer *other = NULL;
  ck_ok(nnkit_optimizer_create(&other, NNKIT_OPTIM_SGD));
  ck_fails(nnkit_optimizer_set_state(other, net, state, ns, scal, nc), NNKIT_E_INVALID,
           "kind");
  nnkit_optimizer_free(other);
  nnkit_optimizer *plain = NULL;
  ck_ok(nnkit_optimizer_create(&plain, NNKIT_OPTIM_ADAM));
  ck_fails(nnkit_optimizer_set_state(plain, net, state, ns, scal, nc), NNKIT_E_INVALID,
           "attach");
  nnkit_optimizer_free(plain);

  ck_fails(nnkit_optimizer_set_state(opt, NULL, state, ns, scal, nc), NNKIT_E_INVALID,
           "NULL");
  ck_fails(nnkit_optimizer_set_state(opt, net, state, ns - 1, scal, nc), NNKIT_E_INVALID,
           "floats");
  ck_fails(nnkit_optimizer_set_state(opt, net, state, ns, scal, nc - 1),
           NNKIT_E_INVALID, "scalars");
  ck_fails(nnkit_optimizer_set_state(opt, net, state, ns, scal, 3), NNKIT_E_INVALID,
           "not a saved optimizer state");
  memcpy(bad, scal, nc * sizeof *bad);
  bad[0] = 7;
  ck_fails(nnkit_optimizer_set_state(opt, net, state, ns, bad, nc), NNKIT_E_INVALID,
           "version 7");
  memcpy(bad, scal, nc * sizeof *bad);
  bad[2] = -1;
  ck_fails(nnkit_optimizer_set_state(opt, net, state, ns, bad, nc), NNKIT_E_INVALID,
           "not a count");
  memcpy(bad, scal, nc * sizeof *bad);
  bad[6] = 0.5; /* layer 0's step count */
  ck_fails(nnkit_optimizer_set_state(opt, net, state, ns, bad, nc), NNKIT_E_INVALID,
           "layer 0");
  memcpy(bad, scal, nc * sizeof *bad);
  bad[nc - 7] = (double)NNKIT_SCHEDULE_STEP; /* the schedule's kind */
  ck_fails(nnkit_optimizer_set_state(opt, net, state, ns, bad, nc), NNKIT_E_INVALID,
           "schedule");
  memcpy(bad, scal, nc * sizeof *bad);
  bad[nc - 4] = -2; /* plateau scale */
  ck_fails(nnkit_optimizer_set_state(opt, net, state, ns, bad, nc), NNKIT_E_INVALID,
           "not valid");

  /* Another net: different parameter count. */
  size_t in = 4;
  nnkit_net *big = NULL;
  ck_ok(nnkit_net_create(&big, &in, 1, 1));
  ck_ok(nnkit_net_add_dense(big, 5));
  ck_fails(nnkit_optimizer_set_state(opt, big, state, ns, scal, nc), NNKIT_E_INVALID,
           "parameters");
  ck_fails(nnkit_optimizer_step(opt, big), NNKIT_E_STATE, "nnkit_optimizer_reset");

  /* Nothing changed through all of that: the saved state still restores. */
  double again[32];
  float sagain[28];
  ck_ok(nnkit_optimizer_get_state(sagain, ns, again, nc, opt));
  ck_assert(memcmp(again, scal, nc * sizeof *again) == 0);
  ck_assert(memcmp(sagain, state, ns * sizeof *sagain) == 0);
  ck_ok(nnkit_optimizer_set_state(opt, net, state, ns, scal, nc));
  nnkit_net_free(big);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

START_TEST(reset_forgets_state)
{
  nnkit_net *net = small_net(2);
  nnkit_optimizer *opt = configured(NNKIT_OPTIM_RMSPROP);
  double lr0;
  ck_ok(nnkit_optimizer_get(&lr0, opt, NNKIT_OPT_LR));
  run_steps(opt, net, 0, 8);
  ck_assert_uint_eq(nnkit_optimizer_state_size(opt), 28);
  double lr;
  ck_ok(nnkit_optimizer_get(&lr, opt, NNKIT_OPT_LR));
  ck_assert_double_ne(lr, lr0);
  nnkit_optimizer_reset(opt);
  nnkit_optimizer_reset(NULL);
  ck_assert_uint_eq(nnkit_optimizer_steps(opt), 0);
  ck_assert_uint_eq(nnkit_optimizer_state_size(opt), 0);
  ck_assert_uint_eq(nnkit_schedule_steps(nnkit_optimizer_schedule(opt)), 0);
  ck_ok(nnkit_optimizer_get(&lr, opt, NNKIT_OPT_LR));
  ck_assert_double_eq(lr, lr0);
  /* After a reset the optimizer takes another net. */
  size_t in = 4;
  nnkit_net *big = NULL;
  ck_ok(nnkit_net_create(&big, &in, 1, 1));
  ck_ok(nnkit_net_add_dense(big, 5));
  ck_ok(nnkit_optimizer_step(opt, big));
  ck_assert_uint_eq(nnkit_optimizer_state_size(opt), 2 * 25); /* s and momentum */
  /* A state saved before any step round-trips too. */
  nnkit_optimizer_reset(opt);
  double scal[16];
  size_t nc = nnkit_optimizer_state_scalars(opt);
  ck_ok(nnkit_optimizer_get_state(NULL, 0, scal, nc, opt));
  ck_ok(nnkit_optimizer_set_state(opt, net, NULL, 0, scal, nc));
  ck_assert_uint_eq(nnkit_optimizer_state_size(opt), 0);
  nnkit_net_free(big);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

/* Momentum buffers exist only with momentum; turning it on later adds
 * one once. */
START_TEST(momentum_buffer_on_demand)
{
  nnkit_net *net = small_net(2);
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  run_steps(opt, net, 0, 2);
  ck_assert_uint_eq(nnkit_optimizer_state_size(opt), 0);
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.9));
  float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
  float before[14];
  memcpy(before, p, sizeof before);
  ck_ok(nnkit_net_set_trainable(net, 0, 1));
  fill_grads(g, 14, 0);
  ck_ok(nnkit_optimizer_step(opt, net));
  ck_assert_uint_eq(nnkit_optimizer_state_size(opt), 14);
  for (size_t i = 0; i < 14; i++) /* v started at 0: v = g */
    ck_assert_float_eq_tol(p[i], before[i] - 0.01f * g[i], 1e-7f);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

/* No allocation per step after the first, with everything switched on. */
START_TEST(steady_state_allocates_nothing)
{
  for (size_t k = 0; k < sizeof all_kinds / sizeof all_kinds[0]; k++) {
    nnkit_net *net = small_net(2);
    nnkit_optimizer *opt = configured(all_kinds[k]);
    ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_CLIP_VALUE, 0.5));
    nnkit_regularizer *r = NULL;
    ck_ok(nnkit_regularizer_create(&r, NNKIT_REG_MAX_NORM, 0.5));
    ck_ok(nnkit_optimizer_add_regularizer(opt, r));
    run_steps(opt, net, 0, 1);
    uint64_t before = nnkit__alloc_count();
    run_steps(opt, net, 1, 20);
    ck_assert_uint_eq(nnkit__alloc_count(), before);
    nnkit_optimizer_free(opt);
    nnkit_net_free(net);
  }
}
END_TEST

START_TEST(clone_copies_settings)
{
  nnkit_optimizer *opt = configured(NNKIT_OPTIM_ADAMW), *c = NULL;
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_BETA2, 0.95));
  nnkit_net *net = small_net(1);
  run_steps(opt, net, 0, 3);
  ck_ok(nnkit__optimizer_clone(&c, opt));
  ck_assert_int_eq(nnkit_optimizer_kind(c), NNKIT_OPTIM_ADAMW);
  double v;
  ck_ok(nnkit_optimizer_get(&v, c, NNKIT_OPT_BETA2));
  ck_assert_double_eq(v, 0.95);
  ck_ok(nnkit_optimizer_get(&v, c, NNKIT_OPT_LR));
  ck_assert_double_eq(v, 0.05); /* the base rate, not the warm-up's */
  ck_ok(nnkit_optimizer_get(&v, c, NNKIT_OPT_CLIP_NORM));
  ck_assert_double_eq(v, 3.0);
  ck_assert_uint_eq(nnkit_optimizer_num_regularizers(c), 1);
  ck_assert_ptr_null(nnkit_optimizer_schedule(c));
  ck_assert_uint_eq(nnkit_optimizer_steps(c), 0);
  ck_assert_uint_eq(nnkit_optimizer_state_size(c), 0);
  nnkit_optimizer_free(c);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

/* ---- freezing and learning-rate multipliers ----------------------------- */

START_TEST(trainable_api)
{
  nnkit_net *net = small_net(1);
  ck_assert_int_eq(nnkit_net_is_trainable(net, 0), 1);
  ck_assert_int_eq(nnkit_net_is_trainable(net, 1), 1);
  ck_assert_int_eq(nnkit_net_is_trainable(net, 3), 0);
  ck_assert_int_eq(nnkit_net_is_trainable(NULL, 0), 0);
  ck_ok(nnkit_net_set_trainable(net, 0, 0));
  ck_assert_int_eq(nnkit_net_is_trainable(net, 0), 0);
  ck_ok(nnkit_net_set_trainable(net, 0, 7));
  ck_assert_int_eq(nnkit_net_is_trainable(net, 0), 1);
  ck_ok(nnkit_net_set_trainable(net, 1, 0)); /* no parameters: allowed */
  ck_fails(nnkit_net_set_trainable(net, 3, 0), NNKIT_E_INVALID, "layer 3 does not exist");
  ck_fails(nnkit_net_set_trainable(NULL, 0, 0), NNKIT_E_INVALID, "NULL");
  double m;
  ck_ok(nnkit_net_get_lr_multiplier(&m, net, 2));
  ck_assert_double_eq(m, 1.0);
  ck_ok(nnkit_net_set_lr_multiplier(net, 2, 0.125));
  ck_ok(nnkit_net_get_lr_multiplier(&m, net, 2));
  ck_assert_double_eq(m, 0.125);
  ck_fails(nnkit_net_set_lr_multiplier(net, 2, -1), NNKIT_E_INVALID, "[0, 1e+06]");
  ck_fails(nnkit_net_set_lr_multiplier(net, 2, NAN), NNKIT_E_INVALID, "range");
  ck_fails(nnkit_net_set_lr_multiplier(net, 9, 1), NNKIT_E_INVALID, "does not exist");
  ck_fails(nnkit_net_get_lr_multiplier(&m, net, 9), NNKIT_E_INVALID, "does not exist");
  ck_fails(nnkit_net_get_lr_multiplier(NULL, net, 0), NNKIT_E_INVALID, "NULL");
  ck_ok(nnkit_net_get_lr_multiplier(&m, net, 2));
  ck_assert_double_eq(m, 0.125);
  nnkit_net_free(net);
}
END_TEST

/* Frozen layers come out of a whole fit bit-identical, with every optimizer
 * and every extra switched on; the others train. */
START_TEST(frozen_layers_bit_identical_after_training)
{
  nnkit_optim_kind kind = all_kinds[_i];
  nnkit_dataset *ds = blobs(200, 5);
  nnkit_net *net = blob_mlp(7);
  size_t off0, n0, off2, n2, off4, n4;
  ck_ok(nnkit_net_layer_params(&off0, &n0, net, 0));
  ck_ok(nnkit_net_layer_params(&off2, &n2, net, 2));
  ck_ok(nnkit_net_layer_params(&off4, &n4, net, 4));
  ck_ok(nnkit_net_set_trainable(net, 2, 0));
  float *p = nnkit_net_params(net);
  size_t np = nnkit_net_num_params(net);
  float *before = malloc(np * sizeof *before);
  memcpy(before, p, np * sizeof *before);
  nnkit_optimizer *opt = configured(kind);
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_WEIGHT_DECAY, 0.01));
  nnkit_regularizer *r = NULL;
  ck_ok(nnkit_regularizer_create(&r, NNKIT_REG_MAX_NORM, 0.3));
  ck_ok(nnkit_optimizer_add_regularizer(opt, r));
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 3));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 16));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  ck_assert_msg(memcmp(p + off2, before + off2, n2 * sizeof *p) == 0,
                "a frozen layer's parameters changed");
  ck_assert(memcmp(p + off0, before + off0, n0 * sizeof *p) != 0);
  ck_assert(memcmp(p + off4, before + off4, n4 * sizeof *p) != 0);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
  free(before);
}
END_TEST

/* ---- schedules ----------------------------------------------------------- */

typedef struct sched_case {
  nnkit_sched_kind kind;
  size_t nsets;
  nnkit_sched_param keys[MAXSETS];
  double vals[MAXSETS];
  uint64_t milestones[8];
  size_t nm;
  double base;
  size_t steps;
  double metrics[64];
  int have_metrics;
  double lrs[65];
} sched_case;

static void read_sched_case(sched_case *c, const char *name)
{
  memset(c, 0, sizeof *c);
  FILE *f = open_fixture(name);
  char line[8192], word[64];
  double v[80];
  size_t nl = 0;
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#' || sscanf(line, "%63s", word) != 1)
      continue;
    size_t k = numbers(line, v, 80);
    if (!strcmp(word, "kind")) {
      char kn[64];
      ck_assert(sscanf(line, "kind %63s", kn) == 1);
      c->kind = (nnkit_sched_kind)lookup(sched_kinds, kn);
    } else if (!strcmp(word, "set")) {
      char kn[64];
      double val;
      ck_assert(sscanf(line, "set %63s %lf", kn, &val) == 2);
      c->keys[c->nsets] = (nnkit_sched_param)lookup(sched_keys, kn);
      c->vals[c->nsets++] = val;
    } else if (!strcmp(word, "milestones")) {
      for (size_t i = 0; i < k; i++)
        c->milestones[i] = (uint64_t)v[i];
      c->nm = k;
    } else if (!strcmp(word, "base")) {
      c->base = v[0];
    } else if (!strcmp(word, "steps")) {
      c->steps = (size_t)v[0];
      ck_assert_uint_le(c->steps, 64);
    } else if (!strcmp(word, "metrics")) {
      ck_assert_uint_eq(k, c->steps);
      memcpy(c->metrics, v, k * sizeof *v);
      c->have_metrics = 1;
    } else if (!strcmp(word, "lrs")) {
      nl = k;
      memcpy(c->lrs, v, k * sizeof *v);
    }
  }
  fclose(f);
  ck_assert_uint_eq(nl, c->steps + 1);
}

/* The closed-form rates of nnkit_sched_kind, written out again. */
static double formula_lr(const sched_case *c, size_t t)
{
  double gamma = 0.1, step = 10, tmax = 10, min = 0, t0 = 10, tmult = 1, w = 0,
         ws = 1.0 / 3.0;
  if (c->kind == NNKIT_SCHEDULE_EXPONENTIAL)
    gamma = 0.95;
  for (size_t i = 0; i < c->nsets; i++) {
    double x = c->vals[i];
    switch (c->keys[i]) {
    case NNKIT_SCHED_GAMMA: gamma = x; break;
    case NNKIT_SCHED_STEP_SIZE: step = x; break;
    case NNKIT_SCHED_T_MAX: tmax = x; break;
    case NNKIT_SCHED_MIN_LR: min = x; break;
    case NNKIT_SCHED_T_0: t0 = x; break;
    case NNKIT_SCHED_T_MULT: tmult = x; break;
    case NNKIT_SCHED_WARMUP_STEPS: w = x; break;
    case NNKIT_SCHED_WARMUP_START: ws = x; break;
    default: break;
    }
  }
  double b = c->base, pi = 3.14159265358979323846;
  if ((double)t < w)
    return b * (ws + (1 - ws) * (double)t / w);
  double u = (double)t - w;
  switch (c->kind) {
  case NNKIT_SCHEDULE_CONSTANT: return b;
  case NNKIT_SCHEDULE_STEP: return b * pow(gamma, floor(u / step));
  case NNKIT_SCHEDULE_MULTISTEP: {
    int k = 0;
    for (size_t i = 0; i < c->nm; i++)
      k += (double)c->milestones[i] <= u;
    return b * pow(gamma, k);
  }
  case NNKIT_SCHEDULE_EXPONENTIAL: return b * pow(gamma, u);
  case NNKIT_SCHEDULE_COSINE: return min + (b - min) * (1 + cos(pi * u / tmax)) / 2;
  case NNKIT_SCHEDULE_COSINE_RESTARTS: {
    /* T_cur and T_i by PyTorch's closed form with logarithms. */
    double tcur, ti;
    if (tmult == 1) {
      tcur = fmod(u, t0);
      ti = t0;
    } else {
      double n = floor(log(u / t0 * (tmult - 1) + 1) / log(tmult) + 1e-9);
      tcur = u - t0 * (pow(tmult, n) - 1) / (tmult - 1);
      ti = t0 * pow(tmult, n);
    }
    return min + (b - min) * (1 + cos(pi * tcur / ti)) / 2;
  }
  default: return NAN; /* plateau: no closed form */
  }
}

static const char *sched_cases[] = {
  "sched_constant.txt",    "sched_step.txt",         "sched_multistep.txt",
  "sched_exponential.txt", "sched_cosine.txt",       "sched_restarts.txt",
  "sched_restarts_mult1.txt", "sched_warmup_cosine.txt", "sched_warmup_step.txt",
  "sched_plateau.txt",     "sched_plateau_max_abs.txt",
};
#define NUM_SCHED_CASES (sizeof sched_cases / sizeof sched_cases[0])

START_TEST(schedule_matches_torch_and_formula)
{
  sched_case *c = malloc(sizeof *c);
  read_sched_case(c, sched_cases[_i]);
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, c->base));
  nnkit_schedule *s = NULL;
  ck_ok(nnkit_schedule_create(&s, c->kind));
  ck_assert_int_eq(nnkit_schedule_kind(s), c->kind);
  for (size_t i = 0; i < c->nsets; i++)
    ck_ok(nnkit_schedule_set(s, c->keys[i], c->vals[i]));
  if (c->nm)
    ck_ok(nnkit_schedule_set_milestones(s, c->milestones, c->nm));
  ck_ok(nnkit_optimizer_set_schedule(opt, s));
  ck_assert_ptr_eq(nnkit_optimizer_schedule(opt), s);
  int changed = 0;
  for (size_t t = 0; t <= c->steps; t++) {
    double lr;
    ck_ok(nnkit_optimizer_get(&lr, opt, NNKIT_OPT_LR));
    ck_assert_msg(fabs(lr - c->lrs[t]) <= 1e-6 * fabs(c->lrs[t]) + 1e-12,
                  "%s step %zu: nnkit lr %.12g, torch %.12g", sched_cases[_i], t, lr,
                  c->lrs[t]);
    double f = formula_lr(c, t);
    if (!isnan(f))
      ck_assert_msg(fabs(lr - f) <= 1e-9 * fabs(f) + 1e-15,
                    "%s step %zu: nnkit lr %.12g, formula %.12g", sched_cases[_i], t,
                    lr, f);
    changed += t > 0 && c->lrs[t] != c->lrs[t - 1];
    ck_assert_uint_eq(nnkit_schedule_steps(s), t);
    if (t < c->steps)
      ck_ok(nnkit_optimizer_schedule_step(opt, c->have_metrics ? c->metrics[t] : NAN));
  }
  if (c->kind != NNKIT_SCHEDULE_CONSTANT)
    ck_assert_int_gt(changed, 0);
  nnkit_optimizer_free(opt);
  free(c);
}
END_TEST

START_TEST(schedule_keys_and_bounds)
{
  nnkit_schedule *s = (nnkit_schedule *)1;
  ck_fails(nnkit_schedule_create(&s, (nnkit_sched_kind)0), NNKIT_E_INVALID,
           "unknown schedule");
  ck_assert_ptr_null(s);
  ck_fails(nnkit_schedule_create(NULL, NNKIT_SCHEDULE_STEP), NNKIT_E_INVALID, "NULL");
  ck_ok(nnkit_schedule_create(&s, NNKIT_SCHEDULE_STEP));
  double v, lo, hi;
  int flags;
  ck_ok(nnkit_schedule_get(&v, s, NNKIT_SCHED_GAMMA));
  ck_assert_double_eq(v, 0.1);
  ck_ok(nnkit_schedule_get(&v, s, NNKIT_SCHED_WARMUP_START));
  ck_assert_double_eq(v, 1.0 / 3.0);
  ck_fails(nnkit_schedule_set(s, NNKIT_SCHED_GAMMA, 0), NNKIT_E_INVALID,
           "step schedule gamma 0 is outside its range (0, 1]");
  ck_fails(nnkit_schedule_set(s, NNKIT_SCHED_STEP_SIZE, 2.5), NNKIT_E_INVALID,
           "must be an integer in [1, 1e+09]");
  ck_fails(nnkit_schedule_set(s, NNKIT_SCHED_STEP_SIZE, 0), NNKIT_E_INVALID,
           "[1, 1e+09]");
  ck_fails(nnkit_schedule_set(s, NNKIT_SCHED_T_MAX, 5), NNKIT_E_INVALID,
           "no setting with key 3");
  ck_fails(nnkit_schedule_get(&v, s, NNKIT_SCHED_PATIENCE), NNKIT_E_INVALID,
           "no setting");
  ck_fails(nnkit_schedule_set(s, NNKIT_SCHED_PER_BATCH, 2), NNKIT_E_INVALID, "0 or 1");
  ck_fails(nnkit_schedule_set(s, NNKIT_SCHED_WARMUP_START, 1.5), NNKIT_E_INVALID,
           "[0, 1]");
  ck_fails(nnkit_schedule_set(NULL, NNKIT_SCHED_GAMMA, 0.5), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_schedule_get(NULL, s, NNKIT_SCHED_GAMMA), NNKIT_E_INVALID, "NULL");
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_GAMMA, 1));
  uint64_t m[3] = {3, 2, 9};
  ck_fails(nnkit_schedule_set_milestones(s, m, 3), NNKIT_E_INVALID, "only");
  nnkit_schedule_free(s);
  nnkit_schedule_free(NULL);

  ck_ok(nnkit_schedule_create(&s, NNKIT_SCHEDULE_MULTISTEP));
  ck_fails(nnkit_schedule_set_milestones(s, m, 3), NNKIT_E_INVALID,
           "milestone 1 (2) is not above the one before (3)");
  ck_fails(nnkit_schedule_set_milestones(s, NULL, 3), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_schedule_set_milestones(s, m, 5000), NNKIT_E_INVALID, "at most 1024");
  m[1] = 5;
  ck_ok(nnkit_schedule_set_milestones(s, m, 3));
  ck_ok(nnkit_schedule_set_milestones(s, m, 2));
  ck_ok(nnkit_schedule_set_milestones(s, NULL, 0));
  nnkit_schedule_free(s);

  /* Reduce-on-plateau has no per-batch mode; its factor must be below 1. */
  ck_ok(nnkit_schedule_create(&s, NNKIT_SCHEDULE_PLATEAU));
  ck_fails(nnkit_schedule_set(s, NNKIT_SCHED_PER_BATCH, 1), NNKIT_E_INVALID,
           "no setting");
  ck_fails(nnkit_schedule_set(s, NNKIT_SCHED_GAMMA, 1), NNKIT_E_INVALID,
           "reduce-on-plateau schedule reduction factor 1 is outside its range (0, 1)");
  ck_ok(nnkit_schedule_get(&v, s, NNKIT_SCHED_PATIENCE));
  ck_assert_double_eq(v, 10);
  nnkit_schedule_free(s);

  ck_ok(nnkit_schedule_bounds(&lo, &hi, &flags, NNKIT_SCHEDULE_EXPONENTIAL,
                              NNKIT_SCHED_GAMMA));
  ck_assert_double_eq(lo, 0);
  ck_assert_double_eq(hi, 1);
  ck_assert_int_eq(flags, NNKIT_BOUND_LO_OPEN);
  ck_ok(nnkit_schedule_bounds(&lo, &hi, &flags, NNKIT_SCHEDULE_COSINE_RESTARTS,
                              NNKIT_SCHED_T_MULT));
  ck_assert_double_eq(lo, 1);
  ck_assert_int_eq(flags, NNKIT_BOUND_INTEGER);
  ck_ok(nnkit_schedule_bounds(NULL, NULL, NULL, NNKIT_SCHEDULE_CONSTANT,
                              NNKIT_SCHED_WARMUP_STEPS));
  ck_fails(nnkit_schedule_bounds(&lo, &hi, &flags, NNKIT_SCHEDULE_CONSTANT,
                                 NNKIT_SCHED_GAMMA),
           NNKIT_E_INVALID, "no setting");
  ck_fails(nnkit_schedule_bounds(&lo, &hi, &flags, (nnkit_sched_kind)77,
                                 NNKIT_SCHED_GAMMA),
           NNKIT_E_INVALID, "unknown schedule");
}
END_TEST

START_TEST(schedule_attach_rules)
{
  nnkit_optimizer *a = NULL, *b = NULL;
  ck_ok(nnkit_optimizer_create(&a, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_create(&b, NNKIT_OPTIM_ADAM));
  ck_fails(nnkit_optimizer_schedule_step(a, 0), NNKIT_E_STATE, "no schedule");
  ck_fails(nnkit_optimizer_schedule_step(NULL, 0), NNKIT_E_INVALID, "NULL");
  ck_assert_ptr_null(nnkit_optimizer_schedule(a));
  ck_ok(nnkit_optimizer_set(a, NNKIT_OPT_LR, 0.2));
  nnkit_schedule *s = NULL;
  ck_ok(nnkit_schedule_create(&s, NNKIT_SCHEDULE_EXPONENTIAL));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_GAMMA, 0.5));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_WARMUP_STEPS, 2));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_WARMUP_START, 0.5));
  ck_fails(nnkit_optimizer_set_schedule(NULL, s), NNKIT_E_INVALID, "NULL");
  ck_ok(nnkit_optimizer_set_schedule(a, s));
  ck_ok(nnkit_optimizer_set_schedule(a, s)); /* again: no-op */
  ck_fails(nnkit_optimizer_set_schedule(b, s), NNKIT_E_INVALID, "another optimizer");
  nnkit_schedule_free(s); /* attached: does nothing */
  double lr;
  ck_ok(nnkit_optimizer_get(&lr, a, NNKIT_OPT_LR));
  ck_assert_double_eq_tol(lr, 0.1, 1e-15); /* warm-up starts at half */
  ck_ok(nnkit_optimizer_schedule_step(a, NAN));
  ck_ok(nnkit_optimizer_schedule_step(a, NAN));
  ck_ok(nnkit_optimizer_schedule_step(a, NAN));
  ck_ok(nnkit_optimizer_get(&lr, a, NNKIT_OPT_LR));
  ck_assert_double_eq_tol(lr, 0.1, 1e-15); /* 0.2 * 0.5^1 */
  /* Setting LR with a schedule sets the base. */
  ck_ok(nnkit_optimizer_set(a, NNKIT_OPT_LR, 0.4));
  ck_ok(nnkit_optimizer_get(&lr, a, NNKIT_OPT_LR));
  ck_assert_double_eq_tol(lr, 0.2, 1e-15);
  /* A new schedule replaces (and frees) the old one and keeps the base. */
  nnkit_schedule *c = NULL;
  ck_ok(nnkit_schedule_create(&c, NNKIT_SCHEDULE_CONSTANT));
  ck_ok(nnkit_optimizer_set_schedule(a, c));
  ck_ok(nnkit_optimizer_get(&lr, a, NNKIT_OPT_LR));
  ck_assert_double_eq_tol(lr, 0.4, 1e-15);
  ck_assert_uint_eq(nnkit_schedule_steps(c), 0);
  /* Detaching leaves the rate. */
  ck_ok(nnkit_optimizer_set_schedule(a, NULL));
  ck_assert_ptr_null(nnkit_optimizer_schedule(a));
  ck_ok(nnkit_optimizer_get(&lr, a, NNKIT_OPT_LR));
  ck_assert_double_eq_tol(lr, 0.4, 1e-15);
  nnkit_optimizer_free(a);
  nnkit_optimizer_free(b);
}
END_TEST

typedef struct captured {
  char lines[16][256];
  int n;
} captured;

static void capture(const char *line, void *user)
{
  captured *c = user;
  if (c->n < 16)
    snprintf(c->lines[c->n++], 256, "%s", line);
}

/* The trainer steps a schedule per epoch (recording each epoch's rate),
 * per batch when asked, and feeds reduce-on-plateau the validation loss. */
START_TEST(trainer_steps_schedules)
{
  nnkit_dataset *ds = blobs(96, 3), *val = blobs(40, 4);
  nnkit_net *net = blob_mlp(1);
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.1));
  nnkit_schedule *s = NULL;
  ck_ok(nnkit_schedule_create(&s, NNKIT_SCHEDULE_STEP));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_STEP_SIZE, 2));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_GAMMA, 0.5));
  ck_ok(nnkit_optimizer_set_schedule(opt, s));
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 6));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 32));
  ck_ok(nnkit_trainer_fit(tr, ds, val));
  for (size_t e = 0; e < 6; e++) {
    double lr;
    ck_ok(nnkit_trainer_metric(&lr, tr, e, NNKIT_METRIC_LR));
    ck_assert_double_eq_tol(lr, 0.1 * pow(0.5, (double)(e / 2)), 1e-15);
  }
  ck_assert_uint_eq(nnkit_schedule_steps(s), 6);
  nnkit_trainer_free(tr);

  /* Per batch: 3 batches an epoch, 2 epochs. */
  ck_ok(nnkit_schedule_create(&s, NNKIT_SCHEDULE_EXPONENTIAL));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_PER_BATCH, 1));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_GAMMA, 0.5));
  ck_ok(nnkit_optimizer_set_schedule(opt, s));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 2));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 32));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  ck_assert_uint_eq(nnkit_schedule_steps(s), 6);
  double lr;
  ck_ok(nnkit_trainer_metric(&lr, tr, 0, NNKIT_METRIC_LR));
  ck_assert_double_eq_tol(lr, 0.1 * 0.25, 1e-15); /* used by the epoch's last batch */
  ck_ok(nnkit_trainer_metric(&lr, tr, 1, NNKIT_METRIC_LR));
  ck_assert_double_eq_tol(lr, 0.1 * pow(0.5, 5), 1e-15);
  nnkit_trainer_free(tr);

  /* Plateau with a threshold nothing meets: the first value counts as an
   * improvement, every later one as none, so with patience 0 the rate
   * halves from the second epoch on. */
  ck_ok(nnkit_schedule_create(&s, NNKIT_SCHEDULE_PLATEAU));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_PATIENCE, 0));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_THRESHOLD, 1e6));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_THRESHOLD_ABS, 1));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_GAMMA, 0.5));
  ck_ok(nnkit_optimizer_set_schedule(opt, s));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 4));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 1));
  captured cap = {0};
  nnkit_trainer_set_logger(tr, capture, &cap);
  ck_ok(nnkit_trainer_fit(tr, ds, val));
  double expect[4] = {0.1, 0.1, 0.05, 0.025};
  for (size_t e = 0; e < 4; e++) {
    ck_ok(nnkit_trainer_metric(&lr, tr, e, NNKIT_METRIC_LR));
    ck_assert_double_eq_tol(lr, expect[e], 1e-15);
  }
  ck_assert_msg(strstr(cap.lines[3], "lr 2.500000e-02") != NULL, "%s", cap.lines[3]);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
  nnkit_dataset_free(val);
}
END_TEST

/* ---- regularizers -------------------------------------------------------- */

START_TEST(regularizer_keys_and_bounds)
{
  nnkit_regularizer *r = (nnkit_regularizer *)1;
  ck_fails(nnkit_regularizer_create(&r, (nnkit_reg_kind)9, 1), NNKIT_E_INVALID,
           "unknown regularizer");
  ck_assert_ptr_null(r);
  ck_fails(nnkit_regularizer_create(&r, NNKIT_REG_L2, -1), NNKIT_E_INVALID,
           "L2 regularizer strength -1 is outside its range [0, 1e+06]");
  ck_fails(nnkit_regularizer_create(&r, NNKIT_REG_MAX_NORM, 0), NNKIT_E_INVALID,
           "max-norm constraint maximum norm 0 is outside its range (0, 1e+06]");
  ck_fails(nnkit_regularizer_create(NULL, NNKIT_REG_L2, 1), NNKIT_E_INVALID, "NULL");
  ck_ok(nnkit_regularizer_create(&r, NNKIT_REG_ELASTIC_NET, 0.01));
  ck_assert_int_eq(nnkit_regularizer_kind(r), NNKIT_REG_ELASTIC_NET);
  double v, lo, hi;
  int flags;
  ck_ok(nnkit_regularizer_get(&v, r, NNKIT_REG_STRENGTH));
  ck_assert_double_eq(v, 0.01);
  ck_ok(nnkit_regularizer_get(&v, r, NNKIT_REG_L1_RATIO));
  ck_assert_double_eq(v, 0.5);
  ck_ok(nnkit_regularizer_get(&v, r, NNKIT_REG_WITH_BIASES));
  ck_assert_double_eq(v, 0);
  ck_fails(nnkit_regularizer_set(r, NNKIT_REG_L1_RATIO, 1.5), NNKIT_E_INVALID, "[0, 1]");
  ck_fails(nnkit_regularizer_set(r, NNKIT_REG_WITH_BIASES, 0.5), NNKIT_E_INVALID,
           "0 or 1");
  ck_fails(nnkit_regularizer_set(r, NNKIT_REG_MAX, 2), NNKIT_E_INVALID, "no setting");
  ck_fails(nnkit_regularizer_get(&v, r, NNKIT_REG_MAX), NNKIT_E_INVALID, "no setting");
  ck_fails(nnkit_regularizer_set(NULL, NNKIT_REG_L1_RATIO, 0.5), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_regularizer_get(NULL, r, NNKIT_REG_L1_RATIO), NNKIT_E_INVALID, "NULL");
  ck_ok(nnkit_regularizer_set(r, NNKIT_REG_L1_RATIO, 0.25));
  ck_ok(nnkit_regularizer_set(r, NNKIT_REG_WITH_BATCHNORM, 1));
  ck_ok(nnkit_regularizer_get(&v, r, NNKIT_REG_L1_RATIO));
  ck_assert_double_eq(v, 0.25);
  size_t dup[3] = {2, 0, 2};
  ck_fails(nnkit_regularizer_set_layers(r, dup, 3), NNKIT_E_INVALID, "layer 2 is listed twice");
  ck_fails(nnkit_regularizer_set_layers(r, NULL, 2), NNKIT_E_INVALID, "NULL");
  ck_ok(nnkit_regularizer_set_layers(r, dup, 2));
  ck_ok(nnkit_regularizer_set_layers(r, NULL, 0));
  nnkit_regularizer_free(r);
  nnkit_regularizer_free(NULL);

  ck_ok(nnkit_regularizer_bounds(&lo, &hi, &flags, NNKIT_REG_MAX_NORM, NNKIT_REG_MAX));
  ck_assert_double_eq(lo, 0);
  ck_assert_double_eq(hi, 1e6);
  ck_assert_int_eq(flags, NNKIT_BOUND_LO_OPEN);
  ck_ok(nnkit_regularizer_bounds(NULL, NULL, NULL, NNKIT_REG_L1, NNKIT_REG_STRENGTH));
  ck_fails(nnkit_regularizer_bounds(&lo, &hi, &flags, NNKIT_REG_MAX_NORM,
                                    NNKIT_REG_WITH_BIASES),
           NNKIT_E_INVALID, "no setting");
  ck_fails(nnkit_regularizer_bounds(&lo, &hi, &flags, (nnkit_reg_kind)0,
                                    NNKIT_REG_STRENGTH),
           NNKIT_E_INVALID, "unknown regularizer");

  /* Attaching takes ownership once. */
  nnkit_optimizer *a = NULL, *b = NULL;
  ck_ok(nnkit_optimizer_create(&a, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_create(&b, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_regularizer_create(&r, NNKIT_REG_L1, 0.1));
  ck_fails(nnkit_optimizer_add_regularizer(NULL, r), NNKIT_E_INVALID, "NULL");
  ck_ok(nnkit_optimizer_add_regularizer(a, r));
  ck_fails(nnkit_optimizer_add_regularizer(b, r), NNKIT_E_INVALID, "attached already");
  ck_fails(nnkit_optimizer_add_regularizer(a, r), NNKIT_E_INVALID, "attached already");
  nnkit_regularizer_free(r); /* attached: does nothing */
  ck_assert_uint_eq(nnkit_optimizer_num_regularizers(a), 1);
  ck_assert_uint_eq(nnkit_optimizer_num_regularizers(b), 0);
  for (int i = 0; i < 6; i++) { /* grows its list */
    ck_ok(nnkit_regularizer_create(&r, NNKIT_REG_L2, 0.1));
    ck_ok(nnkit_optimizer_add_regularizer(b, r));
  }
  ck_assert_uint_eq(nnkit_optimizer_num_regularizers(b), 6);
  nnkit_optimizer_free(a);
  nnkit_optimizer_free(b);
}
END_TEST

/* A net with weights, biases and batch-norm parameters. */
static nnkit_net *reg_net(void)
{
  size_t in = 4;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 11));
  ck_ok(nnkit_net_add_dense(net, 3));            /* 0: 12 + 3 */
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5)); /* 1: 3 + 3 */
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(net, 2));            /* 3: 6 + 2 */
  ck_assert_uint_eq(nnkit_net_num_params(net), 29);
  /* Values away from 0 (L1's kink) and distinct. */
  float *p = nnkit_net_params(net);
  for (size_t i = 0; i < 29; i++)
    p[i] = (float)((i % 2 ? 1 : -1) * (0.2 + 0.05 * (double)i));
  return net;
}

/* Penalty in double, straight from the definitions, over index ranges. */
static double penalty_ref(const float *p, const size_t (*ranges)[2], size_t nr,
                          double lambda, double ratio)
{
  double a = 0, q = 0;
  for (size_t r = 0; r < nr; r++)
    for (size_t i = ranges[r][0]; i < ranges[r][1]; i++) {
      a += fabs((double)p[i]);
      q += (double)p[i] * p[i];
    }
  return lambda * (ratio * a + (1 - ratio) * q);
}

START_TEST(regularizer_gradients_pass_finite_differences)
{
  struct {
    nnkit_reg_kind kind;
    double lambda, ratio;
    int biases, bn;
  } cases[] = {
    {NNKIT_REG_L2, 0.3, 0, 0, 0},          {NNKIT_REG_L1, 0.2, 1, 0, 0},
    {NNKIT_REG_ELASTIC_NET, 0.5, 0.3, 0, 0}, {NNKIT_REG_L2, 0.1, 0, 1, 0},
    {NNKIT_REG_L1, 0.05, 1, 1, 1},         {NNKIT_REG_ELASTIC_NET, 1.0, 0.7, 0, 1},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    nnkit_net *net = reg_net();
    nnkit_regularizer *r = NULL;
    ck_ok(nnkit_regularizer_create(&r, cases[c].kind, cases[c].lambda));
    if (cases[c].kind == NNKIT_REG_ELASTIC_NET)
      ck_ok(nnkit_regularizer_set(r, NNKIT_REG_L1_RATIO, cases[c].ratio));
    ck_ok(nnkit_regularizer_set(r, NNKIT_REG_WITH_BIASES, cases[c].biases));
    ck_ok(nnkit_regularizer_set(r, NNKIT_REG_WITH_BATCHNORM, cases[c].bn));
    float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
    /* What is penalized: weights 0..12 and 21..27; biases 12..15, 27..29;
     * batch norm 15..21. */
    size_t ranges[5][2];
    size_t nr = 0;
    ranges[nr][0] = 0, ranges[nr++][1] = 12;
    ranges[nr][0] = 21, ranges[nr++][1] = 27;
    if (cases[c].biases) {
      ranges[nr][0] = 12, ranges[nr++][1] = 15;
      ranges[nr][0] = 27, ranges[nr++][1] = 29;
    }
    if (cases[c].bn)
      ranges[nr][0] = 15, ranges[nr++][1] = 21;
    double pen;
    ck_ok(nnkit_regularizer_penalty(&pen, r, net));
    double want = penalty_ref(p, (const size_t(*)[2])ranges, nr, cases[c].lambda,
                              cases[c].ratio);
    ck_assert_msg(fabs(pen - want) <= 1e-12 * want, "case %zu: penalty %.15g, want %.15g",
                  c, pen, want);
    memset(g, 0, 29 * sizeof *g);
    double pen2 = nnkit__regularizer_apply(r, net, 1);
    ck_assert_double_eq_tol(pen2, pen, 1e-12);
    for (size_t i = 0; i < 29; i++) {
      float keep = p[i];
      double h = 1e-3;
      p[i] = (float)(keep + h);
      double up, down;
      ck_ok(nnkit_regularizer_penalty(&up, r, net));
      double hu = (double)p[i] - keep;
      p[i] = (float)(keep - h);
      ck_ok(nnkit_regularizer_penalty(&down, r, net));
      double hd = keep - (double)p[i];
      p[i] = keep;
      double fd = (up - down) / (hu + hd);
      ck_assert_msg(fabs(fd - g[i]) <= 1e-4 * (fabs(fd) + 1e-3),
                    "case %zu param %zu: gradient %.8g, finite difference %.8g", c, i,
                    (double)g[i], fd);
    }
    nnkit_regularizer_free(r);
    nnkit_net_free(net);
  }
}
END_TEST

/* At a step the gradient buffer gains the penalty's gradient on the
 * selected trainable layers only, and the penalty is reported. */
START_TEST(regularizer_in_the_step)
{
  nnkit_net *net = reg_net();
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0));
  nnkit_regularizer *r = NULL;
  ck_ok(nnkit_regularizer_create(&r, NNKIT_REG_L2, 0.5));
  size_t only3 = 3;
  ck_ok(nnkit_regularizer_set_layers(r, &only3, 1));
  ck_ok(nnkit_optimizer_add_regularizer(opt, r));
  float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
  memset(g, 0, 29 * sizeof *g);
  ck_ok(nnkit_optimizer_step(opt, net));
  double want = 0;
  for (size_t i = 0; i < 29; i++) {
    if (i >= 21 && i < 27) {
      ck_assert_float_eq_tol(g[i], p[i], 1e-7f); /* 2 * 0.5 * w */
      want += 0.5 * (double)p[i] * p[i];
    } else {
      ck_assert_float_eq(g[i], 0.0f);
    }
  }
  ck_assert_double_eq_tol(nnkit_optimizer_reg_loss(opt), want, 1e-9);
  /* A frozen layer is left out entirely. */
  ck_ok(nnkit_net_set_trainable(net, 3, 0));
  memset(g, 0, 29 * sizeof *g);
  ck_ok(nnkit_optimizer_step(opt, net));
  ck_assert_double_eq(nnkit_optimizer_reg_loss(opt), 0);
  for (size_t i = 0; i < 29; i++)
    ck_assert_float_eq(g[i], 0.0f);
  /* A layer the net does not have fails the step before anything changes. */
  size_t bad[2] = {0, 9};
  ck_ok(nnkit_regularizer_set_layers(r, bad, 2));
  float before[29];
  memcpy(before, p, sizeof before);
  ck_fails(nnkit_optimizer_step(opt, net), NNKIT_E_INVALID, "layer 9 does not exist");
  ck_fails(nnkit_regularizer_penalty(&want, r, net), NNKIT_E_INVALID, "layer 9");
  ck_fails(nnkit_regularizer_penalty(NULL, r, net), NNKIT_E_INVALID, "NULL");
  ck_assert(memcmp(before, p, sizeof before) == 0);
  ck_assert_uint_eq(nnkit_optimizer_steps(opt), 2);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

/* L2(lambda) on weights and biases is SGD's weight decay 2 lambda. */
START_TEST(l2_equals_sgd_weight_decay)
{
  nnkit_net *a = small_net(4), *b = small_net(4);
  nnkit_optimizer *oa = NULL, *ob = NULL;
  ck_ok(nnkit_optimizer_create(&oa, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_create(&ob, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(oa, NNKIT_OPT_WEIGHT_DECAY, 0.2));
  nnkit_regularizer *r = NULL;
  ck_ok(nnkit_regularizer_create(&r, NNKIT_REG_L2, 0.1));
  ck_ok(nnkit_regularizer_set(r, NNKIT_REG_WITH_BIASES, 1));
  ck_ok(nnkit_optimizer_add_regularizer(ob, r));
  for (size_t s = 0; s < 10; s++) {
    fill_grads(nnkit_net_grads(a), 14, s);
    fill_grads(nnkit_net_grads(b), 14, s);
    ck_ok(nnkit_optimizer_step(oa, a));
    ck_ok(nnkit_optimizer_step(ob, b));
  }
  for (size_t i = 0; i < 14; i++)
    ck_assert_float_eq_tol(nnkit_net_params(a)[i], nnkit_net_params(b)[i], 1e-6f);
  ck_assert_double_gt(nnkit_optimizer_reg_loss(ob), 0);
  ck_assert_double_eq(nnkit_optimizer_reg_loss(oa), 0);
  nnkit_optimizer_free(oa);
  nnkit_optimizer_free(ob);
  nnkit_net_free(a);
  nnkit_net_free(b);
}
END_TEST

/* Max-norm: every row of dense weights and every conv filter stays within
 * the bound after every step; rows inside it are not touched. */
START_TEST(max_norm_bounds_every_row)
{
  size_t shape[3] = {2, 6, 6};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 3, 5));
  ck_ok(nnkit_net_add_conv2d(net, 4, 3, 3, 1, 1, 0, 0, 1)); /* 0: 4 x 18 + 4 */
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dense(net, 5));                       /* 2: 5 x 64 + 5 */
  size_t np = nnkit_net_num_params(net);
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.5));
  nnkit_regularizer *r = NULL;
  const double c = 0.8;
  ck_ok(nnkit_regularizer_create(&r, NNKIT_REG_MAX_NORM, c));
  ck_ok(nnkit_optimizer_add_regularizer(opt, r));
  double pen = -1;
  ck_ok(nnkit_regularizer_penalty(&pen, r, net));
  ck_assert_double_eq(pen, 0);
  float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
  struct {
    size_t off, rows, len;
  } blocks[2] = {{0, 4, 18}, {76, 5, 64}};
  size_t off2, n2;
  ck_ok(nnkit_net_layer_params(&off2, &n2, net, 2));
  ck_assert_uint_eq(off2, 76);
  int clipped = 0;
  for (size_t s = 0; s < 20; s++) {
    fill_grads(g, np, s);
    for (size_t i = 0; i < np; i++)
      g[i] *= (float)(s % 5 == 0 ? 3.0 : 0.05);
    float *prev = malloc(np * sizeof *prev);
    memcpy(prev, p, np * sizeof *prev);
    ck_ok(nnkit_optimizer_step(opt, net));
    for (size_t b = 0; b < 2; b++)
      for (size_t row = 0; row < blocks[b].rows; row++) {
        const float *w = p + blocks[b].off + row * blocks[b].len;
        double ss = 0, ssu = 0;
        for (size_t k = 0; k < blocks[b].len; k++) {
          ss += (double)w[k] * w[k];
          double u = (double)prev[blocks[b].off + row * blocks[b].len + k] -
                     0.5 * (double)g[blocks[b].off + row * blocks[b].len + k];
          ssu += u * u;
        }
        ck_assert_msg(sqrt(ss) <= c, "step %zu block %zu row %zu: norm %.9g > %g", s, b,
                      row, sqrt(ss), c);
        if (sqrt(ssu) > c * 1.001)
          clipped++;
        else if (sqrt(ssu) < c * 0.999) /* inside: the plain SGD update */
          for (size_t k = 0; k < blocks[b].len; k++) {
            size_t i = blocks[b].off + row * blocks[b].len + k;
            ck_assert_float_eq(p[i], prev[i] - 0.5f * g[i]);
          }
      }
    /* Biases are not constrained. */
    for (size_t i = 72; i < 76; i++)
      ck_assert_float_eq(p[i], prev[i] - 0.5f * g[i]);
    free(prev);
  }
  ck_assert_int_gt(clipped, 5);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

/* The trainer reports data loss and regularization loss separately; the
 * logged cost is their sum. */
START_TEST(trainer_reports_reg_loss)
{
  nnkit_dataset *ds = blobs(64, 8);
  nnkit_net *net = blob_mlp(2);
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.05));
  nnkit_regularizer *r = NULL;
  ck_ok(nnkit_regularizer_create(&r, NNKIT_REG_L2, 0.01));
  ck_ok(nnkit_optimizer_add_regularizer(opt, r));
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 2));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 64)); /* one step an epoch */
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SHUFFLE, 0));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 1));
  captured cap = {0};
  nnkit_trainer_set_logger(tr, capture, &cap);
  double before;
  ck_ok(nnkit_regularizer_penalty(&before, r, net));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  double reg0, reg1, data0;
  ck_ok(nnkit_trainer_metric(&reg0, tr, 0, NNKIT_METRIC_REG_LOSS));
  ck_ok(nnkit_trainer_metric(&reg1, tr, 1, NNKIT_METRIC_REG_LOSS));
  ck_ok(nnkit_trainer_metric(&data0, tr, 0, NNKIT_METRIC_TRAIN_LOSS));
  ck_assert_double_eq_tol(reg0, before, 1e-12); /* penalty at the weights used */
  ck_assert_double_gt(reg1, 0);
  ck_assert_double_eq(reg1, nnkit_optimizer_reg_loss(opt));
  char want[64];
  snprintf(want, sizeof want, "cost %f,", data0 + reg0);
  ck_assert_msg(strstr(cap.lines[0], want) != NULL, "'%s' lacks '%s'", cap.lines[0], want);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}
END_TEST

/* ---- gradient clipping --------------------------------------------------- */

START_TEST(clip_by_value)
{
  nnkit_net *net = small_net(6);
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.1));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_CLIP_VALUE, 0.5));
  float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
  for (size_t s = 0; s < 5; s++) {
    float raw[14], before[14];
    fill_grads(g, 14, s);
    memcpy(raw, g, sizeof raw);
    memcpy(before, p, sizeof before);
    ck_ok(nnkit_optimizer_step(opt, net));
    for (size_t i = 0; i < 14; i++) {
      float want = raw[i] > 0.5f ? 0.5f : (raw[i] < -0.5f ? -0.5f : raw[i]);
      ck_assert_float_eq(g[i], want);
      ck_assert(fabsf(before[i] - p[i]) <= 0.05f + 1e-7f);
    }
  }
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

START_TEST(clip_by_global_norm)
{
  nnkit_net *net = small_net(6);
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_ADAM));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_CLIP_NORM, 1.0));
  ck_ok(nnkit_net_set_trainable(net, 2, 0));
  float *g = nnkit_net_grads(net);
  for (size_t s = 0; s < 6; s++) {
    float raw[14];
    fill_grads(g, 14, s);
    double scale = s % 2 ? 10 : 0.1;
    for (size_t i = 0; i < 14; i++)
      g[i] = (float)(g[i] * scale);
    memcpy(raw, g, sizeof raw);
    double n0 = 0;
    for (size_t i = 0; i < 8; i++) /* layer 0 only: layer 2 is frozen */
      n0 += (double)raw[i] * raw[i];
    n0 = sqrt(n0);
    ck_ok(nnkit_optimizer_step(opt, net));
    double n1 = 0;
    for (size_t i = 0; i < 8; i++)
      n1 += (double)g[i] * g[i];
    n1 = sqrt(n1);
    ck_assert_msg(n1 <= 1.0 + 1e-6, "step %zu: norm %.9g after clipping", s, n1);
    ck_assert_double_eq_tol(opt->last_grad_norm, n0, 1e-6 * n0);
    for (size_t i = 0; i < 8; i++) {
      if (n0 > 1.0) /* same direction, scaled by 1 / (norm + 1e-6) */
        ck_assert_float_eq_tol(g[i], (float)(raw[i] / (n0 + 1e-6)), 1e-6f);
      else
        ck_assert_float_eq(g[i], raw[i]);
    }
    for (size_t i = 8; i < 14; i++) /* the frozen layer's gradients stay */
      ck_assert_float_eq(g[i], raw[i]);
  }
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

/* Every allocation of the optimizer code can fail: each call then returns
 * NNKIT_E_NOMEM and leaves nothing half-built (ASan/valgrind see no leak),
 * and the same sequence succeeds once memory is back. */
static nnkit_status alloc_sequence(nnkit_net *net)
{
  nnkit_optimizer *opt = NULL, *copy = NULL;
  nnkit_schedule *s = NULL;
  nnkit_regularizer *r = NULL;
  float state[28];
  double scal[32];
  uint64_t m[2] = {2, 4};
  size_t layers[1] = {2};
  nnkit_status st = nnkit_optimizer_create(&opt, NNKIT_OPTIM_ADAM);
  if (st == NNKIT_OK)
    st = nnkit_schedule_create(&s, NNKIT_SCHEDULE_MULTISTEP);
  if (st == NNKIT_OK)
    st = nnkit_schedule_set_milestones(s, m, 2);
  if (st == NNKIT_OK && (st = nnkit_optimizer_set_schedule(opt, s)) == NNKIT_OK)
    s = NULL;
  if (st == NNKIT_OK)
    st = nnkit_regularizer_create(&r, NNKIT_REG_L1, 0.01);
  if (st == NNKIT_OK)
    st = nnkit_regularizer_set_layers(r, layers, 1);
  if (st == NNKIT_OK && (st = nnkit_optimizer_add_regularizer(opt, r)) == NNKIT_OK)
    r = NULL;
  if (st == NNKIT_OK)
    st = nnkit_optimizer_step(opt, net);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_get_state(state, 28, scal, 32, opt);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_set_state(opt, net, state, 28, scal,
                                   nnkit_optimizer_state_scalars(opt));
  if (st == NNKIT_OK)
    st = nnkit__optimizer_clone(&copy, opt);
  nnkit_optimizer_free(copy);
  nnkit_regularizer_free(r);
  nnkit_schedule_free(s);
  nnkit_optimizer_free(opt);
  return st;
}

START_TEST(survives_allocation_failures)
{
  nnkit_net *net = small_net(3);
  ck_assert_ptr_nonnull(nnkit_net_params(net));
  int failures = 0;
  for (uint64_t k = 1; k < 200; k++) {
    nnkit__alloc_fail_after(k);
    nnkit_status st = alloc_sequence(net);
    nnkit__alloc_fail_after(0);
    if (st == NNKIT_OK)
      break;
    ck_assert_msg(st == NNKIT_E_NOMEM, "allocation %llu: status %d (%s)",
                  (unsigned long long)k, (int)st, nnkit_last_error());
    failures++;
  }
  ck_assert_int_ge(failures, 8);
  ck_ok(alloc_sequence(net));
  nnkit_net_free(net);
}
END_TEST

/* ---- kind descriptors ---------------------------------------------------- */

/* Every public kind is registered, and every descriptor fits the generic
 * machinery: keys inside the hyperparameter array with defaults inside
 * their ranges, named state within the buffer limit. */
START_TEST(registry_is_consistent)
{
  ck_assert_uint_eq(nnkit__optim_num_kinds(), 6);
  ck_assert_ptr_null(nnkit__optim_kind_at(nnkit__optim_num_kinds()));
  for (int k = NNKIT_OPTIM_SGD; k <= NNKIT_OPTIM_NADAM; k++)
    ck_assert_ptr_nonnull(nnkit__optim_kind_of((nnkit_optim_kind)k));
  ck_assert_ptr_null(nnkit__optim_kind_of((nnkit_optim_kind)0));
  ck_assert_ptr_null(nnkit__optim_kind_of((nnkit_optim_kind)(NNKIT_OPTIM_NADAM + 1)));
  for (size_t i = 0; i < nnkit__optim_num_kinds(); i++) {
    const nnkit__optim_kind_desc *d = nnkit__optim_kind_at(i);
    ck_assert_ptr_eq(nnkit__optim_kind_of(d->kind), d);
    ck_assert(d->name && d->update && d->state_needed);
    ck_assert_uint_le(d->max_state, NNKIT__OPT_MAX_BUFS);
    int has_lr = 0;
    for (size_t k = 0; k < d->num_keys; k++) {
      const nnkit__spec *sp = &d->keys[k];
      ck_assert_int_gt(sp->key, 0);
      ck_assert_int_lt(sp->key, NNKIT__OPT_KEYS);
      ck_assert_int_ne(sp->key, NNKIT_OPT_CLIP_NORM); /* generic keys */
      ck_assert_int_ne(sp->key, NNKIT_OPT_CLIP_VALUE);
      ck_assert_msg(nnkit__spec_check(sp, d->name, sp->def) == NNKIT_OK, "%s %s default",
                    d->name, sp->name);
      has_lr |= sp->key == NNKIT_OPT_LR;
    }
    ck_assert(has_lr);
    for (size_t k = 0; k < d->num_scalars; k++)
      ck_assert_int_eq(nnkit__spec_check(&d->scalars[k], d->name, d->scalars[k].def),
                       NNKIT_OK);
    nnkit_optimizer *opt = NULL;
    ck_ok(nnkit_optimizer_create(&opt, d->kind));
    ck_assert_uint_le(d->state_needed(opt), d->max_state);
    for (size_t b = 0; b < d->max_state; b++)
      ck_assert_ptr_nonnull(nnkit__optimizer_state_name(opt, b));
    ck_assert_ptr_null(nnkit__optimizer_state_name(opt, d->max_state));
    for (size_t k = 0; k < d->num_scalars; k++)
      ck_assert_ptr_nonnull(nnkit__optimizer_scalar_name(opt, k));
    ck_assert_ptr_null(nnkit__optimizer_scalar_name(opt, d->num_scalars));
    nnkit_optimizer_free(opt);
  }
  /* torch's state_dict names. */
  nnkit_optimizer *sgd = NULL, *nadam = NULL;
  ck_ok(nnkit_optimizer_create(&sgd, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_create(&nadam, NNKIT_OPTIM_NADAM));
  ck_assert_str_eq(nnkit__optimizer_state_name(sgd, 0), "momentum_buffer");
  ck_assert_ptr_null(nnkit__optimizer_scalar_name(sgd, 0));
  ck_assert_str_eq(nnkit__optimizer_state_name(nadam, 0), "exp_avg");
  ck_assert_str_eq(nnkit__optimizer_state_name(nadam, 1), "exp_avg_sq");
  ck_assert_str_eq(nnkit__optimizer_scalar_name(nadam, 0), "mu_product");
  nnkit_optimizer_free(sgd);
  nnkit_optimizer_free(nadam);
}
END_TEST

/* NAdam keeps one momentum product per layer, advanced by the layer's own
 * updates only, saves it with the state and checks it on restore. */
START_TEST(nadam_layer_products)
{
  nnkit_net *net = small_net(5);
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_NADAM));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.01));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM_DECAY, 0.1));
  float *g = nnkit_net_grads(net);
  for (size_t s = 0; s < 5; s++) {
    fill_grads(g, 14, s);
    ck_ok(nnkit_net_set_trainable(net, 2, s >= 3));
    ck_ok(nnkit_optimizer_step(opt, net));
  }
  /* [version, kind, steps, sized, bufs, L = 3, steps x 3, products x 3,
   * has_schedule = 0] */
  size_t ns = nnkit_optimizer_state_size(opt), nc = nnkit_optimizer_state_scalars(opt);
  ck_assert_uint_eq(ns, 28);
  ck_assert_uint_eq(nc, 13);
  float state[28];
  double scal[13], bad[13];
  ck_ok(nnkit_optimizer_get_state(state, ns, scal, nc, opt));
  ck_assert_double_eq(scal[6], 5);
  ck_assert_double_eq(scal[7], 0);
  ck_assert_double_eq(scal[8], 2);
  double p0 = 1, p2 = 1;
  for (int t = 1; t <= 5; t++)
    p0 *= 0.9 * (1 - 0.5 * pow(0.96, t * 0.1));
  for (int t = 1; t <= 2; t++)
    p2 *= 0.9 * (1 - 0.5 * pow(0.96, t * 0.1));
  ck_assert_double_eq_tol(scal[9], p0, 1e-15);
  ck_assert_double_eq(scal[10], 1.0); /* the ReLU never steps */
  ck_assert_double_eq_tol(scal[11], p2, 1e-15);
  ck_assert_double_eq(scal[12], 0);

  /* Bad products are refused with a sentence; nothing changes. */
  double bads[] = {1.5, -0.25, NAN, INFINITY};
  for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
    memcpy(bad, scal, sizeof bad);
    bad[9 + i % 3] = bads[i];
    ck_fails(nnkit_optimizer_set_state(opt, net, state, ns, bad, nc), NNKIT_E_INVALID,
             "mu_product");
  }
  ck_fails(nnkit_optimizer_set_state(opt, net, state, ns, scal, 9), NNKIT_E_INVALID,
           "too few");
  ck_fails(nnkit_optimizer_set_state(opt, net, state, ns, scal, 12), NNKIT_E_INVALID,
           "too few");

  /* Restored into a fresh optimizer, the next steps are bit-identical. */
  nnkit_net *net2 = small_net(77);
  memcpy(nnkit_net_params(net2), nnkit_net_params(net), 14 * sizeof(float));
  nnkit_optimizer *o2 = NULL;
  ck_ok(nnkit_optimizer_create(&o2, NNKIT_OPTIM_NADAM));
  ck_ok(nnkit_optimizer_set(o2, NNKIT_OPT_LR, 0.01));
  ck_ok(nnkit_optimizer_set(o2, NNKIT_OPT_MOMENTUM_DECAY, 0.1));
  ck_ok(nnkit_optimizer_set_state(o2, net2, state, ns, scal, nc));
  for (size_t s = 5; s < 9; s++) {
    fill_grads(nnkit_net_grads(net), 14, s);
    fill_grads(nnkit_net_grads(net2), 14, s);
    ck_ok(nnkit_optimizer_step(opt, net));
    ck_ok(nnkit_optimizer_step(o2, net2));
  }
  ck_assert(memcmp(nnkit_net_params(net), nnkit_net_params(net2), 14 * sizeof(float)) == 0);
  nnkit_optimizer_free(o2);
  nnkit_net_free(net2);

  /* Allocation failures while sizing and restoring the per-layer state:
   * NOMEM with a sentence, and the state as it was. */
  int failures = 0;
  for (uint64_t k = 1; k < 50; k++) {
    nnkit_optimizer *o3 = NULL;
    nnkit_status st = nnkit_optimizer_create(&o3, NNKIT_OPTIM_NADAM);
    if (st == NNKIT_OK) {
      nnkit__alloc_fail_after(k);
      st = nnkit_optimizer_step(o3, net);
      if (st == NNKIT_OK)
        st = nnkit_optimizer_set_state(o3, net, state, ns, scal, nc);
      nnkit__alloc_fail_after(0);
    }
    if (st == NNKIT_OK) {
      nnkit_optimizer_free(o3);
      break;
    }
    ck_assert_msg(st == NNKIT_E_NOMEM, "allocation %llu: status %d (%s)",
                  (unsigned long long)k, (int)st, nnkit_last_error());
    ck_assert_uint_le(nnkit_optimizer_state_scalars(o3), 13);
    failures++;
    nnkit_optimizer_free(o3);
  }
  ck_assert_int_ge(failures, 5);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

/* train_batch is forward + backward + step, bit for bit; a NaN loss
 * leaves the parameters alone; bad arguments are refused. */
START_TEST(train_batch_equals_three_calls)
{
  nnkit_net *a = small_net(5), *b = small_net(5);
  nnkit_optimizer *oa = NULL, *ob = NULL;
  ck_ok(nnkit_optimizer_create(&oa, NNKIT_OPTIM_ADAM));
  ck_ok(nnkit_optimizer_create(&ob, NNKIT_OPTIM_ADAM));
  float x[4 * 3] = {0.5f, -1, 2, 1, 1, -0.5f, -2, 0.25f, 1, 0.1f, 0.2f, 0.3f};
  int32_t y[4] = {0, 1, 1, 0};
  for (int step = 0; step < 5; step++) {
    double la = -1, lb = -2;
    ck_ok(nnkit_optimizer_train_batch(&la, oa, a, x, 4, y, NULL));
    ck_ok(nnkit_net_forward(b, x, 4, NULL, 0));
    ck_ok(nnkit_net_backward(b, y, NULL, &lb));
    ck_ok(nnkit_optimizer_step(ob, b));
    ck_assert(la == lb);
    ck_assert_mem_eq(nnkit_net_params(a), nnkit_net_params(b), 14 * sizeof(float));
  }
  ck_assert_uint_eq(nnkit_optimizer_steps(oa), 5);
  float before[14];
  nnkit_net_params(a)[13] = NAN; /* the last bias: the loss becomes NaN */
  memcpy(before, nnkit_net_params(a), sizeof before);
  ck_fails(nnkit_optimizer_train_batch(NULL, oa, a, x, 4, y, NULL), NNKIT_E_DIVERGED,
           "not updated");
  ck_assert_mem_eq(before, nnkit_net_params(a), sizeof before);
  ck_assert_uint_eq(nnkit_optimizer_steps(oa), 5);
  ck_fails(nnkit_optimizer_train_batch(NULL, NULL, a, x, 4, y, NULL), NNKIT_E_INVALID,
           "optimizer and a net");
  ck_fails(nnkit_optimizer_train_batch(NULL, oa, a, x, 0, y, NULL), NNKIT_E_INVALID,
           "batch > 0");
  int32_t bad[4] = {0, 1, 7, 0};
  ck_assert_int_ne(nnkit_optimizer_train_batch(NULL, oa, a, x, 4, bad, NULL), NNKIT_OK);
  ck_assert_mem_eq(before, nnkit_net_params(a), sizeof before);
  nnkit_optimizer_free(oa);
  nnkit_optimizer_free(ob);
  nnkit_net_free(a);
  nnkit_net_free(b);
}
END_TEST

static Suite *optim_suite(void)
{
  Suite *s = suite_create("optim");
  TCase *tc = tcase_create("keys");
  tcase_add_test(tc, create_and_defaults);
  tcase_add_test(tc, keys_and_bounds);
  tcase_add_test(tc, bounds_of_every_kind);
  tcase_add_test(tc, sgd_step_is_closed_form);
  tcase_add_test(tc, train_batch_equals_three_calls);
  suite_add_tcase(s, tc);

  tc = tcase_create("updates");
  tcase_add_loop_test(tc, matches_torch_and_formula, 0, (int)NUM_OPT_CASES);
  tcase_add_test(tc, layer_step_counts);
  tcase_add_test(tc, momentum_buffer_on_demand);
  tcase_add_test(tc, steady_state_allocates_nothing);
  tcase_add_test(tc, clone_copies_settings);
  tcase_add_test(tc, survives_allocation_failures);
  tcase_add_test(tc, registry_is_consistent);
  tcase_add_test(tc, nadam_layer_products);
  suite_add_tcase(s, tc);

  tc = tcase_create("state");
  tcase_add_loop_test(tc, state_round_trip_resumes_identically, 0,
                      (int)(sizeof all_kinds / sizeof all_kinds[0]));
  tcase_add_test(tc, state_errors);
  tcase_add_test(tc, reset_forgets_state);
  suite_add_tcase(s, tc);

  tc = tcase_create("freezing");
  tcase_add_test(tc, trainable_api);
  tcase_add_loop_test(tc, frozen_layers_bit_identical_after_training, 0,
                      (int)(sizeof all_kinds / sizeof all_kinds[0]));
  suite_add_tcase(s, tc);

  tc = tcase_create("schedules");
  tcase_add_loop_test(tc, schedule_matches_torch_and_formula, 0, (int)NUM_SCHED_CASES);
  tcase_add_test(tc, schedule_keys_and_bounds);
  tcase_add_test(tc, schedule_attach_rules);
  tcase_add_test(tc, trainer_steps_schedules);
  suite_add_tcase(s, tc);

  tc = tcase_create("regularizers");
  tcase_add_test(tc, regularizer_keys_and_bounds);
  tcase_add_test(tc, regularizer_gradients_pass_finite_differences);
  tcase_add_test(tc, regularizer_in_the_step);
  tcase_add_test(tc, l2_equals_sgd_weight_decay);
  tcase_add_test(tc, max_norm_bounds_every_row);
  tcase_add_test(tc, trainer_reports_reg_loss);
  suite_add_tcase(s, tc);

  tc = tcase_create("clipping");
  tcase_add_test(tc, clip_by_value);
  tcase_add_test(tc, clip_by_global_norm);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nnkit_test_run(optim_suite()); }
