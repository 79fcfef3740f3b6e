/* Hyperparameter search (nnkit/search.h): the space's draws (log-uniform
 * by a Kolmogorov-Smirnov bound), grids, narrowing, successive halving
 * and Hyperband, 1 against 2 workers, median stopping, the results file
 * and its resume after kill -9, bad spaces, failing objectives, k-fold
 * cross-validation and the built-in objective's keys. */
#include <signal.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "testutil.h"
#include "tune/search_internal.h"

/* ---- helpers --------------------------------------------------------------- */

static nnkit_space *lr_reg_space(void)
{
  nnkit_space *sp = NULL;
  ck_ok(nnkit_space_create(&sp));
  ck_ok(nnkit_space_add(sp, "lr", NNKIT_DIM_LOG_UNIFORM, 1e-6, 1e-2,
                        NNKIT_TARGET_OPTIMIZER, NNKIT_OPTIM_SGD, NNKIT_OPT_LR));
  ck_ok(nnkit_space_add(sp, "reg", NNKIT_DIM_LOG_UNIFORM, 1e-5, 1e1,
                        NNKIT_TARGET_REGULARIZER, NNKIT_REG_L2, NNKIT_REG_STRENGTH));
  return sp;
}

/* A smooth synthetic objective: best at lr = 1e-3 and reg = 1e-2 (log
 * space); with epochs it approaches its limit from below. */
static double synthetic(double lr, double reg, size_t epochs)
{
  double a = log10(lr) + 3, b = log10(reg) + 2;
  return exp(-0.5 * (a * a + 0.25 * b * b)) * (1 - 0.5 / (double)epochs);
}

static int synthetic_objective(double *score, nnkit_trial *t, void *user)
{
  (void)user;
  double lr, reg;
  ck_assert_int_eq(nnkit_trial_get(&lr, t, "lr"), NNKIT_OK);
  ck_assert_int_eq(nnkit_trial_get(&reg, t, "reg"), NNKIT_OK);
  size_t ep = nnkit_trial_epochs(t);
  for (size_t e = 0; e < ep; e++)
    if (nnkit_trial_report(t, e, synthetic(lr, reg, e + 1)))
      break;
  *score = synthetic(lr, reg, ep);
  return 0;
}

static int count_calls;
static int counting_objective(double *score, nnkit_trial *t, void *user)
{
  (void)user;
  __atomic_fetch_add(&count_calls, 1, __ATOMIC_SEQ_CST);
  *score = nnkit_trial_value(t, 0) + (double)nnkit_trial_epochs(t);
  return 0;
}

static size_t file_lines(const char *path)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  size_t n = 0;
  int c;
  while ((c = fgetc(f)) != EOF)
    n += c == '\n';
  fclose(f);
  return n;
}

/* ---- the space -------------------------------------------------------------- */

/* Kolmogorov-Smirnov distance of u[0..n) to U(0, 1). */
static double ks_uniform(double *u, size_t n)
{
  for (size_t i = 1; i < n; i++) /* insertion sort: n is small */
    for (size_t j = i; j > 0 && u[j - 1] > u[j]; j--) {
      double t = u[j];
      u[j] = u[j - 1];
      u[j - 1] = t;
    }
  double d = 0;
  for (size_t i = 0; i < n; i++) {
    double a = fabs((double)(i + 1) / (double)n - u[i]), b = fabs(u[i] - (double)i / (double)n);
    d = a > d ? a : d;
    d = b > d ? b : d;
  }
  return d;
}

START_TEST(log_uniform_draws_are_uniform_in_log_space)
{
  nnkit_space *sp = lr_reg_space();
  enum { N = 2000 };
  static double u[N], w[N];
  double v[2];
  for (size_t i = 0; i < N; i++) {
    nnkit__space_draw(sp, 7, i, v);
    ck_assert(v[0] >= 1e-6 && v[0] <= 1e-2);
    u[i] = (log(v[0]) - log(1e-6)) / (log(1e-2) - log(1e-6));
    w[i] = (v[0] - 1e-6) / (1e-2 - 1e-6); /* linear position: far from uniform */
  }
  double bound = 1.63 / sqrt((double)N); /* 1% level */
  ck_assert_msg(ks_uniform(u, N) < bound, "KS %g >= %g", ks_uniform(u, N), bound);
  ck_assert(ks_uniform(w, N) > 5 * bound);
  /* the same through a search: the recorded values of 300 random trials */
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 300));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_SEED, 3));
  ck_ok(nnkit_search_run(s, synthetic_objective, NULL));
  ck_assert_uint_eq(nnkit_search_num_trials(s), 300);
  for (size_t i = 0; i < 300; i++) {
    double r;
    ck_ok(nnkit_search_value(&r, s, i, 1));
    u[i] = (log(r) - log(1e-5)) / (log(1e1) - log(1e-5));
  }
  ck_assert(ks_uniform(u, 300) < 1.63 / sqrt(300.0));
  /* integer log dimensions stay whole and in range */
  nnkit_space *ip = NULL;
  ck_ok(nnkit_space_create(&ip));
  ck_ok(nnkit_space_add(ip, "units", NNKIT_DIM_INT_LOG, 8, 512, NNKIT_TARGET_NONE, 0, 0));
  size_t small = 0;
  for (size_t i = 0; i < 1000; i++) {
    nnkit__space_draw(ip, 1, i, v);
    ck_assert(v[0] == floor(v[0]) && v[0] >= 8 && v[0] <= 512);
    small += v[0] < 64; /* log-uniform: about half below the geometric middle */
  }
  ck_assert(small > 400 && small < 600);
  nnkit_space_free(ip);
  nnkit_search_free(s);
  nnkit_space_free(sp);
}
END_TEST

