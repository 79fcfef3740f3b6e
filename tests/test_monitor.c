/* Monitoring the fit loop: callbacks, the history against independent
 * recomputation and its CSV/JSON Lines exports, early stopping, the
 * divergence detector, sanity checks, metrics, per-layer statistics, the
 * diagnosis and the learning-rate finder. */
#include <unistd.h>

#include <cjson/cJSON.h>

#include "testutil.h"

/* ---- fixtures ------------------------------------------------------------ */

/* Gaussian blobs on a circle, one per class; `flip` of the labels
 * replaced by a random class (label noise). */
static nnkit_dataset *blobs(size_t n, int classes, double spread, double flip,
                            uint64_t seed)
{
  float *x = malloc(n * 2 * sizeof *x);
  int32_t *y = malloc(n * sizeof *y);
  nnkit__rng r;
  nnkit__rng_init(&r, seed, 0);
  for (size_t i = 0; i < n; i++) {
    int c = (int)(i % (size_t)classes);
    double a = c * 6.283185307 / classes;
    x[2 * i] = (float)(2 * cos(a) + spread * nnkit__rng_normal(&r));
    x[2 * i + 1] = (float)(2 * sin(a) + spread * nnkit__rng_normal(&r));
    y[i] = c;
    if (nnkit__rng_uniform(&r) < flip)
      y[i] = (int32_t)nnkit__rng_below(&r, (uint64_t)classes);
  }
  size_t shape[1] = {2};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, n, shape, 1, (uint32_t)classes));
  free(x);
  free(y);
  return ds;
}

static nnkit_net *mlp(uint64_t seed, size_t hidden, nnkit_activation act,
                      size_t classes)
{
  size_t in = 2;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, seed));
  ck_ok(nnkit_net_add_dense(net, hidden));
  ck_ok(nnkit_net_add_activation(net, act));
  ck_ok(nnkit_net_add_dense(net, classes));
  return net;
}

static nnkit_trainer *trainer(nnkit_net *net, nnkit_optimizer **opt, double lr,
                              size_t epochs, size_t bs)
{
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(*opt, NNKIT_OPT_LR, lr));
  ck_ok(nnkit_trainer_create(&tr, net, *opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)epochs));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, (double)bs));
  return tr;
}


/* A fresh path (tu_tmp_path) in one of four rotating buffers. */
static char *tmp_path(const char *name)
{
  static char buf[4][1024];
  static int k;
  k = (k + 1) % 4;
  tu_tmp_path(buf[k], sizeof buf[k], name);
  return buf[k];
}

static char *slurp(const char *path)
{
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
  s[n] = '\0';
  fclose(f);
  return s;
}

/* ---- history against independent recomputation --------------------------- */

typedef struct recompute {
  const nnkit_dataset *train, *val;
  size_t bs, per_epoch;
  double *loss, *acc; /* expected loss/accuracy of each step's batch */
  double *vloss, *vacc;
  size_t steps;
} recompute;

/* Loss and accuracy of the batch a step will see (no shuffle: batches are
 * consecutive samples), with the net's parameters as they are now. */
static void batch_figures(nnkit_net *net, const recompute *rc, size_t step,
                          double *loss, double *acc)
{
  size_t b = step % rc->per_epoch;
  size_t idx[64];
  for (size_t i = 0; i < rc->bs; i++)
    idx[i] = b * rc->bs + i;
  nnkit_dataset *sub = NULL;
  ck_ok(nnkit_dataset_subset(&sub, rc->train, idx, rc->bs));
  ck_ok(nnkit_net_evaluate(loss, acc, net, sub));
  nnkit_dataset_free(sub);
}

static int rc_batch(const nnkit_trainer *tr, size_t epoch, size_t batch,
                    double loss, void *user)
{
  (void)epoch;
  (void)batch;
  (void)loss;
  recompute *rc = user;
  rc->steps++; /* the next step's batch, with the weights after this step */
  batch_figures(nnkit_trainer_net(tr), rc, rc->steps, &rc->loss[rc->steps],
                &rc->acc[rc->steps]);
  return 0;
}

static int rc_epoch(const nnkit_trainer *tr, size_t epoch, void *user)
{
  recompute *rc = user;
  ck_ok(nnkit_net_evaluate(&rc->vloss[epoch], &rc->vacc[epoch], nnkit_trainer_net(tr),
                           rc->val));
  return 0;
}

START_TEST(history_equals_recomputation)
{
  enum { N = 240, BS = 40, EPOCHS = 4 };
  nnkit_dataset *train = blobs(N, 3, 0.6, 0, 1), *val = blobs(90, 3, 0.6, 0, 2);
  nnkit_net *net = mlp(5, 12, NNKIT_ACT_TANH, 3);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.2, EPOCHS, BS);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SHUFFLE, 0));
  double loss[64], acc[64], vloss[8], vacc[8];
  recompute rc = {train, val, BS, N / BS, loss, acc, vloss, vacc, 0};
  batch_figures(net, &rc, 0, &loss[0], &acc[0]);
  ck_ok(nnkit_trainer_add_batch_callback(tr, rc_batch, &rc));
  ck_ok(nnkit_trainer_add_epoch_callback(tr, rc_epoch, &rc));
  ck_ok(nnkit_trainer_fit(tr, train, val));
  const nnkit_history *h = nnkit_trainer_history(tr);
  ck_assert_uint_eq(nnkit_history_epochs(h), EPOCHS);
  ck_assert_uint_eq(nnkit_history_batches(h), EPOCHS * N / BS);
  double bl[64], blr[64];
  size_t got;
  ck_ok(nnkit_history_batch_losses(bl, blr, 64, &got, h, 0));
  ck_assert_uint_eq(got, EPOCHS * N / BS);
  for (size_t i = 0; i < got; i++) {
    ck_assert_double_eq_tol(bl[i], loss[i], 1e-6);
    ck_assert_double_eq(blr[i], 0.2);
  }
  double col[EPOCHS];
  ck_ok(nnkit_history_column(col, EPOCHS, h, NNKIT_METRIC_TRAIN_LOSS));
  for (size_t e = 0; e < EPOCHS; e++) {
    double l = 0, a = 0, v;
    for (size_t b = 0; b < N / BS; b++) {
      l += loss[e * (N / BS) + b] / (N / BS);
      a += acc[e * (N / BS) + b] / (N / BS);
    }
    ck_assert_double_eq_tol(col[e], l, 1e-6);
    ck_ok(nnkit_history_get(&v, h, e, NNKIT_METRIC_TRAIN_ACC));
    ck_assert_double_eq_tol(v, a, 1e-9);
    ck_ok(nnkit_history_get(&v, h, e, NNKIT_METRIC_VAL_LOSS));
    ck_assert_double_eq_tol(v, vloss[e], 1e-12);
    ck_ok(nnkit_history_get(&v, h, e, NNKIT_METRIC_VAL_ACC));
    ck_assert_double_eq_tol(v, vacc[e], 1e-12);
    /* The trainer's own record agrees with the history. */
    double m;
    for (int k = NNKIT_METRIC_TRAIN_LOSS; k <= NNKIT_METRIC_SECONDS; k++) {
      ck_ok(nnkit_trainer_metric(&m, tr, e, (nnkit_metric)k));
      ck_ok(nnkit_history_get(&v, h, e, (nnkit_metric)k));
      ck_assert(m == v);
    }
  }
  /* A window of batches, and the errors. */
  ck_ok(nnkit_history_batch_losses(bl, NULL, 3, &got, h, 22));
  ck_assert_uint_eq(got, 2);
  ck_assert_double_eq_tol(bl[0], loss[22], 1e-6);
  ck_fails(nnkit_history_batch_losses(bl, NULL, 3, &got, h, 25), NNKIT_E_INVALID,
           "not recorded");
  ck_fails(nnkit_history_get(&col[0], h, 4, NNKIT_METRIC_LR), NNKIT_E_INVALID,
           "not recorded");
  ck_fails(nnkit_history_get(&col[0], h, 0, (nnkit_metric)77), NNKIT_E_INVALID,
           "unknown metric");
  ck_fails(nnkit_history_column(col, 1, h, (nnkit_metric)77), NNKIT_E_INVALID,
           "unknown metric");
  ck_assert_ptr_eq(nnkit_trainer_net(tr), net);
  ck_assert_ptr_eq(nnkit_trainer_optimizer(tr), opt);
  ck_assert_str_eq(nnkit_trainer_stop_reason(tr), "");
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
}
END_TEST

/* ---- exports ------------------------------------------------------------- */

/* Splits a CSV line into at most max fields (in place). */
static int split(char *line, char **f, int max)
{
  int n = 0;
  char *save = NULL;
  for (char *t = strtok_r(line, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save))
    f[n++] = t;
  return n;
}

static double jnum(const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  ck_assert_msg(v != NULL, "key %s missing", key);
  if (cJSON_IsNull(v))
    return NAN;
  ck_assert(cJSON_IsNumber(v));
  return v->valuedouble;
}

