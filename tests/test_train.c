/* The fit loop: settings, convergence, the per-epoch record against
 * independent recomputation, the log line, reproducibility, divergence,
 * shape errors, no allocation in the steady state. */
#include "testutil.h"

/* Two Gaussian blobs per class on a circle: separable, 4 classes. */
static nnkit_dataset *blobs(size_t n, uint64_t seed)
{
  return tu_blobs4(n, 0.3, seed);
}

static nnkit_net *mlp(uint64_t seed)
{
  size_t in = 2;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, seed));
  ck_ok(nnkit_net_add_dense(net, 16));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(net, 4));
  return net;
}


START_TEST(settings_and_bounds)
{
  nnkit_net *net = mlp(1);
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = (nnkit_trainer *)1;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_fails(nnkit_trainer_create(&tr, NULL, opt), NNKIT_E_INVALID, "net");
  ck_assert_ptr_null(tr);
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  double v;
  ck_ok(nnkit_trainer_get(&v, tr, NNKIT_TRAIN_EPOCHS));
  ck_assert_double_eq(v, 10);
  ck_ok(nnkit_trainer_get(&v, tr, NNKIT_TRAIN_BATCH_SIZE));
  ck_assert_double_eq(v, 64);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 16));
  ck_ok(nnkit_trainer_get(&v, tr, NNKIT_TRAIN_BATCH_SIZE));
  ck_assert_double_eq(v, 16);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, 77));
  ck_ok(nnkit_trainer_get(&v, tr, NNKIT_TRAIN_SEED));
  ck_assert_double_eq(v, 77);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SHUFFLE, 0));
  ck_ok(nnkit_trainer_get(&v, tr, NNKIT_TRAIN_SHUFFLE));
  ck_assert_double_eq(v, 0);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 1));
  ck_ok(nnkit_trainer_get(&v, tr, NNKIT_TRAIN_VERBOSE));
  ck_assert_double_eq(v, 1);
  ck_fails(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 0), NNKIT_E_INVALID, "[1, 1e+06]");
  ck_fails(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 2.5), NNKIT_E_INVALID,
           "integer");
  /* The keyed-settings engine's sentences, as for every keyed object. */
  ck_fails(nnkit_trainer_set(tr, (nnkit_train_param)40, 1), NNKIT_E_INVALID,
           "trainer has no setting 40; use one of its NNKIT_TRAIN_* keys");
  ck_fails(nnkit_trainer_get(&v, tr, (nnkit_train_param)40), NNKIT_E_INVALID,
           "trainer has no setting 40");
  ck_fails(nnkit_trainer_set(tr, NNKIT_TRAIN_SHUFFLE, 2), NNKIT_E_INVALID,
           "trainer shuffle 2 must be 0 or 1");
  ck_ok(nnkit_trainer_get(&v, tr, NNKIT_TRAIN_SHUFFLE));
  ck_assert_double_eq(v, 0); /* kept on failure */
  /* Bounds of every key from the one table. */
  struct { nnkit_train_param k; double lo, hi; } b[] = {
    {NNKIT_TRAIN_EPOCHS, 1, 1e6},         {NNKIT_TRAIN_BATCH_SIZE, 1, 65536},
    {NNKIT_TRAIN_SHUFFLE, 0, 1},          {NNKIT_TRAIN_SEED, 0, 9007199254740992.0},
    {NNKIT_TRAIN_VERBOSE, 0, 2},          {NNKIT_TRAIN_LAYER_STATS, 0, 1},
    {NNKIT_TRAIN_SANITY, 0, 2},           {NNKIT_TRAIN_DIVERGE_FACTOR, 0, 1e15},
    {NNKIT_TRAIN_DIVERGE_WINDOW, 0, 1e6}, {NNKIT_TRAIN_KEEP_GOOD, 0, 1},
    {NNKIT_TRAIN_DIAGNOSE, 0, 1},
  };
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
    double lo = -1, hi = -1;
    int flags = -1;
    ck_ok(nnkit_trainer_bounds(&lo, &hi, &flags, b[i].k));
    ck_assert_double_eq(lo, b[i].lo);
    ck_assert_double_eq(hi, b[i].hi);
    ck_assert_int_eq(flags, NNKIT_BOUND_INTEGER);
    /* the ends are accepted, a step beyond them is not */
    ck_ok(nnkit_trainer_set(tr, b[i].k, lo));
    ck_ok(nnkit_trainer_set(tr, b[i].k, hi));
    ck_fails(nnkit_trainer_set(tr, b[i].k, lo - 1), NNKIT_E_INVALID, "trainer");
    ck_fails(nnkit_trainer_set(tr, b[i].k, 2 * hi + 1), NNKIT_E_INVALID, "trainer");
  }
  ck_ok(nnkit_trainer_bounds(NULL, NULL, NULL, NNKIT_TRAIN_EPOCHS));
  ck_fails(nnkit_trainer_bounds(NULL, NULL, NULL, (nnkit_train_param)40), NNKIT_E_INVALID,
           "trainer has no setting 40");
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 0);
  ck_fails(nnkit_trainer_metric(&v, tr, 0, NNKIT_METRIC_TRAIN_LOSS), NNKIT_E_INVALID,
           "not recorded");
  nnkit_trainer_free(tr);
  nnkit_trainer_free(NULL);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