START_TEST(grid_enumerates_exactly_the_product)
{
  nnkit_space *sp = NULL;
  ck_ok(nnkit_space_create(&sp));
  ck_ok(nnkit_space_add(sp, "lr", NNKIT_DIM_LOG_UNIFORM, 1e-4, 1e-1,
                        NNKIT_TARGET_OPTIMIZER, NNKIT_OPTIM_SGD, NNKIT_OPT_LR));
  double moms[3] = {0.5, 0.9, 0.99};
  ck_ok(nnkit_space_add_choice(sp, "momentum", moms, 3, NNKIT_TARGET_OPTIMIZER,
                               NNKIT_OPTIM_SGD, NNKIT_OPT_MOMENTUM));
  ck_ok(nnkit_space_add(sp, "batch", NNKIT_DIM_INT, 16, 64, NNKIT_TARGET_TRAINER, 0,
                        NNKIT_TRAIN_BATCH_SIZE));
  ck_assert_uint_eq(nnkit_space_num_dims(sp), 3);
  ck_assert_str_eq(nnkit_space_dim_name(sp, 1), "momentum");
  ck_assert_ptr_null(nnkit_space_dim_name(sp, 3));
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_GRID));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_GRID_POINTS, 4));
  count_calls = 0;
  ck_ok(nnkit_search_run(s, counting_objective, NULL));
  ck_assert_int_eq(count_calls, 48);
  ck_assert_uint_eq(nnkit_search_num_trials(s), 48);
  const double lrs[4] = {1e-4, 1e-3, 1e-2, 1e-1}, bs[4] = {16, 32, 48, 64};
  int seen[4][3][4] = {{{0}}};
  for (size_t i = 0; i < 48; i++) {
    double v[3];
    int k[3] = {-1, -1, -1};
    for (size_t j = 0; j < 3; j++)
      ck_ok(nnkit_search_value(&v[j], s, i, j));
    for (int a = 0; a < 4; a++) {
      if (fabs(v[0] / lrs[a] - 1) < 1e-12)
        k[0] = a;
      if (v[2] == bs[a])
        k[2] = a;
    }
    for (int a = 0; a < 3; a++)
      if (v[1] == moms[a])
        k[1] = a;
    ck_assert_msg(k[0] >= 0 && k[1] >= 0 && k[2] >= 0, "trial %zu off the grid", i);
    seen[k[0]][k[1]][k[2]]++;
  }
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 3; b++)
      for (int c = 0; c < 4; c++)
        ck_assert_int_eq(seen[a][b][c], 1);
  nnkit_search_free(s);
  nnkit_space_free(sp);
}
END_TEST

START_TEST(narrowing_stays_inside_the_original_bounds)
{
  nnkit_space *sp = lr_reg_space();
  double one[1] = {2};
  ck_ok(nnkit_space_add(sp, "units", NNKIT_DIM_INT, 8, 64, NNKIT_TARGET_NONE, 0, 0));
  ck_ok(nnkit_space_add_choice(sp, "c", one, 1, NNKIT_TARGET_NONE, 0, 0));
  for (uint64_t seed = 0; seed < 50; seed++) {
    nnkit_space *n = nnkit__space_copy(sp);
    ck_assert_ptr_nonnull(n);
    double top[5 * 4];
    for (int i = 0; i < 5; i++)
      nnkit__space_draw(sp, seed, (uint64_t)i, top + 4 * i);
    if (seed % 3 == 0) { /* points at the very edges */
      top[0] = 1e-2;
      top[1] = 1e-5;
      top[2] = 64;
    }
    nnkit__space_narrow(n, top, seed % 2 ? 5 : 1);
    for (size_t j = 0; j < 3; j++) {
      ck_assert(n->dims[j].lo >= sp->dims[j].lo && n->dims[j].hi <= sp->dims[j].hi);
      ck_assert(n->dims[j].lo < n->dims[j].hi);
    }
    /* the top points stay inside the narrowed range */
    for (int i = 0; i < (seed % 2 ? 5 : 1); i++)
      for (size_t j = 0; j < 3; j++)
        ck_assert(top[4 * i + j] >= n->dims[j].lo && top[4 * i + j] <= n->dims[j].hi);
    nnkit_space_free(n);
  }
  /* a coarse-to-fine run: fine trials inside narrower, original bounds */
  nnkit_search *s = NULL;
  nnkit_space *two = lr_reg_space();
  ck_ok(nnkit_search_create(&s, two));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_COARSE_FINE));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 30));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_FINE_TRIALS, 30));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_EPOCHS, 1));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_FINE_EPOCHS, 4));
  ck_ok(nnkit_search_run(s, synthetic_objective, NULL));
  ck_assert_uint_eq(nnkit_search_num_trials(s), 60);
  double clo = INFINITY, chi = 0, flo = INFINITY, fhi = 0, phase;
  for (size_t i = 0; i < 60; i++) {
    double lr;
    ck_ok(nnkit_search_value(&lr, s, i, 0));
    ck_ok(nnkit_search_result(&phase, s, i, NNKIT_RESULT_PHASE));
    ck_assert(lr >= 1e-6 && lr <= 1e-2);
    if (phase == 0) {
      clo = fmin(clo, lr);
      chi = fmax(chi, lr);
    } else {
      flo = fmin(flo, lr);
      fhi = fmax(fhi, lr);
    }
  }
  ck_assert(log(fhi / flo) < 0.8 * log(chi / clo)); /* narrower */
  size_t best;
  ck_ok(nnkit_search_best(&best, s));
  ck_assert_uint_ge(best, 30); /* from the fine phase (more epochs) */
  double sc;
  ck_ok(nnkit_search_result(&sc, s, best, NNKIT_RESULT_SCORE));
  ck_assert(sc > 0.8 * (1 - 0.5 / 4));
  ck_assert_str_eq(nnkit_search_warnings(s), "");
  nnkit_search_free(s);
  nnkit_space_free(two);
  /* the optimum outside the range: the edge warning */
  nnkit_space *low = NULL;
  ck_ok(nnkit_space_create(&low));
  ck_ok(nnkit_space_add(low, "lr", NNKIT_DIM_LOG_UNIFORM, 1e-8, 1e-5,
                        NNKIT_TARGET_NONE, 0, 0));
  ck_ok(nnkit_space_add(low, "reg", NNKIT_DIM_LOG_UNIFORM, 1e-4, 1,
                        NNKIT_TARGET_NONE, 0, 0));
  ck_ok(nnkit_search_create(&s, low));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_GRID));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_GRID_POINTS, 5));
  ck_ok(nnkit_search_run(s, synthetic_objective, NULL));
  /* the best is lr 1e-5 (the upper end), reg 1e-2 (the middle) */
  ck_assert_msg(!strcmp(nnkit_search_warnings(s),
                        "warning: lr: the best value 1.000000e-05 sits at the upper "
                        "edge of its range [1.000000e-08, 1.000000e-05]; the optimum "
                        "may lie outside it: widen the range\n"),
                "warnings: %s", nnkit_search_warnings(s));
  nnkit_search_free(s);
  nnkit_space_free(low);
  nnkit_space_free(sp);
}
END_TEST