START_TEST(exports_parse_back)
{
  nnkit_dataset *train = blobs(120, 3, 0.5, 0, 3);
  nnkit_net *net = mlp(2, 8, NNKIT_ACT_RELU, 3);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.1, 3, 32);
  ck_ok(nnkit_trainer_fit(tr, train, NULL)); /* no validation: NaN columns */
  const nnkit_history *h = nnkit_trainer_history(tr);
  const char *csv = tmp_path("epochs.csv"), *jl = tmp_path("epochs.jsonl");
  ck_ok(nnkit_history_save_csv(h, NNKIT_HISTORY_EPOCHS, csv));
  ck_ok(nnkit_history_save_jsonl(h, NNKIT_HISTORY_EPOCHS, jl));
  char *text = slurp(csv), *save = NULL;
  char *line = strtok_r(text, "\n", &save);
  ck_assert_str_eq(line, "epoch,train_loss,reg_loss,train_acc,val_loss,val_acc,lr,"
                         "seconds,batches");
  size_t e = 0;
  while ((line = strtok_r(NULL, "\n", &save))) {
    char *f[16];
    ck_assert_int_eq(split(line, f, 16), 9);
    ck_assert_uint_eq(strtoul(f[0], NULL, 10), e + 1);
    double v;
    ck_ok(nnkit_history_get(&v, h, e, NNKIT_METRIC_TRAIN_LOSS));
    ck_assert(strtod(f[1], NULL) == v); /* 17 digits: exact */
    ck_ok(nnkit_history_get(&v, h, e, NNKIT_METRIC_TRAIN_ACC));
    ck_assert(strtod(f[3], NULL) == v);
    ck_assert(isnan(strtod(f[4], NULL)));
    ck_assert_str_eq(f[5], "nan");
    ck_ok(nnkit_history_get(&v, h, e, NNKIT_METRIC_SECONDS));
    ck_assert(strtod(f[7], NULL) == v);
    ck_assert_uint_eq(strtoul(f[8], NULL, 10), 4);
    e++;
  }
  ck_assert_uint_eq(e, 3);
  free(text);
  /* JSON Lines: one object per epoch, null for the missing val figures. */
  text = slurp(jl);
  save = NULL;
  e = 0;
  for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    cJSON *o = cJSON_Parse(line);
    ck_assert_msg(o != NULL, "bad JSON: %s", line);
    ck_assert_double_eq(jnum(o, "epoch"), (double)(e + 1));
    double v;
    ck_ok(nnkit_history_get(&v, h, e, NNKIT_METRIC_TRAIN_LOSS));
    ck_assert(jnum(o, "train_loss") == v);
    ck_ok(nnkit_history_get(&v, h, e, NNKIT_METRIC_LR));
    ck_assert(jnum(o, "lr") == v);
    ck_assert(isnan(jnum(o, "val_loss")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "val_acc")));
    cJSON_Delete(o);
    e++;
  }
  ck_assert_uint_eq(e, 3);
  free(text);
  /* Batches. */
  ck_ok(nnkit_history_save_csv(h, NNKIT_HISTORY_BATCHES, csv));
  ck_ok(nnkit_history_save_jsonl(h, NNKIT_HISTORY_BATCHES, jl));
  text = slurp(csv);
  save = NULL;
  line = strtok_r(text, "\n", &save);
  ck_assert_str_eq(line, "step,epoch,batch,loss,lr");
  double bl[16];
  size_t got, i = 0;
  ck_ok(nnkit_history_batch_losses(bl, NULL, 16, &got, h, 0));
  ck_assert_uint_eq(got, 12);
  while ((line = strtok_r(NULL, "\n", &save))) {
    char *f[8];
    ck_assert_int_eq(split(line, f, 8), 5);
    ck_assert_uint_eq(strtoul(f[1], NULL, 10), i / 4 + 1);
    ck_assert_uint_eq(strtoul(f[2], NULL, 10), i % 4 + 1);
    ck_assert(strtod(f[3], NULL) == bl[i]);
    i++;
  }
  ck_assert_uint_eq(i, 12);
  free(text);
  text = slurp(jl);
  save = NULL;
  i = 0;
  for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    cJSON *o = cJSON_Parse(line);
    ck_assert_ptr_nonnull(o);
    ck_assert(jnum(o, "loss") == bl[i]);
    ck_assert_double_eq(jnum(o, "step"), (double)(i + 1));
    cJSON_Delete(o);
    i++;
  }
  ck_assert_uint_eq(i, 12);
  free(text);
  /* Layers: one row per epoch and layer, with the kind. */
  ck_ok(nnkit_history_save_csv(h, NNKIT_HISTORY_LAYERS, csv));
  ck_ok(nnkit_history_save_jsonl(h, NNKIT_HISTORY_LAYERS, jl));
  ck_assert_uint_eq(nnkit_history_num_layers(h), 3);
  text = slurp(csv);
  save = NULL;
  line = strtok_r(text, "\n", &save);
  ck_assert_str_eq(line, "epoch,layer,kind,act_mean,act_std,saturated,dead,grad_norm,"
                         "update_ratio,param_norm");
  i = 0;
  nnkit_layer_stat all[7] = {1, 2, 3, 4, 5, 6, 7};
  double row[3 * 7];
  while ((line = strtok_r(NULL, "\n", &save))) {
    char *f[12];
    ck_assert_int_eq(split(line, f, 12), 10);
    size_t ep = i / 3, l = i % 3;
    ck_ok(nnkit_history_layer_stats(row, 21, all, 7, h, ep));
    ck_assert_str_eq(f[2], l == 0 ? "dense" : (l == 1 ? "relu" : "dense"));
    for (int k = 0; k < 7; k++) {
      double v = strtod(f[3 + k], NULL);
      ck_assert_msg(v == row[l * 7 + k] || (isnan(v) && isnan(row[l * 7 + k])),
                    "epoch %zu layer %zu stat %d: %s vs %g", ep, l, k, f[3 + k],
                    row[l * 7 + k]);
    }
    i++;
  }
  ck_assert_uint_eq(i, 9);
  free(text);
  text = slurp(jl);
  save = NULL;
  line = strtok_r(text, "\n", &save);
  cJSON *o = cJSON_Parse(line);
  ck_assert_ptr_nonnull(o);
  ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "kind")->valuestring, "dense");
  ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "dead")));
  cJSON_Delete(o);
  free(text);
  /* Errors: no partial file is left behind. */
  ck_fails(nnkit_history_save_csv(h, NNKIT_HISTORY_EPOCHS, "/nonexistent-dir/h.csv"),
           NNKIT_E_IO, "/nonexistent-dir/h.csv");
  ck_fails(nnkit_history_save_jsonl(h, (nnkit_history_table)9, jl), NNKIT_E_INVALID,
           "unknown table");
  ck_fails(nnkit_history_save_csv(NULL, NNKIT_HISTORY_EPOCHS, jl), NNKIT_E_INVALID, "NULL");
  unlink(csv);
  unlink(jl);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
}
END_TEST

/* ---- callbacks ----------------------------------------------------------- */

typedef struct counter {
  size_t calls, stop_epoch, stop_batch;
  int ret;
} counter;

static int stop_at(const nnkit_trainer *tr, size_t epoch, size_t batch, double loss,
                   void *user)
{
  (void)tr;
  (void)loss;
  counter *c = user;
  c->calls++;
  return epoch == c->stop_epoch && batch == c->stop_batch ? c->ret : 0;
}

static int count_batches(const nnkit_trainer *tr, size_t epoch, size_t batch,
                         double loss, void *user)
{
  (void)tr;
  (void)epoch;
  (void)batch;
  (void)loss;
  ((counter *)user)->calls++;
  return 0;
}

static int epoch_stop_at(const nnkit_trainer *tr, size_t epoch, void *user)
{
  (void)tr;
  counter *c = user;
  c->calls++;
  return epoch == c->stop_epoch ? c->ret : 0;
}

START_TEST(callbacks_stop_and_abort)
{
  nnkit_dataset *train = blobs(100, 2, 0.5, 0, 4);
  nnkit_net *net = mlp(3, 8, NNKIT_ACT_TANH, 2);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.1, 5, 20); /* 5 batches per epoch */
  counter a = {0, 1, 2, 1}, b = {0};
  ck_ok(nnkit_trainer_add_batch_callback(tr, stop_at, &a));
  ck_ok(nnkit_trainer_add_batch_callback(tr, count_batches, &b));
  ck_ok(nnkit_trainer_fit(tr, train, NULL));
  /* Epoch 0 complete, epoch 1 stopped after its third batch; the second
   * callback is not called once the first asked to stop. */
  ck_assert_uint_eq(a.calls, 8);
  ck_assert_uint_eq(b.calls, 7);
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 2);
  ck_assert_uint_eq(nnkit_history_batches(nnkit_trainer_history(tr)), 8);
  ck_assert(strstr(nnkit_trainer_stop_reason(tr), "batch callback 1") != NULL);
  /* The partial epoch averages the three batches it ran. */
  double bl[3], v;
  ck_ok(nnkit_history_batch_losses(bl, NULL, 3, NULL, nnkit_trainer_history(tr), 5));
  ck_ok(nnkit_trainer_metric(&v, tr, 1, NNKIT_METRIC_TRAIN_LOSS));
  ck_assert_double_eq_tol(v, (bl[0] + bl[1] + bl[2]) / 3, 1e-12);

  /* Abort: NNKIT_E_USER with a sentence, at once. */
  nnkit_trainer_clear_callbacks(tr);
  counter c = {0, 2, 0, -7};
  ck_ok(nnkit_trainer_add_batch_callback(tr, stop_at, &c));
  ck_fails(nnkit_trainer_fit(tr, train, NULL), NNKIT_E_USER, "returned -7 at epoch 3");
  ck_assert_uint_eq(c.calls, 1);
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 2);

  /* Epoch callbacks: stop after an epoch, or abort. */
  nnkit_trainer_clear_callbacks(tr);
  counter d = {0, 3, 0, 1};
  ck_ok(nnkit_trainer_add_epoch_callback(tr, epoch_stop_at, &d));
  ck_ok(nnkit_trainer_fit(tr, train, NULL));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 4); /* epochs 2 and 3 */
  ck_assert_uint_eq(d.calls, 2);
  ck_assert_str_eq(nnkit_trainer_stop_reason(tr),
                   "epoch callback 1 asked to stop after epoch 4");
  nnkit_trainer_clear_callbacks(tr);
  counter f = {0, 4, 0, -1};
  ck_ok(nnkit_trainer_add_epoch_callback(tr, epoch_stop_at, &f));
  ck_fails(nnkit_trainer_fit(tr, train, NULL), NNKIT_E_USER, "epoch callback 1 returned -1");
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 5);

  ck_fails(nnkit_trainer_add_batch_callback(tr, NULL, NULL), NNKIT_E_INVALID, "non-NULL");
  ck_fails(nnkit_trainer_add_epoch_callback(NULL, epoch_stop_at, NULL), NNKIT_E_INVALID,
           "non-NULL");
  nnkit_trainer_clear_callbacks(NULL);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
}
END_TEST