START_TEST(fit_learns_and_records)
{
  nnkit_dataset *train = blobs(400, 1), *val = blobs(200, 2);
  nnkit_net *net = mlp(3);
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.1));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 4));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 400)); /* full batch */
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SHUFFLE, 0));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 1));
  tu_lines cap = {0};
  nnkit_trainer_set_logger(tr, tu_capture, &cap);
  double loss0, acc0;
  ck_ok(nnkit_net_evaluate(&loss0, &acc0, net, train));
  ck_ok(nnkit_trainer_fit(tr, train, val));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 4);
  /* Full batch, no shuffle: epoch 1's cost is the loss of the initial
   * weights on the whole set, recomputed independently above. */
  double v, vl, va;
  ck_ok(nnkit_trainer_metric(&v, tr, 0, NNKIT_METRIC_TRAIN_LOSS));
  ck_assert_double_eq_tol(v, loss0, 1e-6);
  ck_ok(nnkit_trainer_metric(&v, tr, 0, NNKIT_METRIC_TRAIN_ACC));
  ck_assert_double_eq_tol(v, acc0, 1e-12);
  /* The last epoch's validation figures equal an evaluation now. */
  ck_ok(nnkit_net_evaluate(&vl, &va, net, val));
  ck_ok(nnkit_trainer_metric(&v, tr, 3, NNKIT_METRIC_VAL_LOSS));
  ck_assert_double_eq_tol(v, vl, 1e-12);
  ck_ok(nnkit_trainer_metric(&v, tr, 3, NNKIT_METRIC_VAL_ACC));
  ck_assert_double_eq_tol(v, va, 1e-12);
  ck_ok(nnkit_trainer_metric(&v, tr, 3, NNKIT_METRIC_LR));
  ck_assert_double_eq(v, 0.1);
  ck_ok(nnkit_trainer_metric(&v, tr, 3, NNKIT_METRIC_SECONDS));
  ck_assert(v >= 0 && v < 60);
  ck_fails(nnkit_trainer_metric(&v, tr, 3, (nnkit_metric)99), NNKIT_E_INVALID,
           "unknown metric");
  /* The lecture's line, once per epoch. */
  ck_assert_int_eq(cap.n, 4);
  unsigned e, t;
  double cost, tra, vala, lr;
  ck_assert_int_eq(sscanf(cap.l[0],
                          "Finished epoch %u / %u: cost %lf, train: %lf, val %lf, lr %lf",
                          &e, &t, &cost, &tra, &vala, &lr), 6);
  ck_assert_uint_eq(e, 1);
  ck_assert_uint_eq(t, 4);
  ck_assert_double_eq_tol(cost, loss0, 1e-6);
  ck_assert(strstr(cap.l[3], "lr 1.000000e-01") != NULL);
  /* Keep training with small batches: it learns the blobs. */
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 16));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SHUFFLE, 1));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 0));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 10));
  ck_ok(nnkit_trainer_fit(tr, train, val));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 14);
  ck_ok(nnkit_net_evaluate(&vl, &va, net, val));
  ck_assert_double_ge(va, 0.97);
  ck_assert_double_lt(vl, loss0 / 4);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
}
END_TEST

static void train_one_epoch(nnkit_net *net, const nnkit_dataset *ds, uint64_t seed)
{
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.05));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 1));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 8));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, (double)seed));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
}

START_TEST(same_seed_same_weights)
{
  nnkit_dataset *ds = blobs(200, 4);
  nnkit_net *a = mlp(9), *b = mlp(9), *c = mlp(9);
  train_one_epoch(a, ds, 5);
  train_one_epoch(b, ds, 5);
  train_one_epoch(c, ds, 6); /* another data order */
  size_t np = nnkit_net_num_params(a);
  ck_assert_mem_eq(nnkit_net_params(a), nnkit_net_params(b), np * sizeof(float));
  ck_assert(memcmp(nnkit_net_params(a), nnkit_net_params(c), np * sizeof(float)) != 0);
  nnkit_net_free(a);
  nnkit_net_free(b);
  nnkit_net_free(c);
  nnkit_dataset_free(ds);
}
END_TEST