/* score = value of dim 0 (distinct per config) + a small epoch bonus */
static int rung_objective(double *score, nnkit_trial *t, void *user)
{
  (void)user;
  *score = nnkit_trial_value(t, 0) * (1 + 0.01 * (double)nnkit_trial_epochs(t));
  return 0;
}

START_TEST(halving_keeps_the_right_survivors)
{
  nnkit_space *sp = NULL;
  ck_ok(nnkit_space_create(&sp));
  ck_ok(nnkit_space_add(sp, "x", NNKIT_DIM_UNIFORM, 0, 1, NNKIT_TARGET_NONE, 0, 0));
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_HALVING));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 9));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_EPOCHS, 1));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_MAX_EPOCHS, 9));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_ETA, 3));
  ck_ok(nnkit_search_run(s, rung_objective, NULL));
  ck_assert_uint_eq(nnkit_search_num_trials(s), 9 + 3 + 1);
  /* rung 1 = the 3 best configurations of rung 0, best first, 3 epochs */
  double x[9];
  for (size_t i = 0; i < 9; i++)
    ck_ok(nnkit_search_value(&x[i], s, i, 0));
  size_t order[9];
  for (size_t i = 0; i < 9; i++)
    order[i] = i;
  for (size_t i = 0; i < 9; i++)
    for (size_t j = i + 1; j < 9; j++)
      if (x[order[j]] > x[order[i]]) {
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
  for (size_t k = 0; k < 3; k++) {
    double cfg, ep, ph;
    ck_ok(nnkit_search_result(&cfg, s, 9 + k, NNKIT_RESULT_CONFIG));
    ck_ok(nnkit_search_result(&ep, s, 9 + k, NNKIT_RESULT_EPOCHS));
    ck_ok(nnkit_search_result(&ph, s, 9 + k, NNKIT_RESULT_PHASE));
    ck_assert_uint_eq((size_t)cfg, order[k]);
    ck_assert(ep == 3 && ph == 1);
  }
  double cfg, ep, seed0, seed12;
  ck_ok(nnkit_search_result(&cfg, s, 12, NNKIT_RESULT_CONFIG));
  ck_ok(nnkit_search_result(&ep, s, 12, NNKIT_RESULT_EPOCHS));
  ck_assert_uint_eq((size_t)cfg, order[0]);
  ck_assert(ep == 9);
  ck_ok(nnkit_search_result(&seed0, s, order[0], NNKIT_RESULT_SEED));
  ck_ok(nnkit_search_result(&seed12, s, 12, NNKIT_RESULT_SEED));
  ck_assert(seed0 == seed12); /* a configuration keeps its seed */
  size_t best;
  ck_ok(nnkit_search_best(&best, s));
  ck_assert_uint_eq(best, 12);
  /* Hyperband, eta 3, 1..9 epochs: brackets 9@1 3@3 1@9, 5@3 1@9, 3@9 */
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_HYPERBAND));
  ck_ok(nnkit_search_run(s, rung_objective, NULL));
  ck_assert_uint_eq(nnkit_search_num_trials(s), 13 + 6 + 3);
  size_t epochs = 0;
  for (size_t i = 0; i < 22; i++) {
    ck_ok(nnkit_search_result(&ep, s, i, NNKIT_RESULT_EPOCHS));
    epochs += (size_t)ep;
  }
  ck_assert_uint_eq(epochs, 9 + 9 + 9 + 15 + 9 + 27);
  nnkit_search_free(s);
  nnkit_space_free(sp);
}
END_TEST

/* ---- workers and determinism ----------------------------------------------- */

static int build_mlp(nnkit_net **net_out, nnkit_optimizer **opt_out,
                     const nnkit_trial *t, void *user)
{
  (void)user;
  size_t in = 2;
  double hidden = 16;
  nnkit_trial_get(&hidden, t, "hidden"); /* when the space has it */
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_regularizer *reg = NULL;
  nnkit_status st = nnkit_net_create(&net, &in, 1, nnkit_trial_seed(t));
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, (size_t)hidden);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dropout(net, 0.1);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 4);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD);
  if (st == NNKIT_OK)
    st = nnkit_regularizer_create(&reg, NNKIT_REG_L2, 1e-4);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_add_regularizer(opt, reg);
  if (st != NNKIT_OK) {
    nnkit_regularizer_free(reg);
    nnkit_net_free(net);
    nnkit_optimizer_free(opt);
    return -1;
  }
  *net_out = net;
  *opt_out = opt;
  return 0;
}

static nnkit_search *training_search(const nnkit_space *sp, int workers, int prune)
{
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 8));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_EPOCHS, 3));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_SEED, 11));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_WORKERS, workers));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_PRUNE, prune));
  return s;
}

static void same_records(const nnkit_search *a, const nnkit_search *b)
{
  ck_assert_uint_eq(nnkit_search_num_trials(a), nnkit_search_num_trials(b));
  for (size_t i = 0; i < nnkit_search_num_trials(a); i++) {
    for (int f = NNKIT_RESULT_SCORE; f <= NNKIT_RESULT_SEED; f++) {
      if (f == NNKIT_RESULT_SECONDS)
        continue;
      double x, y;
      ck_ok(nnkit_search_result(&x, a, i, (nnkit_result_field)f));
      ck_ok(nnkit_search_result(&y, b, i, (nnkit_result_field)f));
      ck_assert_msg((isnan(x) && isnan(y)) || x == y, "trial %zu field %d: %.17g vs %.17g",
                    i, f, x, y);
    }
    for (size_t j = 0; j < nnkit_space_num_dims(a->space); j++) {
      double x, y;
      ck_ok(nnkit_search_value(&x, a, i, j));
      ck_ok(nnkit_search_value(&y, b, i, j));
      ck_assert(x == y);
    }
    ck_assert_str_eq(nnkit_search_reason(a, i), nnkit_search_reason(b, i));
  }
}