/* ---- early stopping ------------------------------------------------------ */

typedef struct weights_log {
  float *w; /* epochs x n */
  size_t n, cap;
} weights_log;

static int keep_weights(const nnkit_trainer *tr, size_t epoch, void *user)
{
  weights_log *wl = user;
  ck_assert_uint_lt(epoch, wl->cap);
  memcpy(wl->w + epoch * wl->n, nnkit_net_params(nnkit_trainer_net(tr)),
         wl->n * sizeof(float));
  return 0;
}

START_TEST(early_stopping_restores_best_epoch)
{
  /* Noisy labels, few samples, a wide net: it memorizes the noise and the
   * clean validation loss turns up. */
  nnkit_dataset *train = blobs(40, 2, 0.9, 0.3, 5), *val = blobs(400, 2, 0.9, 0, 6);
  nnkit_net *net = mlp(7, 64, NNKIT_ACT_TANH, 2);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.3, 60, 8);
  size_t np = nnkit_net_num_params(net);
  weights_log wl = {malloc(200 * np * sizeof(float)), np, 200};
  ck_ok(nnkit_trainer_add_epoch_callback(tr, keep_weights, &wl));
  size_t best;
  ck_fails(nnkit_trainer_best_epoch(&best, tr), NNKIT_E_STATE, "early stopping");
  /* Never triggers (patience above the epochs), yet the best is restored. */
  ck_ok(nnkit_trainer_set_early_stopping(tr, NNKIT_METRIC_VAL_LOSS, 1000, 0));
  ck_ok(nnkit_trainer_fit(tr, train, val));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 60);
  ck_assert_str_eq(nnkit_trainer_stop_reason(tr), "");
  ck_ok(nnkit_trainer_best_epoch(&best, tr));
  ck_assert_uint_ge(best, 1); /* an epoch number, from 1 */
  best--;                     /* its index */
  double vbest, v;
  ck_ok(nnkit_trainer_metric(&vbest, tr, best, NNKIT_METRIC_VAL_LOSS));
  for (size_t e = 0; e < 60; e++) {
    ck_ok(nnkit_trainer_metric(&v, tr, e, NNKIT_METRIC_VAL_LOSS));
    ck_assert_double_ge(v, vbest);
  }
  ck_assert_uint_lt(best, 59); /* the val loss did turn up */
  ck_assert_mem_eq(nnkit_net_params(net), wl.w + best * np, np * sizeof(float));
  double vl;
  ck_ok(nnkit_net_evaluate(&vl, NULL, net, val));
  ck_assert(vl == vbest);

  /* Triggers: accuracy must beat the best by 0.5, impossible after the
   * first epoch of this fit, so it stops after `patience` more epochs and
   * restores the first epoch of the fit. */
  ck_ok(nnkit_trainer_set_early_stopping(tr, NNKIT_METRIC_VAL_ACC, 3, 0.5));
  ck_ok(nnkit_trainer_fit(tr, train, val));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 64);
  ck_ok(nnkit_trainer_best_epoch(&best, tr));
  ck_assert_uint_eq(best, 61); /* epoch 61, the first of this fit */
  ck_assert_mem_eq(nnkit_net_params(net), wl.w + 60 * np, np * sizeof(float));
  ck_assert(strstr(nnkit_trainer_stop_reason(tr),
                   "early stopping: val accuracy did not improve by more than 0.5 "
                   "for 3 epochs") != NULL);

  /* Bad settings, and a val metric without a validation set. */
  ck_fails(nnkit_trainer_set_early_stopping(tr, NNKIT_METRIC_LR, 3, 0), NNKIT_E_INVALID,
           "cannot be watched");
  ck_fails(nnkit_trainer_set_early_stopping(tr, NNKIT_METRIC_VAL_LOSS, 0, 0),
           NNKIT_E_INVALID, "patience");
  ck_fails(nnkit_trainer_set_early_stopping(tr, NNKIT_METRIC_VAL_LOSS, 2, -1),
           NNKIT_E_INVALID, "min_delta");
  ck_fails(nnkit_trainer_fit(tr, train, NULL), NNKIT_E_INVALID, "no validation set");
  ck_ok(nnkit_trainer_set_early_stopping(tr, (nnkit_metric)0, 0, 0));
  ck_fails(nnkit_trainer_best_epoch(&best, tr), NNKIT_E_STATE, "no best epoch");
  free(wl.w);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
}
END_TEST

/* ---- divergence ---------------------------------------------------------- */

typedef struct injector {
  size_t epoch, batch;
  size_t at; /* the parameter to poison: the last layer's, so the logits blow up */
} injector;

static int inject_inf(const nnkit_trainer *tr, size_t epoch, size_t batch, double loss,
                      void *user)
{
  (void)loss;
  injector *in = user;
  if (epoch == in->epoch && batch == in->batch)
    nnkit_net_params(nnkit_trainer_net(tr))[in->at] = INFINITY;
  return 0;
}

static nnkit_dataset *line_data(void)
{
  enum { N = 64 };
  float x[N * 2], t[N];
  for (int i = 0; i < N; i++) {
    x[2 * i] = (float)i / 8;
    x[2 * i + 1] = 1.0f;
    t[i] = 3.0f * x[2 * i] - 1.0f;
  }
  size_t shape[1] = {2};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_targets(&ds, x, t, N, shape, 1, 1));
  return ds;
}

static nnkit_net *linear(void)
{
  size_t in = 2;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 1));
  ck_ok(nnkit_net_add_dense(net, 1));
  ck_ok(nnkit_net_set_loss(net, NNKIT_LOSS_MSE));
  return net;
}

typedef struct opt_log {
  float st[4096];
  double sc[64];
  size_t n, m;
} opt_log;

static int keep_opt_state(const nnkit_trainer *tr, size_t epoch, void *user)
{
  opt_log *o = user;
  if (epoch != 0)
    return 0;
  const nnkit_optimizer *opt = nnkit_trainer_optimizer(tr);
  o->n = nnkit_optimizer_state_size(opt);
  o->m = nnkit_optimizer_state_scalars(opt);
  ck_ok(nnkit_optimizer_get_state(o->st, 4096, o->sc, 64, opt));
  return 0;
}

START_TEST(divergence_restores_optimizer_state)
{
  /* Momentum: the velocity is as broken as the weights after an Inf, so
   * the last good epoch's optimizer state comes back too. */
  nnkit_dataset *train = blobs(100, 2, 0.5, 0, 4);
  nnkit_net *net = mlp(3, 8, NNKIT_ACT_TANH, 2);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.05, 10, 20);
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.9));
  size_t np = nnkit_net_num_params(net);
  injector in = {1, 2, np - 1};
  opt_log *o = calloc(1, sizeof *o);
  ck_ok(nnkit_trainer_add_batch_callback(tr, inject_inf, &in));
  ck_ok(nnkit_trainer_add_epoch_callback(tr, keep_opt_state, o));
  ck_fails(nnkit_trainer_fit(tr, train, NULL), NNKIT_E_DIVERGED,
           "the weights from the end of epoch 1 were restored (and the optimizer's "
           "state)");
  ck_assert_uint_eq(nnkit_optimizer_steps(opt), 5);
  ck_assert_uint_eq(nnkit_optimizer_state_size(opt), o->n);
  ck_assert_uint_gt(o->n, 0);
  float st[4096];
  double sc[64];
  ck_ok(nnkit_optimizer_get_state(st, 4096, sc, 64, opt));
  ck_assert_mem_eq(st, o->st, o->n * sizeof(float));
  ck_assert_mem_eq(sc, o->sc, o->m * sizeof(double));
  /* So training can go on at a sane rate from there. */
  nnkit_trainer_clear_callbacks(tr);
  ck_ok(nnkit_trainer_fit(tr, train, NULL));
  free(o);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
}
END_TEST