/* Nets for the fit-versus-loop check: the tanh MLP; a ReLU MLP with batch
 * norm (ReLUs the trainer runs in place over dense and batch-norm
 * outputs); a CNN on 1x8x8 images (in place over conv and pooling
 * outputs, inside the slice-wise leading layers -- 3 samples per slice --
 * as their last layer, and after them). */
static nnkit_net *fit_net(int kind, size_t *sample)
{
  nnkit_net *net = NULL;
  if (kind == 0) {
    *sample = 2;
    return mlp(9);
  }
  if (kind == 1) {
    size_t in = 2;
    *sample = 2;
    ck_ok(nnkit_net_create(&net, &in, 1, 9));
    ck_ok(nnkit_net_add_dense(net, 16));
    ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    ck_ok(nnkit_net_add_dense(net, 12));
    ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
    ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    ck_ok(nnkit_net_add_dense(net, 4));
    return net;
  }
  if (kind == 3) { /* wide enough for the dense layers to split over threads */
    size_t in = 2;
    *sample = 2;
    ck_ok(nnkit_net_create(&net, &in, 1, 9));
    ck_ok(nnkit_net_add_dense(net, 600));
    ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    ck_ok(nnkit_net_add_dense(net, 300));
    ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    ck_ok(nnkit_net_add_dense(net, 4));
    return net;
  }
  size_t in[3] = {1, 8, 8};
  *sample = 64;
  ck_ok(nnkit_net_create(&net, in, 3, 9));
  ck_ok(nnkit_net_add_conv2d(net, 5, 3, 3, 1, 1, 1, 1, 1));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU)); /* a no-op, in place */
  ck_ok(nnkit_net_add_conv2d(net, 6, 3, 3, 1, 1, 1, 1, 1));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU)); /* the last sliced layer */
  ck_ok(nnkit_net_add_dense(net, 10));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dense(net, 4));
  nnkit__net_force_slice(net, 3);
  return net;
}

static nnkit_dataset *fit_data(int kind, size_t n)
{
  if (kind != 2)
    return blobs(n, 4);
  float *x = malloc(n * 64 * sizeof *x);
  int32_t *y = malloc(n * sizeof *y);
  ck_assert(x && y);
  tu_fill_uniform(x, n * 64, 41, -1, 1);
  for (size_t i = 0; i < n; i++) /* the class: the brightest quadrant */
    y[i] = (x[i * 64] > 0) + 2 * (x[i * 64 + 63] > 0);
  size_t shape[3] = {1, 8, 8};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, n, shape, 3, 4));
  free(x);
  free(y);
  return ds;
}

/* Optimizer settings for the fit-versus-loop check: momentum, Nesterov
 * with weight decay (with a frozen layer and a per-layer learning-rate
 * multiplier), no momentum, clipping by norm. */