START_TEST(same_seed_same_trials_with_1_and_2_workers)
{
  ck_ok(nnkit_set_num_threads(2));
  nnkit_dataset *train = tu_blobs4(200, 0.7, 1), *val = tu_blobs4(100, 0.7, 2);
  nnkit_space *sp = lr_reg_space();
  ck_ok(nnkit_space_add(sp, "hidden", NNKIT_DIM_INT_LOG, 4, 32, NNKIT_TARGET_LAYER, 0,
                        NNKIT_LAYER_UNITS));
  ck_ok(nnkit_space_add(sp, "drop", NNKIT_DIM_UNIFORM, 0, 0.5, NNKIT_TARGET_LAYER, 2,
                        NNKIT_LAYER_DROP_P));
  ck_ok(nnkit_space_add(sp, "batch", NNKIT_DIM_INT, 8, 64, NNKIT_TARGET_TRAINER, 0,
                        NNKIT_TRAIN_BATCH_SIZE));
  nnkit_search *one = training_search(sp, 1, 1), *two = training_search(sp, 2, 1);
  ck_ok(nnkit_search_run_training(one, build_mlp, NULL, train, val));
  ck_ok(nnkit_search_run_training(two, build_mlp, NULL, train, val));
  ck_assert_uint_eq(nnkit_search_num_trials(one), 8);
  same_records(one, two);
  size_t ok = 0;
  for (size_t i = 0; i < 8; i++) {
    double st, sc;
    ck_ok(nnkit_search_result(&st, one, i, NNKIT_RESULT_STATUS));
    ck_ok(nnkit_search_result(&sc, one, i, NNKIT_RESULT_SCORE));
    ok += st == NNKIT_TRIAL_OK;
    if (st != NNKIT_TRIAL_FAILED)
      ck_assert(sc >= 0 && sc <= 1);
  }
  ck_assert_uint_ge(ok, 1);
  /* the synthetic objective with median stopping, 3 workers */
  nnkit_search *a = training_search(sp, 1, 1), *b = training_search(sp, 3, 1);
  ck_ok(nnkit_search_set(a, NNKIT_SEARCH_TRIALS, 40));
  ck_ok(nnkit_search_set(b, NNKIT_SEARCH_TRIALS, 40));
  ck_ok(nnkit_search_run(a, synthetic_objective, NULL));
  ck_ok(nnkit_search_run(b, synthetic_objective, NULL));
  same_records(a, b);
  size_t pruned = 0;
  for (size_t i = 0; i < 40; i++) {
    double st;
    ck_ok(nnkit_search_result(&st, a, i, NNKIT_RESULT_STATUS));
    pruned += st == NNKIT_TRIAL_PRUNED;
  }
  ck_assert_uint_ge(pruned, 5);
  nnkit_search_free(a);
  nnkit_search_free(b);
  nnkit_search_free(one);
  nnkit_search_free(two);
  nnkit_space_free(sp);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
}
END_TEST

int openblas_get_num_threads(void); /* OpenBLAS's extension API */

static int threads_seen, blas_seen;
static int thread_objective(double *score, nnkit_trial *t, void *user)
{
  (void)t;
  (void)user;
  if (nnkit__num_threads() != 1)
    __atomic_store_n(&threads_seen, nnkit__num_threads(), __ATOMIC_SEQ_CST);
  if (openblas_get_num_threads() != 1)
    __atomic_store_n(&blas_seen, openblas_get_num_threads(), __ATOMIC_SEQ_CST);
  *score = 0;
  return 0;
}

START_TEST(trials_run_at_one_thread)
{
  ck_ok(nnkit_set_num_threads(2));
  nnkit_space *sp = lr_reg_space();
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_WORKERS, 2));
  threads_seen = blas_seen = 0;
  nnkit__blas_threads(2); /* as an application may have it */
  ck_ok(nnkit_search_run(s, thread_objective, NULL));
  ck_assert_int_eq(threads_seen, 0);
  ck_assert_int_eq(blas_seen, 0);
  ck_assert_int_eq(nnkit__blas_threads(1), 2); /* restored after the run */
  ck_assert_int_eq(nnkit__num_threads(), 2); /* the caller's limit is lifted */
  nnkit_search_free(s);
  nnkit_space_free(sp);
}
END_TEST

/* ---- the results file ------------------------------------------------------- */

static int kill_at = -1;
static int killing_objective(double *score, nnkit_trial *t, void *user)
{
  if ((int)nnkit_trial_index(t) == kill_at)
    raise(SIGKILL);
  return counting_objective(score, t, user);
}