START_TEST(divergence_detector)
{
  /* An injected Inf: stops at the next batch, restores the last epoch. */
  nnkit_dataset *train = blobs(100, 2, 0.5, 0, 4);
  nnkit_net *net = mlp(3, 8, NNKIT_ACT_TANH, 2);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.1, 10, 20);
  size_t np = nnkit_net_num_params(net);
  weights_log wl = {malloc(16 * np * sizeof(float)), np, 16};
  injector in = {2, 1, np - 1};
  ck_ok(nnkit_trainer_add_batch_callback(tr, inject_inf, &in));
  ck_ok(nnkit_trainer_add_epoch_callback(tr, keep_weights, &wl));
  ck_fails(nnkit_trainer_fit(tr, train, NULL), NNKIT_E_DIVERGED,
           "at epoch 3 / 10, batch 3; learning rate 1e-01 is likely too high, try "
           "1e-02; the weights from the end of epoch 2 were restored");
  ck_assert(strstr(nnkit_last_error(), "cost became nan") ||
            strstr(nnkit_last_error(), "cost became inf"));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 2);
  ck_assert_mem_eq(nnkit_net_params(net), wl.w + 1 * np, np * sizeof(float));
  /* The diagnosis names it. */
  nnkit_diagnosis *d = NULL;
  ck_ok(nnkit_trainer_diagnose(&d, tr));
  ck_assert_int_eq(nnkit_diagnosis_verdict(d, 0), NNKIT_VERDICT_LR_TOO_HIGH);
  ck_assert(strstr(nnkit_diagnosis_evidence(d, 0), "epoch 3, batch 3") != NULL);
  nnkit_diagnosis_free(d);
  /* Without keeping the good weights, the parameters stay broken. */
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  net = mlp(3, 8, NNKIT_ACT_TANH, 2);
  tr = trainer(net, &opt, 0.1, 10, 20);
  in.epoch = 0;
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_KEEP_GOOD, 0));
  ck_ok(nnkit_trainer_add_batch_callback(tr, inject_inf, &in));
  ck_fails(nnkit_trainer_fit(tr, train, NULL), NNKIT_E_DIVERGED,
           "the parameters hold the last step's values");
  ck_assert(!isfinite(nnkit_net_params(net)[np - 1]));
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  free(wl.w);

  /* A planted exploding run: regression with a learning rate far too high.
   * The loss grows geometrically; the factor test fires long before inf. */
  nnkit_dataset *ds = line_data();
  net = linear();
  tr = trainer(net, &opt, 10.0, 200, 64);
  ck_fails(nnkit_trainer_fit(tr, ds, NULL), NNKIT_E_DIVERGED,
           "more than 1000 times the first batch's");
  ck_assert(strstr(nnkit_last_error(), "try 1e+00") != NULL);
  size_t at_factor = nnkit_history_batches(nnkit_trainer_history(tr));
  ck_assert_uint_lt(at_factor, 10);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  /* Only the window test: the running mean's tenfold growth. */
  net = linear();
  tr = trainer(net, &opt, 0.7, 200, 64);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_DIVERGE_FACTOR, 0));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_DIVERGE_WINDOW, 5));
  ck_fails(nnkit_trainer_fit(tr, ds, NULL), NNKIT_E_DIVERGED, "running mean grew");
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  /* Both off: it runs until the cost overflows. */
  net = linear();
  tr = trainer(net, &opt, 10.0, 200, 64);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_DIVERGE_FACTOR, 0));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_DIVERGE_WINDOW, 0));
  ck_fails(nnkit_trainer_fit(tr, ds, NULL), NNKIT_E_DIVERGED, "cost became");
  ck_assert_uint_gt(nnkit_history_batches(nnkit_trainer_history(tr)), at_factor);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);

  /* Never on normal runs: small noisy batches to convergence, and a
   * regression whose loss falls by orders of magnitude. */
  train = blobs(400, 4, 0.6, 0.05, 8);
  net = mlp(1, 16, NNKIT_ACT_RELU, 4);
  tr = trainer(net, &opt, 0.1, 40, 4);
  ck_ok(nnkit_trainer_fit(tr, train, NULL));
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  net = linear();
  tr = trainer(net, &opt, 0.01, 300, 8);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_DIVERGE_WINDOW, 3));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}
END_TEST

/* ---- settings ------------------------------------------------------------ */

START_TEST(monitoring_settings)
{
  nnkit_net *net = mlp(1, 4, NNKIT_ACT_RELU, 2);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.1, 1, 8);
  double v;
  /* why: the keyed-settings engine's sentence ("0 or 1" for switches) */
  static const char *const integer = "must be an integer", *const onoff = "must be 0 or 1";
  struct { nnkit_train_param k; double def, good, bad; const char *why; } s[] = {
    {NNKIT_TRAIN_LAYER_STATS, 1, 0, 2, onoff},  {NNKIT_TRAIN_SANITY, 0, 2, 3, integer},
    {NNKIT_TRAIN_DIVERGE_FACTOR, 1000, 50, -1, integer},
    {NNKIT_TRAIN_DIVERGE_WINDOW, 50, 7, 0.5, integer},
    {NNKIT_TRAIN_KEEP_GOOD, 1, 0, 2, onoff},    {NNKIT_TRAIN_DIAGNOSE, 0, 1, -1, onoff},
    {NNKIT_TRAIN_VERBOSE, 0, 2, 3, integer},
  };
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
    ck_ok(nnkit_trainer_get(&v, tr, s[i].k));
    ck_assert_double_eq(v, s[i].def);
    ck_ok(nnkit_trainer_set(tr, s[i].k, s[i].good));
    ck_ok(nnkit_trainer_get(&v, tr, s[i].k));
    ck_assert_double_eq(v, s[i].good);
    ck_fails(nnkit_trainer_set(tr, s[i].k, s[i].bad), NNKIT_E_INVALID, s[i].why);
  }
  ck_fails(nnkit_trainer_set(tr, (nnkit_train_param)40, 1), NNKIT_E_INVALID,
           "has no setting 40");
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

/* ---- metrics ------------------------------------------------------------- */

START_TEST(metrics_by_hand)
{
  int32_t y[8] = {0, 0, 0, 1, 1, 2, 2, 2};
  int32_t p[8] = {0, 0, 1, 1, 2, 2, 2, 0};
  double acc;
  ck_ok(nnkit_metrics_accuracy(&acc, y, p, 8));
  ck_assert_double_eq(acc, 5.0 / 8);
  size_t m[9];
  ck_ok(nnkit_metrics_confusion(m, 9, y, p, 8, 3));
  size_t want[9] = {2, 1, 0, 0, 1, 1, 1, 0, 2};
  ck_assert_mem_eq(m, want, sizeof want);
  double pr[4], rc[4], f1[4];
  ck_ok(nnkit_metrics_per_class(pr, rc, f1, 3, m, 3));
  /* class 0: tp 2, predicted 3, true 3; class 1: tp 1 of 2 predicted, 2
   * true; class 2: tp 2 of 3 predicted, 3 true. */
  ck_assert_double_eq_tol(pr[0], 2.0 / 3, 1e-15);
  ck_assert_double_eq_tol(rc[0], 2.0 / 3, 1e-15);
  ck_assert_double_eq_tol(pr[1], 0.5, 1e-15);
  ck_assert_double_eq_tol(rc[1], 0.5, 1e-15);
  ck_assert_double_eq_tol(f1[1], 0.5, 1e-15);
  ck_assert_double_eq_tol(pr[2], 2.0 / 3, 1e-15);
  ck_assert_double_eq_tol(f1[2], 2.0 / 3, 1e-15);
  /* Undefined ratios are 0 (a class never predicted nor present). */
  size_t m4[16] = {3, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
  ck_ok(nnkit_metrics_per_class(pr, rc, NULL, 4, m4, 4));
  ck_assert_double_eq(pr[2], 0);
  ck_assert_double_eq(rc[2], 0);
  ck_assert_double_eq(rc[3], 0);
  ck_assert_double_eq_tol(pr[0], 0.75, 1e-15);
  /* Top-k with a tie in the label's favour. */
  float sc[3 * 3] = {0.1f, 0.5f, 0.4f,   /* label 2: second -> top-2 */
                     0.3f, 0.3f, 0.4f,   /* label 0: ties with 1 -> top-2 */
                     0.9f, 0.05f, 0.05f}; /* label 1: ties last -> top-2 */
  int32_t yl[3] = {2, 0, 1};
  double tk;
  ck_ok(nnkit_metrics_top_k(&tk, sc, 3, 3, yl, 1));
  ck_assert_double_eq(tk, 0);
  ck_ok(nnkit_metrics_top_k(&tk, sc, 3, 3, yl, 2));
  ck_assert_double_eq(tk, 1);
  ck_ok(nnkit_metrics_top_k(&tk, sc, 3, 3, yl, 3));
  ck_assert_double_eq(tk, 1);
  /* The table: sized by a first call, then written. */
  size_t need;
  ck_fails(nnkit_metrics_table(NULL, 0, &need, m, 3), NNKIT_E_INVALID, "needs");
  char *buf = malloc(need);
  ck_ok(nnkit_metrics_table(buf, need, &need, m, 3));
  ck_assert_uint_eq(strlen(buf) + 1, need);
  ck_assert(strstr(buf, "0        2   1   0 |       3    0.6667  0.6667  0.6667") != NULL);
  ck_assert(strstr(buf, "accuracy 0.6250 over 8 samples") != NULL);
  char small[20];
  ck_fails(nnkit_metrics_table(small, sizeof small, NULL, m, 3), NNKIT_E_INVALID, "holds 20");
  ck_assert_uint_eq(strlen(small), 19);
  free(buf);
  /* Bad input. */
  int32_t bad[2] = {0, 3};
  ck_fails(nnkit_metrics_confusion(m, 9, y, bad, 2, 3), NNKIT_E_INVALID, "sample 1");
  ck_fails(nnkit_metrics_confusion(m, 8, y, p, 8, 3), NNKIT_E_INVALID, "holds 8");
  ck_fails(nnkit_metrics_top_k(&tk, sc, 3, 3, yl, 0), NNKIT_E_INVALID, "k 0");
  ck_fails(nnkit_metrics_top_k(&tk, sc, 3, 3, bad, 1), NNKIT_E_INVALID, "label 3");
  ck_fails(nnkit_metrics_accuracy(&acc, y, p, 0), NNKIT_E_INVALID, "count");
  ck_fails(nnkit_metrics_per_class(pr, rc, f1, 2, m, 3), NNKIT_E_INVALID, "3 are needed");
}
END_TEST

START_TEST(metrics_of_a_net)
{
  nnkit_dataset *ds = blobs(300, 3, 0.8, 0, 9);
  nnkit_net *net = mlp(4, 8, NNKIT_ACT_TANH, 3);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.1, 2, 16);
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  int32_t pred[300];
  ck_ok(nnkit_net_predict(pred, net, nnkit_dataset_data(ds), 300));
  size_t m[9], m2[9];
  ck_ok(nnkit_metrics_confusion(m, 9, nnkit_dataset_labels(ds), pred, 300, 3));
  ck_ok(nnkit_net_confusion(m2, 9, net, ds));
  ck_assert_mem_eq(m, m2, sizeof m);
  double acc, acc1, tk;
  ck_ok(nnkit_net_evaluate(NULL, &acc, net, ds));
  ck_ok(nnkit_net_top_k_accuracy(&acc1, net, ds, 1));
  ck_assert_double_eq_tol(acc1, acc, 1e-12);
  ck_ok(nnkit_net_top_k_accuracy(&tk, net, ds, 3));
  ck_assert_double_eq(tk, 1);
  ck_fails(nnkit_net_confusion(m2, 8, net, ds), NNKIT_E_INVALID, "3 x 3");
  ck_fails(nnkit_net_top_k_accuracy(&tk, net, ds, 4), NNKIT_E_INVALID, "k 4");
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}
END_TEST