static nnkit_optimizer *fit_opt(int cfg)
{
  nnkit_optimizer *o = NULL;
  ck_ok(nnkit_optimizer_create(&o, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(o, NNKIT_OPT_LR, 0.05));
  ck_ok(nnkit_optimizer_set(o, NNKIT_OPT_MOMENTUM, cfg == 2 ? 0.0 : 0.9));
  if (cfg == 1) {
    ck_ok(nnkit_optimizer_set(o, NNKIT_OPT_NESTEROV, 1));
    ck_ok(nnkit_optimizer_set(o, NNKIT_OPT_WEIGHT_DECAY, 1e-3));
  }
  if (cfg == 2)
    ck_ok(nnkit_optimizer_set(o, NNKIT_OPT_WEIGHT_DECAY, 1e-2));
  if (cfg == 3)
    ck_ok(nnkit_optimizer_set(o, NNKIT_OPT_CLIP_NORM, 0.5));
  return o;
}

/* fit against the plain forward/backward/step loop over the same batches:
 * the weights must agree bit for bit, and a backward after fit must see
 * the last batch (the trainer lent the net its batch buffer, freed by
 * then). */
static void fit_vs_loop(int kind, int cfg, size_t n, size_t bs, int threads)
{
  size_t in;
  ck_ok(nnkit_set_num_threads(threads));
  nnkit_dataset *ds = fit_data(kind, n);
  nnkit_net *a = fit_net(kind, &in), *b = fit_net(kind, &in);
  if (cfg == 1)
    for (int k = 0; k < 2; k++) {
      nnkit_net *m = k ? b : a;
      ck_ok(nnkit_net_set_lr_multiplier(m, 0, 0.5));
      ck_ok(nnkit_net_set_trainable(m, nnkit_net_num_layers(m) - 1, 0));
    }
  nnkit_optimizer *oa = fit_opt(cfg), *ob = fit_opt(cfg);
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_trainer_create(&tr, a, oa));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 2));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, (double)bs));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SHUFFLE, 0));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  nnkit_trainer_free(tr); /* and with it the batch buffer it lent the net */
  const float *x = nnkit_dataset_data(ds);
  const int32_t *y = nnkit_dataset_labels(ds);
  for (int e = 0; e < 2; e++)
    for (size_t s = 0; s < n; s += bs) {
      double loss;
      size_t m = n - s < bs ? n - s : bs;
      ck_ok(nnkit_net_forward(b, x + s * in, m, NULL, 0));
      ck_ok(nnkit_net_backward(b, y + s, NULL, &loss));
      ck_ok(nnkit_optimizer_step(ob, b));
    }
  size_t np = nnkit_net_num_params(a);
  ck_assert_msg(memcmp(nnkit_net_params(a), nnkit_net_params(b), np * sizeof(float)) == 0,
                "net %d, optimizer %d, batch %zu, %d threads: fit and the loop differ",
                kind, cfg, bs, threads);
  /* The last batch of an epoch runs without in-place ReLUs: after fit
   * every layer's output is there. */
  ck_assert_mem_eq(nnkit_net_grads(a), nnkit_net_grads(b), np * sizeof(float));
  uint64_t ha[16], hb[16];
  for (size_t l = 0; l < nnkit_net_num_layers(a); l++) {
    ck_ok(nnkit_net_activation_histogram(ha, 16, -2, 2, a, l));
    ck_ok(nnkit_net_activation_histogram(hb, 16, -2, 2, b, l));
    ck_assert_mem_eq(ha, hb, sizeof ha);
  }
  size_t last = (n - 1) / bs * bs;
  double la, lb;
  ck_ok(nnkit_net_backward(a, y + last, NULL, &la));
  ck_ok(nnkit_net_backward(b, y + last, NULL, &lb));
  ck_assert(la == lb);
  ck_assert_mem_eq(nnkit_net_grads(a), nnkit_net_grads(b), np * sizeof(float));
  nnkit_optimizer_free(oa);
  nnkit_optimizer_free(ob);
  nnkit_net_free(a);
  nnkit_net_free(b);
  nnkit_dataset_free(ds);
  ck_ok(nnkit_set_num_threads(0));
}

/* The trainer reads its gathered batch in place (nnkit__net_forward_fit)
 * and runs ReLUs in place over the layer before them: neither may change
 * a weight, with any optimizer setting, batch size or thread count. */
/* A set kept as bytes (an IDX ubyte file) trains, evaluates and scores
 * exactly as the same values held as floats: with shuffling, a
 * validation set and more samples than one evaluation chunk. */