START_TEST(resume_after_kill_reruns_nothing)
{
  char path[512];
  snprintf(path, sizeof path, "%s/search_resume_%d.jsonl", NNKIT_TEST_TMPDIR, (int)getpid());
  unlink(path);
  nnkit_space *sp = lr_reg_space();
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 10));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_SEED, 5));
  ck_ok(nnkit_search_set_results_file(s, path));
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    kill_at = 4;
    nnkit_search_run(s, killing_objective, NULL);
    _exit(0);
  }
  int wst;
  ck_assert_int_eq(waitpid(pid, &wst, 0), pid);
  ck_assert(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
  ck_assert_uint_eq(file_lines(path), 4);
  FILE *f = fopen(path, "a"); /* a write cut short */
  fputs("{\"trial\":4,\"phase\":0,\"conf", f);
  fclose(f);
  count_calls = 0;
  ck_ok(nnkit_search_run(s, counting_objective, NULL));
  ck_assert_int_eq(count_calls, 6); /* trials 4..9 only */
  ck_assert_uint_eq(nnkit_search_num_trials(s), 10);
  ck_assert_uint_eq(file_lines(path), 10);
  /* each line is a complete record */
  f = fopen(path, "r");
  char line[4096];
  int seen[10] = {0};
  while (fgets(line, sizeof line, f)) {
    cJSON *o = cJSON_Parse(line);
    ck_assert_ptr_nonnull(o);
    seen[(int)cJSON_GetObjectItem(o, "trial")->valuedouble]++;
    cJSON_Delete(o);
  }
  fclose(f);
  for (int i = 0; i < 10; i++)
    ck_assert_int_eq(seen[i], 1);
  /* the same table as an uninterrupted run */
  nnkit_search *fresh = NULL;
  ck_ok(nnkit_search_create(&fresh, sp));
  ck_ok(nnkit_search_set(fresh, NNKIT_SEARCH_TRIALS, 10));
  ck_ok(nnkit_search_set(fresh, NNKIT_SEARCH_SEED, 5));
  ck_ok(nnkit_search_run(fresh, counting_objective, NULL));
  same_records(s, fresh);
  /* a finished search re-runs nothing */
  count_calls = 0;
  ck_ok(nnkit_search_run(s, counting_objective, NULL));
  ck_assert_int_eq(count_calls, 0);
  /* a file of another search */
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_SEED, 6));
  ck_fails(nnkit_search_run(s, counting_objective, NULL), NNKIT_E_STATE,
           "another search");
  ck_assert_uint_eq(file_lines(path), 10); /* untouched */
  /* a damaged line that is not the last */
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_SEED, 5));
  f = fopen(path, "r+");
  fputs("#", f);
  fclose(f);
  ck_fails(nnkit_search_run(s, counting_objective, NULL), NNKIT_E_FORMAT, "line 1");
  unlink(path);
  nnkit_search_free(fresh);
  nnkit_search_free(s);
  nnkit_space_free(sp);
}
END_TEST

static int failing_objective(double *score, nnkit_trial *t, void *user)
{
  (void)user;
  size_t i = nnkit_trial_index(t);
  if (i % 3 == 1) {
    nnkit_trial_set_reason(t, "out of \"luck\"");
    return -1;
  }
  if (i % 3 == 2) {
    *score = NAN; /* diverged */
    return 0;
  }
  *score = (double)i;
  return 0;
}

START_TEST(failing_trials_are_recorded_and_the_search_goes_on)
{
  char jl[512], csv[512], out[512];
  snprintf(jl, sizeof jl, "%s/search_fail_%d.jsonl", NNKIT_TEST_TMPDIR, (int)getpid());
  snprintf(csv, sizeof csv, "%s/search_fail_%d.csv", NNKIT_TEST_TMPDIR, (int)getpid());
  snprintf(out, sizeof out, "%s/search_fail_out_%d.jsonl", NNKIT_TEST_TMPDIR, (int)getpid());
  unlink(jl);
  nnkit_space *sp = lr_reg_space();
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 9));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_WORKERS, 2));
  ck_ok(nnkit_search_set_results_file(s, jl));
  ck_ok(nnkit_search_run(s, failing_objective, NULL));
  ck_assert_uint_eq(nnkit_search_num_trials(s), 9);
  for (size_t i = 0; i < 9; i++) {
    double st, sc;
    ck_ok(nnkit_search_result(&st, s, i, NNKIT_RESULT_STATUS));
    ck_ok(nnkit_search_result(&sc, s, i, NNKIT_RESULT_SCORE));
    ck_assert_int_eq((int)st, i % 3 == 0 ? NNKIT_TRIAL_OK : NNKIT_TRIAL_FAILED);
    if (i % 3 == 1)
      ck_assert_str_eq(nnkit_search_reason(s, i), "out of \"luck\"");
    if (i % 3 == 2)
      ck_assert(strstr(nnkit_search_reason(s, i), "diverged") != NULL);
    if (i % 3)
      ck_assert(isnan(sc));
  }
  size_t best;
  ck_ok(nnkit_search_best(&best, s));
  ck_assert_uint_eq(best, 6);
  ck_assert_uint_eq(file_lines(jl), 9);
  ck_ok(nnkit_search_save_csv(s, csv));
  ck_ok(nnkit_search_save_jsonl(s, out));
  ck_assert_uint_eq(file_lines(csv), 10);
  ck_assert_uint_eq(file_lines(out), 9);
  FILE *f = fopen(csv, "r");
  char line[2048];
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  ck_assert_str_eq(line, "trial,phase,config,epochs,status,score,score_std,seconds,seed,"
                         "lr,reg,reason\n");
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  ck_assert(strstr(line, ",failed,") && strstr(line, "\"out of \"\"luck\"\"\""));
  fclose(f);
  /* every trial failing: no best, still a consistent file */
  unlink(jl);
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 1));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_SEED, 1));
  ck_ok(nnkit_search_run(s, failing_objective, NULL)); /* trial 0: ok */
  ck_ok(nnkit_search_best(&best, s));
  unlink(jl);
  unlink(csv);
  unlink(out);
  ck_fails(nnkit_search_save_csv(s, "/nonexistent-dir/x.csv"), NNKIT_E_IO, "x.csv");
  nnkit_search_free(s);
  nnkit_space_free(sp);
}
END_TEST

static int stopping_objective(double *score, nnkit_trial *t, void *user)
{
  (void)user;
  *score = 1;
  return nnkit_trial_index(t) == 3 ? 1 : 0;
}

static int always_fails(double *score, nnkit_trial *t, void *user)
{
  (void)score;
  (void)t;
  (void)user;
  return -2;
}

START_TEST(stop_and_no_finished_trial)
{
  nnkit_space *sp = lr_reg_space();
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_run(s, stopping_objective, NULL));
  ck_assert_uint_eq(nnkit_search_num_trials(s), 3);
  ck_ok(nnkit_search_run(s, always_fails, NULL));
  ck_assert_uint_eq(nnkit_search_num_trials(s), 20);
  ck_assert(strstr(nnkit_search_reason(s, 0), "returned -2") != NULL);
  size_t best;
  ck_fails(nnkit_search_best(&best, s), NNKIT_E_STATE, "no trial finished");
  ck_assert_ptr_null(nnkit_search_reason(s, 20));
  /* coarse-to-fine with a failing coarse phase: a warning, no fine phase */
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_COARSE_FINE));
  ck_ok(nnkit_search_run(s, always_fails, NULL));
  ck_assert_uint_eq(nnkit_search_num_trials(s), 20);
  ck_assert(strstr(nnkit_search_warnings(s), "fine phase was not run") != NULL);
  nnkit_search_free(s);
  nnkit_space_free(sp);
}
END_TEST