/* ---- per-layer statistics ------------------------------------------------- */

START_TEST(layer_stats_on_demand)
{
  /* 4 inputs -> dense 6 -> relu -> dense 3 -> tanh; biases of units 0..2
   * of the first layer at -100 (dead), big weights before the tanh. */
  size_t in = 4;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 3));
  ck_ok(nnkit_net_add_dense(net, 6));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dense(net, 3));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  float *p = nnkit_net_params(net);
  for (size_t i = 0; i < 3; i++)
    p[24 + i] = -100.0f;
  for (size_t i = 0; i < 18; i++)
    p[30 + i] *= 40.0f;
  enum { B = 16 };
  float x[B * 4];
  int32_t y[B];
  nnkit__rng r;
  nnkit__rng_init(&r, 1, 2);
  for (size_t i = 0; i < B * 4; i++)
    x[i] = (float)nnkit__rng_normal(&r);
  for (size_t i = 0; i < B; i++)
    y[i] = (int32_t)(i % 3);
  nnkit_layer_stat want[7] = {NNKIT_LSTAT_ACT_MEAN, NNKIT_LSTAT_ACT_STD,
                              NNKIT_LSTAT_SATURATED, NNKIT_LSTAT_DEAD,
                              NNKIT_LSTAT_GRAD_NORM, NNKIT_LSTAT_UPDATE_RATIO,
                              NNKIT_LSTAT_PARAM_NORM};
  double out[4 * 7];
  float before[51];
  ck_assert_uint_eq(nnkit_net_num_params(net), 51);
  memcpy(before, p, sizeof before);
  ck_ok(nnkit_net_layer_stats(out, 28, want, 7, net, x, y, NULL, B));
  ck_assert_mem_eq(before, nnkit_net_params(net), sizeof before);
  /* Recompute from a forward of each prefix of the net. */
  float y1[B * 6], y3[B * 3];
  ck_ok(nnkit_net_forward(net, x, B, y3, B * 3));
  const float *a1 = net->acts[1];
  memcpy(y1, a1, sizeof y1);
  double mean = 0, sq = 0;
  for (size_t i = 0; i < B * 6; i++)
    mean += y1[i];
  mean /= B * 6;
  for (size_t i = 0; i < B * 6; i++)
    sq += (y1[i] - mean) * (y1[i] - mean);
  ck_assert_double_eq_tol(out[1 * 7 + 0], mean, 1e-9);
  ck_assert_double_eq_tol(out[1 * 7 + 1], sqrt(sq / (B * 6)), 1e-9);
  size_t dead = 0;
  for (size_t u = 0; u < 6; u++) {
    int alive = 0;
    for (size_t s = 0; s < B; s++)
      alive |= y1[s * 6 + u] > 0;
    dead += !alive;
  }
  ck_assert_uint_ge(dead, 3);
  ck_assert_double_eq(out[1 * 7 + 3], dead / 6.0);
  size_t sat = 0;
  for (size_t i = 0; i < B * 3; i++)
    sat += fabsf(y3[i]) > 0.99f;
  ck_assert_double_eq(out[3 * 7 + 2], sat / (double)(B * 3));
  ck_assert_double_gt(out[3 * 7 + 2], 0.5);
  /* Not applicable: NaN. */
  ck_assert(isnan(out[0 * 7 + 2]) && isnan(out[0 * 7 + 3]) && isnan(out[1 * 7 + 2]));
  ck_assert(isnan(out[1 * 7 + 4]) && isnan(out[0 * 7 + 5]));
  /* Gradient and parameter norms of layer 2's slice. */
  ck_ok(nnkit_net_forward(net, x, B, NULL, 0));
  ck_ok(nnkit_net_backward(net, y, NULL, NULL));
  double g = 0, w = 0;
  for (size_t i = 30; i < 51; i++) {
    g += (double)nnkit_net_grads(net)[i] * nnkit_net_grads(net)[i];
    w += (double)p[i] * p[i];
  }
  ck_assert_double_eq_tol(out[2 * 7 + 4], sqrt(g), 1e-9 * sqrt(g) + 1e-12);
  ck_assert_double_eq_tol(out[2 * 7 + 6], sqrt(w), 1e-9 * sqrt(w));
  /* Without labels: no gradient. A subset of statistics, in any order. */
  nnkit_layer_stat two[2] = {NNKIT_LSTAT_GRAD_NORM, NNKIT_LSTAT_DEAD};
  double o2[8];
  ck_ok(nnkit_net_layer_stats(o2, 8, two, 2, net, x, NULL, NULL, B));
  ck_assert(isnan(o2[2 * 2 + 0]));
  ck_assert_double_eq(o2[1 * 2 + 1], dead / 6.0);
  /* Histograms of the last forward. */
  uint64_t h[4];
  ck_ok(nnkit_net_activation_histogram(h, 4, -1, 1, net, 3));
  uint64_t total = h[0] + h[1] + h[2] + h[3];
  ck_assert_uint_eq(total, B * 3);
  size_t neg = 0;
  for (size_t i = 0; i < B * 3; i++)
    neg += y3[i] < 0;
  ck_assert_uint_eq(h[0] + h[1], neg);
  const char *path = tmp_path("hist.csv");
  ck_ok(nnkit_net_save_histograms_csv(net, path, 4, -1, 1));
  char *text = slurp(path);
  ck_assert(strncmp(text, "layer,kind,bin_lo,bin_hi,count\n1,dense,-1,-0.5,", 47) == 0);
  ck_assert(strstr(text, "\n4,tanh,0.5,1,") != NULL);
  free(text);
  unlink(path);
  /* Errors. */
  ck_fails(nnkit_net_layer_stats(out, 27, want, 7, net, x, y, NULL, B), NNKIT_E_INVALID,
           "4 layers x 7");
  nnkit_layer_stat badst[1] = {(nnkit_layer_stat)9};
  ck_fails(nnkit_net_layer_stats(out, 28, badst, 1, net, x, y, NULL, B), NNKIT_E_INVALID,
           "unknown statistic");
  ck_fails(nnkit_net_activation_histogram(h, 4, 1, -1, net, 0), NNKIT_E_INVALID, "lo < hi");
  ck_fails(nnkit_net_activation_histogram(h, 4, -1, 1, net, 4), NNKIT_E_INVALID,
           "layer 4");
  nnkit_net *fresh = mlp(1, 2, NNKIT_ACT_RELU, 2);
  ck_fails(nnkit_net_activation_histogram(h, 4, -1, 1, fresh, 0), NNKIT_E_STATE,
           "no forward");
  nnkit_net_free(fresh);
  nnkit_net_free(net);
}
END_TEST

START_TEST(layer_stats_in_history)
{
  nnkit_dataset *train = blobs(96, 3, 0.5, 0, 10);
  nnkit_net *net = mlp(8, 10, NNKIT_ACT_TANH, 3);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.1, 2, 32);
  const nnkit_history *h = nnkit_trainer_history(tr);
  ck_assert_uint_eq(nnkit_history_num_layers(h), 0);
  /* Epoch 0's statistics are taken on its last batch, before its step:
   * the parameter norm equals the norm of the weights then. */
  ck_ok(nnkit_trainer_fit(tr, train, NULL));
  ck_assert_uint_eq(nnkit_history_num_layers(h), 3);
  nnkit_layer_stat st[3] = {NNKIT_LSTAT_UPDATE_RATIO, NNKIT_LSTAT_SATURATED,
                            NNKIT_LSTAT_GRAD_NORM};
  double o[9];
  ck_ok(nnkit_history_layer_stats(o, 9, st, 3, h, 1));
  ck_assert_double_gt(o[0], 0);
  ck_assert_double_lt(o[0], 1);
  ck_assert(isnan(o[3])); /* the tanh layer has no parameters */
  ck_assert_double_ge(o[3 + 1], 0);
  ck_assert_double_gt(o[6 + 2], 0);
  /* Off: the next epoch has none. */
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_LAYER_STATS, 0));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 1));
  ck_ok(nnkit_trainer_fit(tr, train, NULL));
  ck_fails(nnkit_history_layer_stats(o, 9, st, 3, h, 2), NNKIT_E_STATE, "no layer statistics");
  ck_fails(nnkit_history_layer_stats(o, 8, st, 3, h, 1), NNKIT_E_INVALID, "3 layers x 3");
  ck_fails(nnkit_history_layer_stats(o, 9, st, 3, h, 3), NNKIT_E_INVALID, "not recorded");
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
}
END_TEST