START_TEST(compact_set_trains_and_scores_as_the_float_set)
{
  const size_t shape[3] = {1, 8, 8};
  enum { N = 1100 };
  nnkit_dataset *b = NULL, *f = NULL, *vb = NULL, *vf = NULL;
  tu_compact_twins(&b, &f, N, shape, 3, 4, 21);
  tu_compact_twins(&vb, &vf, 300, shape, 3, 4, 22);
  nnkit_dataset *sets[4] = {b, f, vb, vf};
  for (int i = 0; i < 4; i++)
    ck_ok(nnkit_dataset_scale(sets[i], 1.0f / 255, -0.5f));
  size_t in;
  nnkit_net *na = fit_net(2, &in), *nb = fit_net(2, &in);
  nnkit_optimizer *oa = fit_opt(0), *ob = fit_opt(0);
  nnkit_trainer *ta = NULL, *tb = NULL;
  ck_ok(nnkit_trainer_create(&ta, na, oa));
  ck_ok(nnkit_trainer_create(&tb, nb, ob));
  for (int k = 0; k < 2; k++) {
    nnkit_trainer *t = k ? tb : ta;
    ck_ok(nnkit_trainer_set(t, NNKIT_TRAIN_EPOCHS, 2));
    ck_ok(nnkit_trainer_set(t, NNKIT_TRAIN_BATCH_SIZE, 64));
    ck_ok(nnkit_trainer_set(t, NNKIT_TRAIN_SEED, 5));
  }
  ck_ok(nnkit_trainer_fit(ta, b, vb));
  ck_ok(nnkit_trainer_fit(tb, f, vf));
  ck_assert_ptr_null(b->x); /* trained from the bytes, no float copy */
  ck_assert_ptr_null(vb->x);
  size_t np = nnkit_net_num_params(na);
  ck_assert_mem_eq(nnkit_net_params(na), nnkit_net_params(nb), np * sizeof(float));
  double la, aa, lb, ab;
  ck_ok(nnkit_net_evaluate(&la, &aa, na, vb));
  ck_ok(nnkit_net_evaluate(&lb, &ab, nb, vf));
  ck_assert(la == lb && aa == ab);
  ck_assert_double_gt(aa, 0.5); /* it learnt something: 4 classes */
  size_t ca[16], cb[16];
  ck_ok(nnkit_net_confusion(ca, 16, na, b));
  ck_ok(nnkit_net_confusion(cb, 16, nb, f));
  ck_assert_mem_eq(ca, cb, sizeof ca);
  size_t sum = 0;
  for (int i = 0; i < 16; i++)
    sum += ca[i];
  ck_assert_uint_eq(sum, N);
  ck_ok(nnkit_net_top_k_accuracy(&la, na, b, 2));
  ck_ok(nnkit_net_top_k_accuracy(&lb, nb, f, 2));
  ck_assert(la == lb && la > 0.5);
  ck_assert_ptr_null(b->x);
  nnkit_trainer_free(ta);
  nnkit_trainer_free(tb);
  nnkit_optimizer_free(oa);
  nnkit_optimizer_free(ob);
  nnkit_net_free(na);
  nnkit_net_free(nb);
  for (int i = 0; i < 4; i++)
    nnkit_dataset_free(sets[i]);
}
END_TEST

START_TEST(fit_equals_the_manual_loop)
{
  for (int kind = 0; kind < 3; kind++)
    for (int cfg = 0; cfg < 4; cfg++)
      fit_vs_loop(kind, cfg, 200, 8, 1);
  fit_vs_loop(1, 0, 700, 300, 1); /* K = 300: dW in two K blocks, a short last batch */
  fit_vs_loop(1, 1, 700, 300, 1);
  fit_vs_loop(3, 0, 192, 64, 2);  /* dense layers split over two threads */
  fit_vs_loop(3, 1, 192, 64, 2);
  fit_vs_loop(2, 0, 96, 16, 2);   /* slices owned per thread */
}
END_TEST

/* A training forward with in-place ReLUs: the ReLUs' outputs and the
 * logits equal a plain forward's; the layers under them are marked, and
 * their histograms are refused with a sentence until the next forward. */
START_TEST(inplace_relu_forward_marks_overwritten_layers)
{
  enum { N = 16 };
  for (int kind = 1; kind < 3; kind++) {
    size_t in;
    nnkit_dataset *ds = fit_data(kind, N);
    nnkit_net *a = fit_net(kind, &in), *b = fit_net(kind, &in);
    const float *x = nnkit_dataset_data(ds);
    nnkit_net_set_training(a, 1);
    nnkit_net_set_training(b, 1);
    ck_ok(nnkit_net_forward(b, x, N, NULL, 0));
    ck_ok(nnkit__net_forward_fit(a, x, N, 0, 1));
    size_t L = nnkit_net_num_layers(a), stale = 0;
    uint64_t ha[8], hb[8];
    for (size_t l = 0; l < L; l++) {
      const nnkit__layer *la = &a->layers[l];
      int relu_next = l + 1 < L &&
                      nnkit__layer_activation(&a->layers[l + 1], NULL) == NNKIT_ACT_RELU;
      ck_assert_int_eq(la->out_stale, relu_next);
      ck_assert_int_eq(b->layers[l].out_stale, 0);
      if (la->out_stale) {
        stale++;
        ck_fails(nnkit_net_activation_histogram(ha, 8, -1, 1, a, l), NNKIT_E_STATE,
                 "overwritten by the ReLU after it");
        continue;
      }
      size_t n = N * nnkit__shape_size(&la->out);
      ck_assert_mem_eq(a->acts[l], b->acts[l], n * sizeof(float));
      ck_ok(nnkit_net_activation_histogram(ha, 8, -1, 1, a, l));
      ck_ok(nnkit_net_activation_histogram(hb, 8, -1, 1, b, l));
      ck_assert_mem_eq(ha, hb, sizeof ha);
    }
    ck_assert_uint_eq(stale, kind == 1 ? 2 : 4);
    char path[512];
    snprintf(path, sizeof path, "%s/inplace_hist.csv", NNKIT_TEST_TMPDIR);
    remove(path);
    ck_fails(nnkit_net_save_histograms_csv(a, path, 8, -1, 1), NNKIT_E_STATE,
             "run nnkit_net_forward");
    ck_assert_ptr_null(fopen(path, "r")); /* nothing written */
    /* Any other forward brings them back. */
    ck_ok(nnkit_net_forward(a, x, N, NULL, 0));
    ck_ok(nnkit_net_save_histograms_csv(a, path, 8, -1, 1));
    remove(path);
    nnkit_net_free(a);
    nnkit_net_free(b);
    nnkit_dataset_free(ds);
  }
}
END_TEST