/* ---- errors ------------------------------------------------------------------ */

START_TEST(bad_spaces_give_clear_errors)
{
  nnkit_space *sp = NULL;
  ck_ok(nnkit_space_create(&sp));
  ck_fails(nnkit_space_add(sp, "lr", NNKIT_DIM_LOG_UNIFORM, 1e-3, 1e-3,
                           NNKIT_TARGET_NONE, 0, 0), NNKIT_E_INVALID, "is empty");
  ck_fails(nnkit_space_add(sp, "lr", NNKIT_DIM_UNIFORM, 1, 0, NNKIT_TARGET_NONE, 0, 0),
           NNKIT_E_INVALID, "is inverted");
  ck_fails(nnkit_space_add(sp, "lr", NNKIT_DIM_LOG_UNIFORM, 0, 1, NNKIT_TARGET_NONE, 0, 0),
           NNKIT_E_INVALID, "0 < lo");
  ck_fails(nnkit_space_add(sp, "n", NNKIT_DIM_INT, 1.5, 4, NNKIT_TARGET_NONE, 0, 0),
           NNKIT_E_INVALID, "whole numbers");
  ck_fails(nnkit_space_add(sp, "lr", NNKIT_DIM_UNIFORM, 0, NAN, NNKIT_TARGET_NONE, 0, 0),
           NNKIT_E_INVALID, "not finite");
  ck_fails(nnkit_space_add(sp, "lr", NNKIT_DIM_CHOICE, 0, 1, NNKIT_TARGET_NONE, 0, 0),
           NNKIT_E_INVALID, "not a range kind");
  ck_fails(nnkit_space_add(sp, "l r", NNKIT_DIM_UNIFORM, 0, 1, NNKIT_TARGET_NONE, 0, 0),
           NNKIT_E_INVALID, "dimension name");
  ck_fails(nnkit_space_add(sp, "x", NNKIT_DIM_UNIFORM, 0, 1, NNKIT_TARGET_OPTIMIZER,
                           NNKIT_OPTIM_SGD, 99), NNKIT_E_INVALID, "'x'");
  ck_fails(nnkit_space_add(sp, "mom", NNKIT_DIM_UNIFORM, 0.5, 1.5, NNKIT_TARGET_OPTIMIZER,
                           NNKIT_OPTIM_SGD, NNKIT_OPT_MOMENTUM), NNKIT_E_INVALID,
           "outside its range");
  ck_fails(nnkit_space_add(sp, "bs", NNKIT_DIM_LOG_UNIFORM, 8, 64, NNKIT_TARGET_TRAINER, 0,
                           NNKIT_TRAIN_BATCH_SIZE), NNKIT_E_INVALID, "whole numbers");
  ck_fails(nnkit_space_add(sp, "p", NNKIT_DIM_UNIFORM, 0, 1, NNKIT_TARGET_LAYER, 1, 999),
           NNKIT_E_INVALID, "no layer kind");
  ck_fails(nnkit_space_add(sp, "p", NNKIT_DIM_UNIFORM, 0.1, 1, NNKIT_TARGET_LAYER, 1,
                           NNKIT_LAYER_DROP_P), NNKIT_E_INVALID, "outside its range");
  ck_fails(nnkit_space_add(sp, "p", NNKIT_DIM_UNIFORM, 0, 1, (nnkit_search_target)42, 0, 0),
           NNKIT_E_INVALID, "not an nnkit_search_target");
  double bad[2] = {0.9, 1.0};
  ck_fails(nnkit_space_add_choice(sp, "m", bad, 2, NNKIT_TARGET_OPTIMIZER, NNKIT_OPTIM_SGD,
                                  NNKIT_OPT_MOMENTUM), NNKIT_E_INVALID, "outside its range");
  ck_fails(nnkit_space_add_choice(sp, "m", bad, 0, NNKIT_TARGET_NONE, 0, 0),
           NNKIT_E_INVALID, "empty");
  ck_assert_uint_eq(nnkit_space_num_dims(sp), 0); /* unchanged */
  nnkit_search *s = NULL;
  ck_fails(nnkit_search_create(&s, sp), NNKIT_E_INVALID, "no dimensions");
  ck_ok(nnkit_space_add(sp, "x", NNKIT_DIM_UNIFORM, 0, 1, NNKIT_TARGET_NONE, 0, 0));
  ck_fails(nnkit_space_add(sp, "x", NNKIT_DIM_UNIFORM, 0, 1, NNKIT_TARGET_NONE, 0, 0),
           NNKIT_E_INVALID, "exists already");
  ck_ok(nnkit_search_create(&s, sp));
  ck_fails(nnkit_search_set(s, NNKIT_SEARCH_WORKERS, 0), NNKIT_E_INVALID, "workers");
  ck_fails(nnkit_search_set(s, (nnkit_search_param)99, 0), NNKIT_E_INVALID, "no setting");
  double v, lo, hi;
  int fl;
  ck_ok(nnkit_search_get(&v, s, NNKIT_SEARCH_ETA));
  ck_assert(v == 3);
  ck_ok(nnkit_search_bounds(&lo, &hi, &fl, NNKIT_SEARCH_WORKERS));
  ck_assert(lo == 1 && hi == 256 && (fl & NNKIT_BOUND_INTEGER));
  ck_fails(nnkit_search_get(&v, s, (nnkit_search_param)0), NNKIT_E_INVALID, "no setting");
  ck_fails(nnkit_search_bounds(&lo, &hi, &fl, (nnkit_search_param)0), NNKIT_E_INVALID,
           "no setting");
  ck_fails(nnkit_search_set_score_name(s, "a b"), NNKIT_E_INVALID, "a b");
  ck_fails(nnkit_search_run(s, NULL, NULL), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_search_run_training(s, build_mlp, NULL, NULL, NULL), NNKIT_E_INVALID,
           "NULL");
  double r;
  ck_fails(nnkit_search_result(&r, s, 0, NNKIT_RESULT_SCORE), NNKIT_E_INVALID,
           "out of range");
  ck_fails(nnkit_search_value(&r, s, 0, 0), NNKIT_E_INVALID, "out of range");
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_GRID));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_GRID_POINTS, 10000));
  nnkit_space *big = NULL;
  ck_ok(nnkit_space_create(&big));
  ck_ok(nnkit_space_add(big, "a", NNKIT_DIM_UNIFORM, 0, 1, NNKIT_TARGET_NONE, 0, 0));
  ck_ok(nnkit_space_add(big, "b", NNKIT_DIM_UNIFORM, 0, 1, NNKIT_TARGET_NONE, 0, 0));
  nnkit_search *g = NULL;
  ck_ok(nnkit_search_create(&g, big));
  ck_ok(nnkit_search_set(g, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_GRID));
  ck_ok(nnkit_search_set(g, NNKIT_SEARCH_GRID_POINTS, 10000));
  ck_fails(nnkit_search_run(g, counting_objective, NULL), NNKIT_E_INVALID, "grid");
  nnkit_search_free(g);
  nnkit_space_free(big);
  nnkit_search_free(s);
  nnkit_space_free(sp);
}
END_TEST