/* ---- sanity checks ------------------------------------------------------- */

START_TEST(sanity_checks)
{
  nnkit_dataset *train = blobs(200, 4, 0.5, 0, 11);
  nnkit_net *net = mlp(2, 32, NNKIT_ACT_RELU, 4);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.3, 3, 16);
  size_t np = nnkit_net_num_params(net);
  float *before = malloc(np * sizeof(float));
  memcpy(before, nnkit_net_params(net), np * sizeof(float));
  double v;
  ck_ok(nnkit_trainer_sanity_value(&v, tr, NNKIT_SANITY_PASSED));
  ck_assert(isnan(v));
  ck_ok(nnkit_trainer_sanity_check(tr, train));
  ck_assert_mem_eq(before, nnkit_net_params(net), np * sizeof(float));
  ck_ok(nnkit_trainer_sanity_value(&v, tr, NNKIT_SANITY_EXPECTED_LOSS));
  ck_assert_double_eq_tol(v, log(4.0), 1e-12);
  double l0, ratio;
  ck_ok(nnkit_net_evaluate(&l0, NULL, net, train));
  ck_ok(nnkit_trainer_sanity_value(&v, tr, NNKIT_SANITY_INITIAL_LOSS));
  ck_assert_double_eq_tol(v, l0, 1e-6); /* all 200 samples (< 1024) */
  ck_ok(nnkit_trainer_sanity_value(&ratio, tr, NNKIT_SANITY_LOSS_RATIO));
  ck_assert_double_eq_tol(ratio, l0 / log(4.0), 1e-6);
  ck_ok(nnkit_trainer_sanity_value(&v, tr, NNKIT_SANITY_OVERFIT_ACC));
  ck_assert_double_eq(v, 1);
  ck_ok(nnkit_trainer_sanity_value(&v, tr, NNKIT_SANITY_PASSED));
  ck_assert_double_eq(v, 1);
  ck_assert(strstr(nnkit_trainer_sanity_report(tr), "sanity: initial loss") != NULL);
  ck_assert(strstr(nnkit_trainer_sanity_report(tr), "overfitting 20 samples") != NULL);
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 0);
  ck_assert_uint_eq(nnkit_optimizer_steps(opt), 0);
  ck_fails(nnkit_trainer_sanity_value(&v, tr, (nnkit_sanity_value)0), NNKIT_E_INVALID,
           "unknown value");

  /* A learning rate of 0 cannot overfit: fails, weights untouched. With
   * SANITY 1 the fit goes on and logs; with 2 it refuses. */
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0));
  ck_fails(nnkit_trainer_sanity_check(tr, train), NNKIT_E_STATE, "cannot overfit 20");
  ck_assert_mem_eq(before, nnkit_net_params(net), np * sizeof(float));
  tu_lines log = {0};
  nnkit_trainer_set_logger(tr, tu_capture, &log);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 1));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SANITY, 2));
  ck_fails(nnkit_trainer_fit(tr, train, NULL), NNKIT_E_STATE, "sanity check failed");
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 0);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SANITY, 1));
  ck_ok(nnkit_trainer_fit(tr, train, NULL));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 3);
  ck_assert(tu_any_line(&log, "FAILED"));
  ck_assert(tu_any_line(&log, "Finished epoch 3 / 3"));

  /* Huge initial logits: the loss is far above ln(C). */
  nnkit_net *big = mlp(2, 32, NNKIT_ACT_RELU, 4);
  nnkit_init *ini = NULL;
  ck_ok(nnkit_init_create(&ini, NNKIT_INIT_NORMAL, 0, 30));
  ck_ok(nnkit_net_set_init(big, 2, ini, NULL));
  nnkit_init_free(ini);
  nnkit_trainer *tb = NULL;
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.3));
  ck_ok(nnkit_trainer_create(&tb, big, opt));
  ck_fails(nnkit_trainer_sanity_check(tb, train), NNKIT_E_STATE, "times ln(4)");
  ck_ok(nnkit_trainer_sanity_value(&v, tb, NNKIT_SANITY_LOSS_RATIO));
  ck_assert_double_gt(v, 3);
  ck_fails(nnkit_trainer_sanity_check(tb, NULL), NNKIT_E_INVALID, "training set");
  nnkit_trainer_free(tb);
  nnkit_net_free(big);
  free(before);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
}
END_TEST

/* ---- logging ------------------------------------------------------------- */

START_TEST(progress_lines_and_diagnosis_log)
{
  nnkit_dataset *train = blobs(200, 2, 0.5, 0, 12);
  nnkit_net *net = mlp(2, 8, NNKIT_ACT_RELU, 2);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.1, 3, 10);
  tu_lines log = {0};
  nnkit_trainer_set_logger(tr, tu_capture, &log);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 2));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_DIAGNOSE, 1));
  ck_ok(nnkit_trainer_fit(tr, train, NULL));
  ck_assert(tu_any_line(&log, "epoch 1 / 3: 20 / 200 samples, "));
  ck_assert(tu_any_line(&log, "samples/s, ETA "));
  ck_assert(tu_any_line(&log, "epoch 3 / 3: 200 / 200 samples"));
  ck_assert(tu_any_line(&log, "Finished epoch 3 / 3: cost"));
  ck_assert(tu_any_line(&log, "next step:"));
  /* Verbose 1 with a logger: only the epoch lines. */
  log.n = 0;
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 1));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_DIAGNOSE, 0));
  ck_ok(nnkit_trainer_fit(tr, train, NULL));
  ck_assert_int_eq(log.n, 3);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
}
END_TEST

/* ---- diagnosis on synthetic curves --------------------------------------- */

static nnkit_diagnosis *diag(const double *tl, const double *vl, const double *ta,
                             const double *va, size_t e, const double *bl, size_t b)
{
  nnkit_diagnosis *d = NULL;
  ck_ok(nnkit_diagnose_curves(&d, tl, vl, ta, va, e, bl, b, 0.01, 10));
  ck_assert_uint_ge(nnkit_diagnosis_count(d), 1);
  ck_assert(strlen(nnkit_diagnosis_report(d)) > 0);
  return d;
}

#define EXPECT_FIRST(make, v, needle)                                                  \
  do {                                                                                 \
    nnkit_diagnosis *d_ = (make);                                                      \
    ck_assert_msg(nnkit_diagnosis_verdict(d_, 0) == (v), "got %s:\n%s",                \
                  nnkit_verdict_name(nnkit_diagnosis_verdict(d_, 0)),                  \
                  nnkit_diagnosis_report(d_));                                         \
    ck_assert_msg(strstr(nnkit_diagnosis_evidence(d_, 0), needle) != NULL,             \
                  "evidence '%s' lacks '%s'", nnkit_diagnosis_evidence(d_, 0),         \
                  needle);                                                             \
    nnkit_diagnosis_free(d_);                                                          \
  } while (0)