START_TEST(divergence_is_reported)
{
  /* Regression with a learning rate far too high: the cost explodes to
   * inf/nan within a few epochs and fit stops with NNKIT_E_DIVERGED. */
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
  size_t in = 2;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 1));
  ck_ok(nnkit_net_add_dense(net, 1));
  ck_ok(nnkit_net_set_loss(net, NNKIT_LOSS_MSE));
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 10.0));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 200));
  ck_fails(nnkit_trainer_fit(tr, ds, NULL), NNKIT_E_DIVERGED, "cost became");
  ck_assert(strstr(nnkit_last_error(), "try 1e+00") != NULL);
  ck_assert_uint_lt(nnkit_trainer_epochs_done(tr), 200);
  /* A sane learning rate fits the line. */
  nnkit_net_free(net);
  ck_ok(nnkit_net_create(&net, &in, 1, 1));
  ck_ok(nnkit_net_add_dense(net, 1));
  ck_ok(nnkit_net_set_loss(net, NNKIT_LOSS_MSE));
  nnkit_trainer_free(tr);
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.01));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 300));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 8));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  double loss;
  ck_ok(nnkit_net_evaluate(&loss, NULL, net, ds));
  ck_assert_double_lt(loss, 1e-3);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(bad_datasets_are_rejected)
{
  nnkit_net *net = mlp(1);
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  float x[16] = {0};
  int32_t y[4] = {0, 1, 5, 2};
  size_t s3[1] = {3}, s2[1] = {2};
  nnkit_dataset *wide = NULL, *many = NULL, *reg = NULL;
  ck_ok(nnkit_dataset_from_buffers(&wide, x, y, 4, s3, 1, 6));
  ck_ok(nnkit_dataset_from_buffers(&many, x, y, 4, s2, 1, 6));
  ck_ok(nnkit_dataset_from_targets(&reg, x, x, 4, s2, 1, 4));
  ck_fails(nnkit_trainer_fit(tr, wide, NULL), NNKIT_E_SHAPE, "takes 2");
  ck_fails(nnkit_trainer_fit(tr, many, NULL), NNKIT_E_SHAPE, "6 classes");
  ck_fails(nnkit_trainer_fit(tr, reg, NULL), NNKIT_E_INVALID, "NNKIT_LOSS_MSE");
  ck_fails(nnkit_trainer_fit(tr, NULL, NULL), NNKIT_E_INVALID, "training set");
  nnkit_dataset *good = blobs(8, 1);
  ck_fails(nnkit_trainer_fit(tr, good, many), NNKIT_E_SHAPE, "validation");
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tr), 0);
  nnkit_trainer_free(tr);
  nnkit_net *empty = NULL;
  size_t in = 2;
  ck_ok(nnkit_net_create(&empty, &in, 1, 0));
  ck_ok(nnkit_trainer_create(&tr, empty, opt));
  ck_fails(nnkit_trainer_fit(tr, good, NULL), NNKIT_E_STATE, "no layers");
  nnkit_trainer_free(tr);
  nnkit_net_free(empty);
  nnkit_dataset_free(good);
  nnkit_dataset_free(wide);
  nnkit_dataset_free(many);
  nnkit_dataset_free(reg);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

START_TEST(steady_state_allocates_nothing)
{
  nnkit_dataset *train = blobs(300, 1), *val = blobs(100, 2);
  nnkit_net *net = mlp(3);
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 1));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 32));
  ck_ok(nnkit_trainer_fit(tr, train, val));
  uint64_t before = nnkit__alloc_count();
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 3));
  ck_ok(nnkit_trainer_fit(tr, train, val)); /* 30 steps + 3 evaluations */
  ck_assert_uint_eq(nnkit__alloc_count(), before);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
}
END_TEST