/* A 2-4 net with Adam (user "adam": an optimizer of another kind than the
 * space's) or a 2-7 net with SGD (user "fixed": a width that ignores the
 * trial's). */
static int build_small(nnkit_net **net_out, nnkit_optimizer **opt_out,
                       const nnkit_trial *t, void *user)
{
  int adam = !strcmp(user, "adam");
  size_t in = 2;
  nnkit_status st = nnkit_net_create(net_out, &in, 1, nnkit_trial_seed(t));
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(*net_out, adam ? 4 : 7);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_create(opt_out, adam ? NNKIT_OPTIM_ADAM : NNKIT_OPTIM_SGD);
  return st == NNKIT_OK ? 0 : -1;
}

START_TEST(builtin_objective_failures_name_the_dimension)
{
  nnkit_dataset *train = tu_blobs4(40, 0.5, 1), *val = tu_blobs4(20, 0.5, 2);
  nnkit_space *sp = NULL;
  ck_ok(nnkit_space_create(&sp));
  ck_ok(nnkit_space_add(sp, "lr", NNKIT_DIM_LOG_UNIFORM, 1e-3, 1e-1,
                        NNKIT_TARGET_OPTIMIZER, NNKIT_OPTIM_SGD, NNKIT_OPT_LR));
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 2));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_EPOCHS, 1));
  ck_fails(nnkit_search_run_training(s, build_small, "adam", train, NULL), NNKIT_E_INVALID,
           "no validation set");
  ck_ok(nnkit_search_run_training(s, build_small, "adam", train, val));
  ck_assert(strstr(nnkit_search_reason(s, 0), "dimension 'lr'") &&
            strstr(nnkit_search_reason(s, 0), "kind"));
  nnkit_space *w = NULL;
  ck_ok(nnkit_space_create(&w));
  ck_ok(nnkit_space_add(w, "hidden", NNKIT_DIM_INT, 8, 16, NNKIT_TARGET_LAYER, 0,
                        NNKIT_LAYER_UNITS));
  nnkit_search *s2 = NULL;
  ck_ok(nnkit_search_create(&s2, w));
  ck_ok(nnkit_search_set(s2, NNKIT_SEARCH_TRIALS, 1));
  ck_ok(nnkit_search_set(s2, NNKIT_SEARCH_EPOCHS, 1));
  ck_ok(nnkit_search_run_training(s2, build_small, "fixed", train, val));
  ck_assert_msg(strstr(nnkit_search_reason(s2, 0), "fixed once the layer is added"),
                "%s", nnkit_search_reason(s2, 0));
  nnkit_search_free(s2);
  nnkit_space_free(w);
  nnkit_search_free(s);
  nnkit_space_free(sp);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
}
END_TEST

/* ---- k-fold ------------------------------------------------------------------ */

START_TEST(kfold_validates_each_sample_exactly_once)
{
  enum { N = 90, K = 3 };
  float x[N * 2];
  int32_t y[N];
  for (int i = 0; i < N; i++) {
    x[2 * i] = (float)i;
    x[2 * i + 1] = 0;
    y[i] = i % 3;
  }
  size_t shape[1] = {2};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, N, shape, 1, 3));
  int validated[N] = {0};
  for (size_t f = 0; f < K; f++) {
    nnkit_dataset *tr = NULL, *va = NULL;
    ck_ok(nnkit_dataset_fold(&tr, &va, ds, K, f, 4));
    ck_assert_uint_eq(nnkit_dataset_count(tr) + nnkit_dataset_count(va), N);
    const float *v = nnkit_dataset_data(va);
    for (size_t i = 0; i < nnkit_dataset_count(va); i++)
      validated[(int)v[2 * i]]++;
    nnkit_dataset_free(tr);
    nnkit_dataset_free(va);
  }
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(validated[i], 1);
  nnkit_dataset_free(ds);
  /* the built-in objective with FOLDS 3: a mean and a spread */
  nnkit_dataset *train = tu_blobs4(120, 0.8, 3);
  nnkit_space *sp = lr_reg_space();
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 2));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_EPOCHS, 2));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_FOLDS, K));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_WORKERS, 2));
  ck_ok(nnkit_search_run_training(s, build_mlp, NULL, train, NULL));
  for (size_t i = 0; i < 2; i++) {
    double sc, sd;
    ck_ok(nnkit_search_result(&sc, s, i, NNKIT_RESULT_SCORE));
    ck_ok(nnkit_search_result(&sd, s, i, NNKIT_RESULT_SCORE_STD));
    ck_assert_msg(sc >= 0 && sc <= 1 && sd >= 0 && isfinite(sd), "%g %g: %s", sc, sd,
                  nnkit_search_reason(s, i));
  }
  nnkit_search_free(s);
  nnkit_space_free(sp);
  nnkit_dataset_free(train);
}
END_TEST

/* ---- trial lines --------------------------------------------------------------- */