START_TEST(diagnosis_of_synthetic_curves)
{
  /* Exploded to inf. */
  double t1[3] = {2.3, 1.9, INFINITY};
  EXPECT_FIRST(diag(t1, NULL, NULL, NULL, 3, NULL, 0), NNKIT_VERDICT_LR_TOO_HIGH,
               "became inf at epoch 3");
  /* Finite batch spikes, then stuck at chance. */
  double b2[40], t2[4] = {5.1, 2.31, 2.303, 2.302}, a2[4] = {0.1, 0.1, 0.1, 0.1};
  for (int i = 0; i < 40; i++)
    b2[i] = i == 3 ? 48.0 : 2.3;
  nnkit_diagnosis *d = diag(t2, NULL, a2, NULL, 4, b2, 40);
  ck_assert(strstr(nnkit_diagnosis_evidence(d, 0), "chance level") != NULL);
  EXPECT_FIRST(d, NNKIT_VERDICT_LR_TOO_HIGH, "spiked to 48 at step 4");
  /* Oscillating. */
  double t3[7] = {2.3, 1.5, 1.9, 1.4, 1.8, 1.3, 1.7};
  EXPECT_FIRST(diag(t3, NULL, NULL, NULL, 7, NULL, 0), NNKIT_VERDICT_OSCILLATING,
               "went up in 3 of 6 epochs");
  /* Too low. */
  double t4[4] = {2.30, 2.29, 2.28, 2.27}, a4[4] = {0.11, 0.12, 0.12, 0.13};
  d = diag(t4, NULL, a4, NULL, 4, NULL, 0);
  ck_assert(strstr(nnkit_diagnosis_advice(d, 0), "raise the learning rate about 10x "
                                                 "(try 1e-01 instead of 1e-02)") != NULL);
  EXPECT_FIRST(d, NNKIT_VERDICT_LR_TOO_LOW, "fell 1.3% in 4 epochs");
  /* Overfitting. */
  double t5[6] = {1.0, 0.5, 0.3, 0.2, 0.1, 0.05}, v5[6] = {1.0, 0.6, 0.5, 0.55, 0.65, 0.8};
  d = diag(t5, v5, NULL, NULL, 6, NULL, 0);
  ck_assert(strstr(nnkit_diagnosis_advice(d, 0), "stop near epoch 3") != NULL);
  EXPECT_FIRST(d, NNKIT_VERDICT_OVERFITTING, "from its minimum 0.5 at epoch 3");
  /* Overfitting by the accuracy gap alone. */
  double t5b[4] = {1.0, 0.5, 0.3, 0.2}, v5b[4] = {1.0, 0.7, 0.6, 0.55};
  double ta5[4] = {0.6, 0.8, 0.95, 0.99}, va5[4] = {0.6, 0.75, 0.8, 0.82};
  EXPECT_FIRST(diag(t5b, v5b, ta5, va5, 4, NULL, 0), NNKIT_VERDICT_OVERFITTING,
               "the gap grew from 0.0% to 17.0%");
  /* Underfitting. */
  double t6[6] = {2.3, 1.6, 1.45, 1.445, 1.444, 1.443}, v6[6] = {2.2, 1.6, 1.5, 1.49, 1.49, 1.49};
  double ta6[6] = {0.3, 0.45, 0.5, 0.5, 0.5, 0.5}, va6[6] = {0.3, 0.44, 0.49, 0.49, 0.49, 0.49};
  EXPECT_FIRST(diag(t6, v6, ta6, va6, 6, NULL, 0), NNKIT_VERDICT_UNDERFITTING,
               "levelled off at 1.443");
  /* Healthy. */
  double t7[5] = {2.3, 1.0, 0.5, 0.3, 0.2}, v7[5] = {1.1, 0.6, 0.4, 0.3, 0.25};
  d = diag(t7, v7, NULL, NULL, 5, NULL, 0);
  ck_assert_uint_eq(nnkit_diagnosis_count(d), 1);
  EXPECT_FIRST(d, NNKIT_VERDICT_HEALTHY, "fell from 2.3 to 0.2 (91%)");
  /* Noisy batches: epochs flat, batches scattering. */
  double t8[3] = {1.3, 1.0, 0.985}, b8[60];
  for (int i = 0; i < 60; i++)
    b8[i] = i < 20 ? 1.3 : (i < 40 ? 1.0 : (i % 2 ? 0.3 : 1.67));
  EXPECT_FIRST(diag(t8, NULL, NULL, NULL, 3, b8, 60), NNKIT_VERDICT_NOISY_BATCHES,
               "scatter by 98% of their mean 0.985");
  /* Too short. */
  double t9[1] = {1.0};
  EXPECT_FIRST(diag(t9, NULL, NULL, NULL, 1, NULL, 0), NNKIT_VERDICT_TOO_SHORT,
               "only 1 epoch");
  /* Getters out of range, names, bad arguments. */
  d = diag(t7, v7, NULL, NULL, 5, NULL, 0);
  ck_assert_int_eq(nnkit_diagnosis_verdict(d, 5), 0);
  ck_assert_str_eq(nnkit_diagnosis_evidence(d, 5), "");
  ck_assert_str_eq(nnkit_diagnosis_advice(d, 5), "");
  ck_assert_int_eq(nnkit_diagnosis_has(d, NNKIT_VERDICT_HEALTHY), 1);
  ck_assert_int_eq(nnkit_diagnosis_has(d, NNKIT_VERDICT_OVERFITTING), 0);
  ck_assert(strncmp(nnkit_diagnosis_report(d), "healthy: the train loss", 23) == 0);
  nnkit_diagnosis_free(d);
  nnkit_diagnosis_free(NULL);
  ck_assert_str_eq(nnkit_verdict_name(NNKIT_VERDICT_VANISHING), "vanishing activations");
  ck_assert_str_eq(nnkit_verdict_name((nnkit_verdict)99), "unknown verdict");
  ck_fails(nnkit_diagnose_curves(&d, NULL, NULL, NULL, NULL, 3, NULL, 0, 0, 0),
           NNKIT_E_INVALID, "train_loss");
  ck_assert_ptr_null(d);
  ck_fails(nnkit_diagnose_curves(&d, t7, NULL, NULL, NULL, 5, NULL, 4, 0, 0),
           NNKIT_E_INVALID, "batch_loss");
}
END_TEST

/* ---- diagnosis of real nets from their layer statistics ------------------- */

/* n tanh (or relu) layers of `width` on 8-dimensional inputs; weights
 * N(0, std) or the default when std is 0. */
static nnkit_net *deep(size_t layers, size_t width, nnkit_activation act, double std,
                       double bias)
{
  size_t in = 8;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 4));
  nnkit_init *w = NULL, *b = NULL;
  if (std > 0)
    ck_ok(nnkit_init_create(&w, NNKIT_INIT_NORMAL, 0, std));
  ck_ok(nnkit_init_create(&b, NNKIT_INIT_CONSTANT, bias, 0));
  for (size_t i = 0; i < layers; i++) {
    ck_ok(nnkit_net_add_dense(net, width));
    ck_ok(nnkit_net_set_init(net, 2 * i, w, b));
    ck_ok(nnkit_net_add_activation(net, act));
  }
  ck_ok(nnkit_net_add_dense(net, 2));
  nnkit_init_free(w);
  nnkit_init_free(b);
  return net;
}

static nnkit_dataset *wide_blobs(size_t n, uint64_t seed)
{
  float *x = malloc(n * 8 * sizeof *x);
  int32_t *y = malloc(n * sizeof *y);
  nnkit__rng r;
  nnkit__rng_init(&r, seed, 0);
  for (size_t i = 0; i < n; i++) {
    y[i] = (int32_t)(i % 2);
    for (size_t j = 0; j < 8; j++)
      x[i * 8 + j] = (float)(nnkit__rng_normal(&r) + (y[i] ? 0.5 : -0.5));
  }
  size_t shape[1] = {8};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, n, shape, 1, 2));
  free(x);
  free(y);
  return ds;
}

static nnkit_diagnosis *fit_and_diagnose(nnkit_net *net, const nnkit_dataset *ds)
{
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 1e-3, 3, 32);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_DIVERGE_FACTOR, 0));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  nnkit_diagnosis *d = NULL;
  ck_ok(nnkit_trainer_diagnose(&d, tr));
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  return d;
}

START_TEST(diagnosis_of_layer_statistics)
{
  nnkit_dataset *ds = wide_blobs(128, 13);
  /* The lecture's collapse: small weights through many tanh layers. */
  nnkit_net *net = deep(8, 64, NNKIT_ACT_TANH, 0.01, 0);
  nnkit_diagnosis *d = fit_and_diagnose(net, ds);
  ck_assert_msg(nnkit_diagnosis_has(d, NNKIT_VERDICT_VANISHING), "%s",
                nnkit_diagnosis_report(d));
  ck_assert(strstr(nnkit_diagnosis_report(d), "activation spread falls") != NULL);
  nnkit_diagnosis_free(d);
  nnkit_net_free(net);
  /* Big weights: saturation. */
  net = deep(3, 64, NNKIT_ACT_TANH, 1.0, 0);
  d = fit_and_diagnose(net, ds);
  ck_assert_msg(nnkit_diagnosis_has(d, NNKIT_VERDICT_SATURATING), "%s",
                nnkit_diagnosis_report(d));
  ck_assert(!nnkit_diagnosis_has(d, NNKIT_VERDICT_VANISHING));
  nnkit_diagnosis_free(d);
  nnkit_net_free(net);
  /* Negative biases: dead ReLUs. */
  net = deep(2, 32, NNKIT_ACT_RELU, 0, -20);
  d = fit_and_diagnose(net, ds);
  ck_assert_msg(nnkit_diagnosis_has(d, NNKIT_VERDICT_DEAD_RELUS), "%s",
                nnkit_diagnosis_report(d));
  ck_assert(strstr(nnkit_diagnosis_report(d), "layer 2 (relu): 100% of units never "
                                              "fired") != NULL);
  nnkit_diagnosis_free(d);
  nnkit_net_free(net);
  /* Xavier/He defaults: none of these. */
  net = deep(3, 64, NNKIT_ACT_TANH, 0, 0);
  d = fit_and_diagnose(net, ds);
  ck_assert(!nnkit_diagnosis_has(d, NNKIT_VERDICT_VANISHING) &&
            !nnkit_diagnosis_has(d, NNKIT_VERDICT_SATURATING));
  nnkit_diagnosis_free(d);
  nnkit_net_free(net);
  /* Nothing recorded yet. */
  net = deep(1, 4, NNKIT_ACT_RELU, 0, 0);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.1, 1, 8);
  ck_fails(nnkit_trainer_diagnose(&d, tr), NNKIT_E_STATE, "nothing recorded");
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}
END_TEST

/* ---- learning-rate finder ------------------------------------------------- */