/* The data order of epoch e is nnkit__rng_shuffle with the stream
 * (SEED, e), e counting on across fits: pinned against a hand-written
 * loop (the trainer's draws before it batched through a pipeline). */
START_TEST(fit_draws_the_order_from_seed_and_epoch)
{
  size_t n = 90, bs = 16, in = 2;
  nnkit_dataset *ds = blobs(n, 21);
  nnkit_net *a = mlp(4), *b = mlp(4);
  nnkit_optimizer *oa = NULL, *ob = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&oa, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_create(&ob, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_trainer_create(&tr, a, oa));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 2));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, (double)bs));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, 1234));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 1));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL)); /* epoch 2 */
  const float *x = nnkit_dataset_data(ds);
  const int32_t *y = nnkit_dataset_labels(ds);
  size_t order[90];
  float bx[16 * 2];
  int32_t by[16];
  for (uint64_t e = 0; e < 3; e++) {
    for (size_t i = 0; i < n; i++)
      order[i] = i;
    nnkit__rng r;
    nnkit__rng_init(&r, 1234, e);
    nnkit__rng_shuffle(&r, order, n);
    for (size_t s = 0; s < n; s += bs) {
      size_t m = n - s < bs ? n - s : bs;
      for (size_t i = 0; i < m; i++) {
        memcpy(bx + i * in, x + order[s + i] * in, in * sizeof(float));
        by[i] = y[order[s + i]];
      }
      double loss;
      ck_ok(nnkit_net_forward(b, bx, m, NULL, 0));
      ck_ok(nnkit_net_backward(b, by, NULL, &loss));
      ck_ok(nnkit_optimizer_step(ob, b));
    }
  }
  size_t np = nnkit_net_num_params(a);
  ck_assert_mem_eq(nnkit_net_params(a), nnkit_net_params(b), np * sizeof(float));
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(oa);
  nnkit_optimizer_free(ob);
  nnkit_net_free(a);
  nnkit_net_free(b);
  nnkit_dataset_free(ds);
}
END_TEST

/* nnkit_trainer_fit() batches through a plain pipeline of its own: with
 * the same batch size, shuffle and seed, a caller's pipeline (prefetching
 * or not) gives the same run bit for bit, across fits (the epoch counter
 * goes on) and across training sets of other sizes. */
static nnkit_pipeline *plain_pipe(const nnkit_dataset *ds, size_t bs, uint64_t seed,
                                  int prefetch)
{
  nnkit_pipeline *p = NULL;
  ck_ok(nnkit_pipeline_create(&p, ds));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, (double)bs));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_SEED, (double)seed));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_PREFETCH, prefetch));
  return p;
}

START_TEST(fit_equals_fit_pipeline_with_shuffling)
{
  nnkit_dataset *big = blobs(230, 11), *small = blobs(70, 12);
  for (int prefetch = 0; prefetch <= 2; prefetch += 2) {
    nnkit_net *a = mlp(5), *b = mlp(5);
    nnkit_optimizer *oa = NULL, *ob = NULL;
    nnkit_trainer *ta = NULL, *tb = NULL;
    ck_ok(nnkit_optimizer_create(&oa, NNKIT_OPTIM_SGD));
    ck_ok(nnkit_optimizer_create(&ob, NNKIT_OPTIM_SGD));
    ck_ok(nnkit_trainer_create(&ta, a, oa));
    ck_ok(nnkit_trainer_create(&tb, b, ob));
    for (int k = 0; k < 2; k++) {
      nnkit_trainer *t = k ? tb : ta;
      ck_ok(nnkit_trainer_set(t, NNKIT_TRAIN_EPOCHS, 2));
      ck_ok(nnkit_trainer_set(t, NNKIT_TRAIN_BATCH_SIZE, 24));
      ck_ok(nnkit_trainer_set(t, NNKIT_TRAIN_SEED, 7));
    }
    nnkit_pipeline *pb = plain_pipe(big, 24, 7, prefetch);
    nnkit_pipeline *ps = plain_pipe(small, 24, 7, prefetch);
    ck_ok(nnkit_trainer_fit(ta, big, small));
    ck_ok(nnkit_trainer_fit_pipeline(tb, pb, NULL));
    ck_ok(nnkit_trainer_fit(ta, small, NULL)); /* another size: epochs 2, 3 */
    ck_ok(nnkit_trainer_fit_pipeline(tb, ps, NULL));
    ck_ok(nnkit_trainer_fit(ta, big, NULL)); /* and back: epochs 4, 5 */
    ck_ok(nnkit_trainer_fit_pipeline(tb, pb, NULL));
    size_t np = nnkit_net_num_params(a);
    ck_assert_mem_eq(nnkit_net_params(a), nnkit_net_params(b), np * sizeof(float));
    ck_assert_uint_eq(nnkit_trainer_epochs_done(ta), 6);
    for (size_t e = 0; e < 6; e++) {
      double x, y;
      ck_ok(nnkit_trainer_metric(&x, ta, e, NNKIT_METRIC_TRAIN_LOSS));
      ck_ok(nnkit_trainer_metric(&y, tb, e, NNKIT_METRIC_TRAIN_LOSS));
      ck_assert(x == y);
      /* one record: the trainer's figures are the history's */
      for (int m = NNKIT_METRIC_TRAIN_LOSS; m <= NNKIT_METRIC_REG_LOSS; m++) {
        ck_ok(nnkit_trainer_metric(&x, ta, e, (nnkit_metric)m));
        ck_ok(nnkit_history_get(&y, nnkit_trainer_history(ta), e, (nnkit_metric)m));
        ck_assert(x == y || (isnan(x) && isnan(y)));
      }
    }
    ck_fails(nnkit_trainer_metric(&(double){0}, ta, 6, NNKIT_METRIC_LR), NNKIT_E_INVALID,
             "nnkit_trainer_metric: epoch 6 not recorded (6 so far)");
    ck_fails(nnkit_trainer_metric(&(double){0}, ta, 0, (nnkit_metric)99), NNKIT_E_INVALID,
             "nnkit_trainer_metric: unknown metric 99");
    nnkit_pipeline_free(pb);
    nnkit_pipeline_free(ps);
    nnkit_trainer_free(ta);
    nnkit_trainer_free(tb);
    nnkit_optimizer_free(oa);
    nnkit_optimizer_free(ob);
    nnkit_net_free(a);
    nnkit_net_free(b);
  }
  nnkit_dataset_free(big);
  nnkit_dataset_free(small);
}
END_TEST