START_TEST(trial_lines_in_the_lecture_format)
{
  nnkit_dataset *train = tu_blobs4(80, 0.6, 1), *val = tu_blobs4(40, 0.6, 2);
  nnkit_space *sp = lr_reg_space();
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 3));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_EPOCHS, 1));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_VERBOSE, 1));
  tu_lines lines = {0};
  nnkit_search_set_logger(s, tu_capture, &lines);
  ck_ok(nnkit_search_run_training(s, build_mlp, NULL, train, val));
  double lr, reg, acc;
  ck_ok(nnkit_search_value(&lr, s, 0, 0));
  ck_ok(nnkit_search_value(&reg, s, 0, 1));
  ck_ok(nnkit_search_result(&acc, s, 0, NNKIT_RESULT_SCORE));
  char want[256];
  snprintf(want, sizeof want, "val_acc: %f, lr: %e, reg: %e, (1 / 3)", acc, lr, reg);
  ck_assert_msg(tu_any_line(&lines, want), "no line '%s'", want);
  ck_assert(tu_any_line(&lines, "random search: 3 trial(s)"));
  ck_ok(nnkit_search_set_score_name(s, "acc"));
  char csv[512];
  snprintf(csv, sizeof csv, "%s/search_lines_%d.csv", NNKIT_TEST_TMPDIR, (int)getpid());
  ck_ok(nnkit_search_save_csv(s, csv));
  FILE *f = fopen(csv, "r");
  char head[256];
  ck_assert_ptr_nonnull(fgets(head, sizeof head, f));
  fclose(f);
  unlink(csv);
  ck_assert(strstr(head, ",acc,score_std,") != NULL);
  nnkit_search_free(s);
  nnkit_space_free(sp);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
}
END_TEST

static int apply_objective(double *score, nnkit_trial *t, void *user)
{
  (void)user;
  nnkit_dataset *ds = tu_blobs4(16, 0.5, 1);
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  nnkit_pipeline *p = NULL;
  nnkit_schedule *sch = NULL;
  ck_ok(build_mlp(&net, &opt, t, NULL) == 0 ? NNKIT_OK : NNKIT_E_INVALID);
  ck_ok(nnkit_schedule_create(&sch, NNKIT_SCHEDULE_STEP));
  ck_ok(nnkit_optimizer_set_schedule(opt, sch));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_pipeline_create(&p, ds));
  ck_ok(nnkit_trial_apply(t, net, opt, tr, p));
  double v;
  ck_ok(nnkit_schedule_get(&v, sch, NNKIT_SCHED_GAMMA));
  ck_assert(v == nnkit_trial_value(t, 0));
  ck_ok(nnkit_pipeline_get(&v, p, NNKIT_PIPE_BATCH_SIZE));
  ck_assert(v == nnkit_trial_value(t, 1));
  ck_ok(nnkit_net_layer_get(&v, net, 2, NNKIT_LAYER_DROP_P));
  ck_assert(v == nnkit_trial_value(t, 2));
  ck_ok(nnkit_trial_apply(t, NULL, NULL, NULL, NULL)); /* skips every target */
  ck_fails(nnkit_trial_get(&v, t, "nope"), NNKIT_E_INVALID, "nope");
  ck_assert(nnkit_trial_value(t, 99) == 0);
  nnkit_trainer_free(tr);
  nnkit_pipeline_free(p);
  nnkit_net_free(net);
  nnkit_optimizer_free(opt);
  nnkit_dataset_free(ds);
  *score = 0;
  return 0;
}

START_TEST(trial_apply_sets_every_target)
{
  nnkit_space *sp = NULL;
  ck_ok(nnkit_space_create(&sp));
  ck_ok(nnkit_space_add(sp, "gamma", NNKIT_DIM_UNIFORM, 0.1, 0.9, NNKIT_TARGET_SCHEDULE,
                        NNKIT_SCHEDULE_STEP, NNKIT_SCHED_GAMMA));
  ck_ok(nnkit_space_add(sp, "pbatch", NNKIT_DIM_INT, 4, 32, NNKIT_TARGET_PIPELINE, 0,
                        NNKIT_PIPE_BATCH_SIZE));
  ck_ok(nnkit_space_add(sp, "drop", NNKIT_DIM_UNIFORM, 0, 0.5, NNKIT_TARGET_LAYER, 2,
                        NNKIT_LAYER_DROP_P));
  nnkit_search *s = NULL;
  ck_ok(nnkit_search_create(&s, sp));
  ck_ok(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 3));
  ck_ok(nnkit_search_run(s, apply_objective, NULL));
  ck_assert_uint_eq(nnkit_search_num_trials(s), 3);
  nnkit_search_free(s);
  nnkit_space_free(sp);
}
END_TEST

START_TEST(null_arguments)
{
  /* NULL handles of the calls that cannot fail: test_core.c */
  ck_fails(nnkit_trial_apply(NULL, NULL, NULL, NULL, NULL), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_space_create(NULL), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_search_create(NULL, NULL), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_search_set_results_file(NULL, "x"), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_search_set_score_name(NULL, "x"), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_search_save_jsonl(NULL, "x"), NNKIT_E_INVALID, "NULL");
}
END_TEST

static Suite *search_suite(void)
{
  Suite *s = suite_create("search");
  TCase *tc = tcase_create("search");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, log_uniform_draws_are_uniform_in_log_space);
  tcase_add_test(tc, grid_enumerates_exactly_the_product);
  tcase_add_test(tc, narrowing_stays_inside_the_original_bounds);
  tcase_add_test(tc, halving_keeps_the_right_survivors);
  tcase_add_test(tc, same_seed_same_trials_with_1_and_2_workers);
  tcase_add_test(tc, trials_run_at_one_thread);
  tcase_add_test(tc, resume_after_kill_reruns_nothing);
  tcase_add_test(tc, failing_trials_are_recorded_and_the_search_goes_on);
  tcase_add_test(tc, stop_and_no_finished_trial);
  tcase_add_test(tc, bad_spaces_give_clear_errors);
  tcase_add_test(tc, builtin_objective_failures_name_the_dimension);
  tcase_add_test(tc, kfold_validates_each_sample_exactly_once);
  tcase_add_test(tc, trial_lines_in_the_lecture_format);
  tcase_add_test(tc, trial_apply_sets_every_target);
  tcase_add_test(tc, null_arguments);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nnkit_test_run(search_suite()); }