START_TEST(lr_finder_on_a_toy_problem)
{
  nnkit_dataset *train = blobs(800, 4, 0.5, 0, 14), *val = blobs(400, 4, 0.5, 0, 15);
  nnkit_net *net = mlp(6, 32, NNKIT_ACT_RELU, 4);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.01, 3, 16);
  size_t np = nnkit_net_num_params(net);
  float *before = malloc(np * sizeof(float));
  memcpy(before, nnkit_net_params(net), np * sizeof(float));
  double lrs[100], losses[100], sug = 0;
  size_t n = 0;
  ck_ok(nnkit_trainer_find_lr(&sug, lrs, losses, 100, &n, tr, train, 0, 0, 0));
  /* The net is back, bit for bit; the trainer and optimizer untouched. */
  ck_assert_mem_eq(before, nnkit_net_params(net), np * sizeof(float));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 0);
  ck_assert_uint_eq(nnkit_history_batches(nnkit_trainer_history(tr)), 0);
  ck_assert_uint_eq(nnkit_optimizer_steps(opt), 0);
  double lr;
  ck_ok(nnkit_optimizer_get(&lr, opt, NNKIT_OPT_LR));
  ck_assert_double_eq(lr, 0.01);
  /* The curve: geometric rates from 1e-6, ended by the explosion. */
  ck_assert_uint_gt(n, 50);
  ck_assert_uint_le(n, 100);
  ck_assert_double_eq_tol(lrs[0], 1e-6, 1e-18);
  for (size_t i = 1; i < n; i++)
    ck_assert_double_eq_tol(lrs[i] / lrs[i - 1], pow(1e7, 1.0 / 99), 1e-9);
  ck_assert_double_lt(losses[n / 2], losses[0] * 1.05);
  /* The known good range of SGD on this problem: 0.01 to 1 (below it does
   * not converge in a few epochs, above it explodes). */
  ck_assert_msg(sug >= 0.01 && sug <= 1.0, "suggested %g", sug);
  /* And training with the suggestion works. */
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, sug));
  ck_ok(nnkit_trainer_fit(tr, train, val));
  double acc;
  ck_ok(nnkit_net_evaluate(NULL, &acc, net, val));
  ck_assert_double_ge(acc, 0.97);
  /* A range where the loss cannot fall (full batches, no noise): no
   * suggestion. */
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 800));
  ck_fails(nnkit_trainer_find_lr(&sug, NULL, NULL, 0, &n, tr, train, 1e-9, 1e-8, 20),
           NNKIT_E_STATE, "never fell");
  ck_fails(nnkit_trainer_find_lr(&sug, lrs, NULL, 10, &n, tr, train, 0, 0, 50),
           NNKIT_E_INVALID, "hold 10");
  ck_fails(nnkit_trainer_find_lr(&sug, NULL, NULL, 0, &n, tr, train, 1, 0.1, 50),
           NNKIT_E_INVALID, "lr_min < lr_max");
  ck_fails(nnkit_trainer_find_lr(&sug, NULL, NULL, 0, &n, tr, train, 0, 0, 3),
           NNKIT_E_INVALID, "outside [8, 100000]");
  free(before);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
}
END_TEST

/* ---- no allocation per step ----------------------------------------------- */

static int nothing(const nnkit_trainer *tr, size_t epoch, size_t batch, double loss,
                   void *user)
{
  (void)tr;
  (void)epoch;
  (void)batch;
  (void)loss;
  (void)user;
  return 0;
}

START_TEST(monitoring_allocates_nothing_per_step)
{
  nnkit_dataset *train = blobs(300, 4, 0.5, 0, 1), *val = blobs(100, 4, 0.5, 0, 2);
  nnkit_net *net = mlp(3, 16, NNKIT_ACT_RELU, 4);
  nnkit_optimizer *opt;
  nnkit_trainer *tr = trainer(net, &opt, 0.05, 1, 32);
  ck_ok(nnkit_trainer_add_batch_callback(tr, nothing, NULL));
  ck_ok(nnkit_trainer_set_early_stopping(tr, NNKIT_METRIC_VAL_LOSS, 100, 0));
  tu_lines log = {0};
  nnkit_trainer_set_logger(tr, tu_capture, &log);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 2));
  ck_ok(nnkit_trainer_fit(tr, train, val));
  uint64_t before = nnkit__alloc_count();
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 3));
  ck_ok(nnkit_trainer_fit(tr, train, val)); /* stats, snapshots, history, log */
  ck_assert_uint_eq(nnkit__alloc_count(), before);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
}
END_TEST

/* ---- the fit loop over a pipeline ----------------------------------------- */

static nnkit_pipeline *pipe_over(const nnkit_dataset *ds, size_t bs, int prefetch)
{
  nnkit_pipeline *p = NULL;
  ck_ok(nnkit_pipeline_create(&p, ds));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, (double)bs));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_SHUFFLE, 0));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_PREFETCH, prefetch));
  return p;
}

START_TEST(fit_pipeline_equals_fit)
{
  nnkit_dataset *train = blobs(200, 3, 0.6, 0, 16), *val = blobs(70, 3, 0.6, 0, 17);
  nnkit_net *a = mlp(9, 12, NNKIT_ACT_RELU, 3), *b = mlp(9, 12, NNKIT_ACT_RELU, 3);
  nnkit_optimizer *oa, *ob;
  nnkit_trainer *ta = trainer(a, &oa, 0.1, 3, 32), *tb = trainer(b, &ob, 0.1, 3, 32);
  ck_ok(nnkit_trainer_set(ta, NNKIT_TRAIN_SHUFFLE, 0));
  ck_ok(nnkit_trainer_set(tb, NNKIT_TRAIN_SANITY, 2)); /* skipped for pipelines */
  nnkit_pipeline *pt = pipe_over(train, 32, 2), *pv = pipe_over(val, 16, 0);
  ck_ok(nnkit_trainer_fit(ta, train, val));
  ck_ok(nnkit_trainer_fit_pipeline(tb, pt, pv));
  /* The same batches in the same order: the same weights, bit for bit. */
  size_t np = nnkit_net_num_params(a);
  ck_assert_mem_eq(nnkit_net_params(a), nnkit_net_params(b), np * sizeof(float));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tb), 3);
  ck_assert_uint_eq(nnkit_history_batches(nnkit_trainer_history(tb)), 3 * 7);
  for (size_t e = 0; e < 3; e++) {
    double x, y;
    ck_ok(nnkit_trainer_metric(&x, ta, e, NNKIT_METRIC_TRAIN_LOSS));
    ck_ok(nnkit_trainer_metric(&y, tb, e, NNKIT_METRIC_TRAIN_LOSS));
    ck_assert(x == y);
    ck_ok(nnkit_trainer_metric(&x, ta, e, NNKIT_METRIC_VAL_LOSS));
    ck_ok(nnkit_trainer_metric(&y, tb, e, NNKIT_METRIC_VAL_LOSS));
    /* validation in chunks of 256 against batches of 16: products of
     * other shapes, whose kernels are chosen apart (lib/model/choose.c) */
    ck_assert_double_eq_tol(x, y, 1e-6);
    ck_ok(nnkit_trainer_metric(&x, ta, e, NNKIT_METRIC_VAL_ACC));
    ck_ok(nnkit_trainer_metric(&y, tb, e, NNKIT_METRIC_VAL_ACC));
    ck_assert_double_eq(x, y);
  }
  /* Layer statistics are sampled on the pipeline's last batch too. */
  nnkit_layer_stat g = NNKIT_LSTAT_GRAD_NORM;
  double ga[3], gb[3];
  ck_ok(nnkit_history_layer_stats(ga, 3, &g, 1, nnkit_trainer_history(ta), 2));
  ck_ok(nnkit_history_layer_stats(gb, 3, &g, 1, nnkit_trainer_history(tb), 2));
  ck_assert(ga[0] == gb[0] && ga[2] == gb[2]);
  /* Later epochs allocate nothing either. */
  uint64_t before = nnkit__alloc_count();
  ck_ok(nnkit_trainer_fit_pipeline(tb, pt, pv));
  ck_assert_uint_eq(nnkit__alloc_count(), before);
  ck_fails(nnkit_trainer_fit_pipeline(tb, pt, pt), NNKIT_E_INVALID, "must not be");
  ck_fails(nnkit_trainer_fit_pipeline(tb, NULL, pv), NNKIT_E_INVALID, "pipeline");
  nnkit_dataset *wide = NULL;
  float xw[12] = {0};
  int32_t yw[4] = {0, 1, 2, 0};
  size_t s3[1] = {3};
  ck_ok(nnkit_dataset_from_buffers(&wide, xw, yw, 4, s3, 1, 3));
  nnkit_pipeline *pw = pipe_over(wide, 2, 0);
  ck_fails(nnkit_trainer_fit_pipeline(tb, pw, NULL), NNKIT_E_SHAPE, "takes 2");
  ck_fails(nnkit_trainer_fit_pipeline(tb, pt, pw), NNKIT_E_SHAPE, "validation");
  nnkit_pipeline_free(pw);
  nnkit_dataset_free(wide);
  nnkit_pipeline_free(pt);
  nnkit_pipeline_free(pv);
  nnkit_trainer_free(ta);
  nnkit_trainer_free(tb);
  nnkit_optimizer_free(oa);
  nnkit_optimizer_free(ob);
  nnkit_net_free(a);
  nnkit_net_free(b);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
}
END_TEST

static Suite *monitor_suite(void)
{
  Suite *s = suite_create("monitor");
  TCase *tc = tcase_create("monitor");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, history_equals_recomputation);
  tcase_add_test(tc, exports_parse_back);
  tcase_add_test(tc, callbacks_stop_and_abort);
  tcase_add_test(tc, early_stopping_restores_best_epoch);
  tcase_add_test(tc, divergence_detector);
  tcase_add_test(tc, divergence_restores_optimizer_state);
  tcase_add_test(tc, monitoring_settings);
  tcase_add_test(tc, metrics_by_hand);
  tcase_add_test(tc, metrics_of_a_net);
  tcase_add_test(tc, layer_stats_on_demand);
  tcase_add_test(tc, layer_stats_in_history);
  tcase_add_test(tc, sanity_checks);
  tcase_add_test(tc, progress_lines_and_diagnosis_log);
  tcase_add_test(tc, diagnosis_of_synthetic_curves);
  tcase_add_test(tc, diagnosis_of_layer_statistics);
  tcase_add_test(tc, lr_finder_on_a_toy_problem);
  tcase_add_test(tc, monitoring_allocates_nothing_per_step);
  tcase_add_test(tc, fit_pipeline_equals_fit);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nnkit_test_run(monitor_suite()); }