/* Settings are fixed while a fit runs, and a fit does not start inside
 * another. */
typedef struct inside {
  const nnkit_dataset *ds;
  nnkit_status set_st, fit_st;
  char set_msg[256];
} inside;

static int meddle(const nnkit_trainer *tr, size_t epoch, size_t batch, double loss,
                  void *user)
{
  (void)epoch;
  (void)batch;
  (void)loss;
  inside *in = user;
  nnkit_trainer *t = (nnkit_trainer *)tr;
  in->set_st = nnkit_trainer_set(t, NNKIT_TRAIN_BATCH_SIZE, 3);
  snprintf(in->set_msg, sizeof in->set_msg, "%s", nnkit_last_error());
  in->fit_st = nnkit_trainer_fit(t, in->ds, NULL);
  return 1;
}

START_TEST(settings_are_fixed_during_a_fit)
{
  nnkit_dataset *ds = blobs(64, 3);
  nnkit_net *net = mlp(2);
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  inside in = {ds, NNKIT_OK, NNKIT_OK, ""};
  ck_ok(nnkit_trainer_add_batch_callback(tr, meddle, &in));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  ck_assert_int_eq(in.set_st, NNKIT_E_STATE);
  ck_assert_str_eq(in.set_msg, "trainer batch size cannot change during a fit");
  ck_assert_int_eq(in.fit_st, NNKIT_E_STATE);
  double v;
  ck_ok(nnkit_trainer_get(&v, tr, NNKIT_TRAIN_BATCH_SIZE));
  ck_assert_double_eq(v, 64);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 3)); /* after the fit */
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}
END_TEST

static Suite *train_suite(void)
{
  Suite *s = suite_create("train");
  TCase *tc = tcase_create("fit");
  tcase_add_test(tc, settings_and_bounds);
  tcase_add_test(tc, fit_learns_and_records);
  tcase_add_test(tc, same_seed_same_weights);
  tcase_add_test(tc, fit_equals_the_manual_loop);
  tcase_add_test(tc, compact_set_trains_and_scores_as_the_float_set);
  tcase_add_test(tc, inplace_relu_forward_marks_overwritten_layers);
  tcase_add_test(tc, divergence_is_reported);
  tcase_add_test(tc, bad_datasets_are_rejected);
  tcase_add_test(tc, steady_state_allocates_nothing);
  tcase_add_test(tc, fit_draws_the_order_from_seed_and_epoch);
  tcase_add_test(tc, fit_equals_fit_pipeline_with_shuffling);
  tcase_add_test(tc, settings_are_fixed_during_a_fit);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nnkit_test_run(train_suite()); }
