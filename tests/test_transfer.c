/* Transfer learning: cutting a net (nnkit_net_cut) and reading a layer's
 * activations (nnkit_net_features, nnkit_net_features_batch). */
#include "testutil.h"

/* A small CNN on [1, 8, 8] samples, 4 classes:
 *   0 conv 3x3 (4)  1 batch norm  2 ReLU  3 max pool 2  4 flatten
 *   5 dense 16  6 ReLU  7 dropout 0.25  8 dense 4 */
#define CNN_LAYERS 9
#define CNN_CUT 7 /* keep layers 0..6: everything up to the head's dropout */

static nnkit_net *small_cnn(uint64_t seed)
{
  size_t shape[3] = {1, 8, 8};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 3, seed));
  ck_ok(nnkit_net_add_conv2d(net, 4, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 2, 2, 0, 0));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dense(net, 16));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dropout(net, 0.25));
  ck_ok(nnkit_net_add_dense(net, 4));
  ck_assert_uint_eq(nnkit_net_num_layers(net), CNN_LAYERS);
  return net;
}

/* n learnable [1, 8, 8] samples of `classes` classes (each class lights
 * its own quarter of the image) with labels; seeded. */
static void make_images(float *x, int32_t *y, size_t n, int classes, uint64_t seed)
{
  tu_fill_uniform(x, n * 64, seed, -0.5f, 0.5f);
  for (size_t i = 0; i < n; i++) {
    int c = (int)(i % (size_t)classes);
    y[i] = c;
    for (size_t p = 0; p < 64; p++)
      if ((int)((p / 8) / 4 * 2 + (p % 8) / 4) % classes == c)
        x[i * 64 + p] += 1.0f;
  }
}

static nnkit_dataset *image_set(size_t n, int classes, uint64_t seed)
{
  float *x = malloc(n * 64 * sizeof *x);
  int32_t *y = malloc(n * sizeof *y);
  make_images(x, y, n, classes, seed);
  size_t shape[3] = {1, 8, 8};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, n, shape, 3, (uint32_t)classes));
  free(x);
  free(y);
  return ds;
}

/* Some SGD steps on ds (so weights, batch-norm statistics and dropout's
 * mask position all move away from their start). */
static void train_some(nnkit_net *net, nnkit_optimizer *opt, const nnkit_dataset *ds,
                       int steps)
{
  const float *x = nnkit_dataset_data(ds);
  const int32_t *y = nnkit_dataset_labels(ds);
  size_t n = nnkit_dataset_count(ds), b = 16;
  for (int s = 0; s < steps; s++) {
    size_t first = ((size_t)s * b) % (n - b + 1);
    ck_ok(nnkit_optimizer_train_batch(NULL, opt, net, x + first * 64, b, y + first,
                                      NULL));
  }
}

static nnkit_optimizer *sgd(double lr)
{
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, lr));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.9));
  return opt;
}

static void same_floats(const float *a, const float *b, size_t n, const char *what)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(memcmp(&a[i], &b[i], sizeof a[i]) == 0, "%s %zu: %.9g vs %.9g", what,
                  i, (double)a[i], (double)b[i]);
}

START_TEST(cut_keeps_the_kept_layers_bit_for_bit)
{
  nnkit_net *net = small_cnn(3);
  nnkit_dataset *ds = image_set(96, 4, 1);
  nnkit_optimizer *opt = sgd(0.05);
  train_some(net, opt, ds, 12);
  ck_ok(nnkit_net_set_trainable(net, 0, 0));
  ck_ok(nnkit_net_set_lr_multiplier(net, 5, 0.25));
  nnkit_init *wi = NULL;
  ck_ok(nnkit_init_create(&wi, NNKIT_INIT_NORMAL, 0.0, 0.5));
  ck_ok(nnkit_net_set_init(net, 5, wi, NULL));

  /* Before: the parameters of the kept layers, batch-norm statistics, the
   * dropout position and the kept prefix's output on a batch. */
  size_t kept_params, cnt;
  ck_ok(nnkit_net_layer_params(&kept_params, &cnt, net, CNN_CUT));
  ck_assert_uint_gt(kept_params, 0);
  ck_assert_uint_lt(kept_params, nnkit_net_num_params(net));
  float *before = malloc(kept_params * sizeof *before);
  memcpy(before, nnkit_net_params(net), kept_params * sizeof *before);
  float mean0[4], var0[4], mean1[4], var1[4];
  ck_ok(nnkit_net_batchnorm_stats(mean0, var0, 4, net, 1));
  size_t w6 = 16, b = 20;
  const float *x = nnkit_dataset_data(ds);
  float *prefix = malloc(b * w6 * sizeof *prefix);
  nnkit_net_set_training(net, 0);
  ck_ok(nnkit_net_forward(net, x, b, NULL, 0));
  memcpy(prefix, net->acts[CNN_CUT - 1], b * w6 * sizeof *prefix);
  nnkit_net_set_training(net, 1);

  ck_ok(nnkit_net_cut(net, CNN_CUT));
  ck_assert_uint_eq(nnkit_net_num_layers(net), CNN_CUT);
  ck_assert_uint_eq(nnkit_net_num_params(net), kept_params);
  ck_assert_uint_eq(nnkit_net_output_size(net), w6);
  same_floats(before, nnkit_net_params(net), kept_params, "param");
  ck_ok(nnkit_net_batchnorm_stats(mean1, var1, 4, net, 1));
  same_floats(mean0, mean1, 4, "running mean");
  same_floats(var0, var1, 4, "running var");
  ck_assert_uint_eq(nnkit__net_role_floats(net, NNKIT__ROLE_STATE), 8);
  ck_assert_int_eq(nnkit_net_is_trainable(net, 0), 0);
  ck_assert_int_eq(nnkit_net_is_trainable(net, 5), 1);
  double m;
  ck_ok(nnkit_net_get_lr_multiplier(&m, net, 5));
  ck_assert_double_eq(m, 0.25);
  ck_assert_ptr_nonnull(net->layers[5].w_init);
  ck_assert_int_eq(net->layers[5].w_init->kind, NNKIT_INIT_NORMAL);
  /* The cut net computes what its prefix computed, bit for bit. */
  float *out = malloc(b * w6 * sizeof *out);
  nnkit_net_set_training(net, 0);
  ck_ok(nnkit_net_forward(net, x, b, out, b * w6));
  same_floats(prefix, out, b * w6, "output");
  /* Cutting to the current length changes nothing. */
  ck_ok(nnkit_net_cut(net, CNN_CUT));
  ck_assert_uint_eq(nnkit_net_num_params(net), kept_params);
  same_floats(before, nnkit_net_params(net), kept_params, "param");
  /* Down to one layer, and to a layer without parameters. */
  ck_ok(nnkit_net_cut(net, 3));
  size_t conv_params;
  ck_ok(nnkit_net_layer_params(&cnt, &conv_params, net, 0));
  ck_assert_uint_eq(nnkit_net_num_params(net), conv_params + 8);
  same_floats(before, nnkit_net_params(net), conv_params + 8, "param");
  ck_ok(nnkit_net_cut(net, 1));
  same_floats(before, nnkit_net_params(net), conv_params, "param");

  nnkit_net *act = NULL;
  size_t in = 6;
  ck_ok(nnkit_net_create(&act, &in, 1, 1));
  ck_ok(nnkit_net_add_activation(act, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(act, 3));
  ck_assert_ptr_nonnull(nnkit_net_params(act));
  ck_ok(nnkit_net_cut(act, 1));
  ck_assert_uint_eq(nnkit_net_num_params(act), 0);
  ck_assert_ptr_null(nnkit_net_params(act));
  ck_ok(nnkit_net_add_dense(act, 2)); /* and it grows again */
  ck_assert_uint_eq(nnkit_net_num_params(act), 14);
  ck_assert_ptr_nonnull(nnkit_net_params(act));
  float xi[6] = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f}, yo[2];
  ck_ok(nnkit_net_forward(act, xi, 1, yo, 2));
  ck_assert(isfinite(yo[0]) && isfinite(yo[1]));

  nnkit_net_free(act);
  nnkit_init_free(wi);
  free(before);
  free(prefix);
  free(out);
  nnkit_optimizer_free(opt);
  nnkit_dataset_free(ds);
  nnkit_net_free(net);
}
END_TEST

START_TEST(cut_and_new_head_compose_and_train)
{
  /* Pretrain on 4 classes, then cut before the head and learn 3 others. */
  nnkit_net *net = small_cnn(5);
  nnkit_dataset *pre = image_set(96, 4, 2);
  nnkit_optimizer *opt = sgd(0.05);
  train_some(net, opt, pre, 20);
  size_t kept_params, cnt;
  ck_ok(nnkit_net_layer_params(&kept_params, &cnt, net, CNN_CUT));

  /* The prefix's outputs (the features the new head will see). */
  nnkit_dataset *ds = image_set(60, 3, 9);
  const float *x = nnkit_dataset_data(ds);
  const int32_t *y = nnkit_dataset_labels(ds);
  size_t n = nnkit_dataset_count(ds), w6 = 16;
  float *feat = malloc(n * w6 * sizeof *feat);
  ck_ok(nnkit_net_features_batch(feat, n * w6, net, CNN_CUT - 1, x, n));

  ck_ok(nnkit_net_cut(net, CNN_CUT));
  ck_ok(nnkit_net_add_dense(net, 3));
  ck_assert_uint_eq(nnkit_net_output_size(net), 3);
  for (size_t i = 0; i < CNN_CUT - 1; i++) /* freeze the pretrained layers */
    ck_ok(nnkit_net_set_trainable(net, i, 0));
  float *kept = malloc(kept_params * sizeof *kept);
  memcpy(kept, nnkit_net_params(net), kept_params * sizeof *kept);

  /* The new head is initialized as usual: as the same layer of a fresh net
   * of the new architecture and seed. */
  nnkit_net *fresh = small_cnn(5);
  ck_ok(nnkit_net_cut(fresh, CNN_CUT));
  ck_ok(nnkit_net_add_dense(fresh, 3));
  ck_assert_uint_eq(nnkit_net_num_params(fresh), nnkit_net_num_params(net));
  same_floats(nnkit_net_params(fresh) + kept_params, nnkit_net_params(net) + kept_params,
              nnkit_net_num_params(net) - kept_params, "head param");

  /* Cut net + head = the head applied to the old prefix's outputs. */
  nnkit_net *head = NULL;
  ck_ok(nnkit_net_create(&head, &w6, 1, 77));
  ck_ok(nnkit_net_add_dense(head, 3));
  ck_assert_uint_eq(nnkit_net_num_params(head), nnkit_net_num_params(net) - kept_params);
  memcpy(nnkit_net_params(head), nnkit_net_params(net) + kept_params,
         nnkit_net_num_params(head) * sizeof(float));
  float *a = malloc(n * 3 * sizeof *a), *c = malloc(n * 3 * sizeof *c);
  nnkit_net_set_training(net, 0);
  ck_ok(nnkit_net_forward(net, x, n, a, n * 3));
  nnkit_net_set_training(net, 1);
  ck_ok(nnkit_net_forward(head, feat, n, c, n * 3));
  same_floats(c, a, n * 3, "output");

  /* The optimizer's state was sized for the old net: a clear refusal,
   * then a reset makes it usable. */
  ck_fails(nnkit_optimizer_train_batch(NULL, opt, net, x, 16, y, NULL), NNKIT_E_STATE,
           "nnkit_optimizer_reset");
  nnkit_optimizer_reset(opt);
  double first = 0, loss = 0, l0, l1;
  ck_ok(nnkit_net_evaluate(&l0, NULL, net, ds));
  for (int e = 0; e < 30; e++)
    for (size_t s = 0; s + 12 <= n; s += 12) {
      ck_ok(nnkit_optimizer_train_batch(&loss, opt, net, x + s * 64, 12, y + s, NULL));
      if (e == 0 && s == 0)
        first = loss;
    }
  ck_ok(nnkit_net_evaluate(&l1, NULL, net, ds));
  ck_assert_msg(l1 < 0.5 * l0 && loss < first, "loss %g -> %g (batches %g -> %g)", l0, l1,
                first, loss);
  same_floats(kept, nnkit_net_params(net), kept_params, "frozen param");

  free(a);
  free(c);
  free(feat);
  free(kept);
  nnkit_net_free(head);
  nnkit_net_free(fresh);
  nnkit_optimizer_free(opt);
  nnkit_dataset_free(pre);
  nnkit_dataset_free(ds);
  nnkit_net_free(net);
}
END_TEST

START_TEST(cut_of_an_unbuilt_net_builds_like_a_fresh_one)
{
  nnkit_net *a = small_cnn(11), *b = NULL;
  ck_ok(nnkit_net_cut(a, 6));
  ck_ok(nnkit_net_add_activation(a, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(a, 2));
  size_t shape[3] = {1, 8, 8};
  ck_ok(nnkit_net_create(&b, shape, 3, 11));
  ck_ok(nnkit_net_add_conv2d(b, 4, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
  ck_ok(nnkit_net_add_batchnorm(b, 0.1, 1e-5));
  ck_ok(nnkit_net_add_activation(b, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_maxpool2d(b, 2, 2, 2, 2, 0, 0));
  ck_ok(nnkit_net_add_flatten(b));
  ck_ok(nnkit_net_add_dense(b, 16));
  ck_ok(nnkit_net_add_activation(b, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(b, 2));
  ck_assert_uint_eq(nnkit_net_num_params(a), nnkit_net_num_params(b));
  same_floats(nnkit_net_params(b), nnkit_net_params(a), nnkit_net_num_params(a), "param");
  /* A built net grown after its build and cut before the next one. */
  ck_ok(nnkit_net_add_dense(a, 5));
  ck_ok(nnkit_net_add_dense(a, 7));
  ck_ok(nnkit_net_cut(a, 9));
  ck_ok(nnkit_net_add_dense(b, 5));
  same_floats(nnkit_net_params(b), nnkit_net_params(a), nnkit_net_num_params(a), "param");
  nnkit_net_free(a);
  nnkit_net_free(b);
}
END_TEST

/* Asserts that feature set f holds, for each chunk of 256 samples of ds,
 * the outputs of layer `layer` of an evaluation-mode forward. */
static void check_features(nnkit_net *net, size_t layer, const nnkit_dataset *ds,
                           const nnkit_dataset *f)
{
  size_t n = nnkit_dataset_count(ds), w = nnkit_dataset_sample_size(f);
  ck_assert_uint_eq(nnkit_dataset_count(f), n);
  size_t dims[NNKIT_MAX_SAMPLE_DIMS], nd;
  ck_ok(nnkit_net_layer_shape(dims, NNKIT_MAX_SAMPLE_DIMS, &nd, net, layer));
  ck_assert_uint_eq(nnkit_dataset_ndim(f), nd);
  for (size_t d = 0; d < nd; d++)
    ck_assert_uint_eq(nnkit_dataset_dim(f, d), dims[d]);
  const float *x = nnkit_dataset_data(ds), *fx = nnkit_dataset_data(f);
  size_t in = nnkit_net_input_size(net);
  int mode = nnkit_net_is_training(net);
  nnkit_net_set_training(net, 0);
  for (size_t s = 0; s < n; s += 256) {
    size_t m = n - s < 256 ? n - s : 256;
    ck_ok(nnkit_net_forward(net, x + s * in, m, NULL, 0));
    same_floats(net->acts[layer], fx + s * w, m * w, "feature");
  }
  nnkit_net_set_training(net, mode);
}

START_TEST(features_equal_a_forward_stopped_at_the_layer)
{
  nnkit_net *net = small_cnn(7);
  nnkit_dataset *ds = image_set(300, 4, 3); /* two chunks: 256 + 44 */
  const char *names[4] = {"north-west", "north-east", "south-west", "south-east"};
  ck_ok(nnkit_dataset_set_class_names(ds, names, 4));
  nnkit_optimizer *opt = sgd(0.05);
  train_some(net, opt, ds, 10);
  ck_assert_int_eq(nnkit_net_is_training(net), 1);
  for (size_t layer = 0; layer < CNN_LAYERS; layer++) {
    nnkit_dataset *f = NULL;
    ck_ok(nnkit_net_features(&f, net, layer, ds));
    ck_assert_int_eq(nnkit_net_is_training(net), 1); /* the mode is restored */
    check_features(net, layer, ds, f);
    ck_assert_uint_eq(nnkit_dataset_num_classes(f), 4);
    ck_assert_uint_eq(nnkit_dataset_target_dim(f), 0);
    ck_assert_mem_eq(nnkit_dataset_labels(f), nnkit_dataset_labels(ds),
                     300 * sizeof(int32_t));
    for (uint32_t c = 0; c < 4; c++)
      ck_assert_str_eq(nnkit_dataset_class_name(f, c), names[c]);
    /* The batch form gives the same values. */
    size_t w = nnkit_dataset_sample_size(f);
    float *buf = malloc(300 * w * sizeof *buf);
    ck_ok(nnkit_net_features_batch(buf, 300 * w, net, layer, nnkit_dataset_data(ds), 300));
    same_floats(nnkit_dataset_data(f), buf, 300 * w, "batch feature");
    free(buf);
    nnkit_dataset_free(f);
  }
  /* Evaluation mode stays evaluation mode. */
  nnkit_net_set_training(net, 0);
  nnkit_dataset *f = NULL;
  ck_ok(nnkit_net_features(&f, net, 5, ds));
  ck_assert_int_eq(nnkit_net_is_training(net), 0);
  nnkit_dataset_free(f);
  nnkit_optimizer_free(opt);
  nnkit_dataset_free(ds);
  nnkit_net_free(net);
}
END_TEST

START_TEST(features_of_compact_and_regression_sets)
{
  size_t shape[3] = {1, 8, 8};
  nnkit_dataset *bytes = NULL, *floats = NULL;
  tu_compact_twins(&bytes, &floats, 270, shape, 3, 4, 5);
  ck_assert_ptr_nonnull(bytes->x8);
  ck_ok(nnkit_dataset_scale(bytes, 1.0f / 255, 0));
  ck_ok(nnkit_dataset_scale(floats, 1.0f / 255, 0));
  ck_assert_ptr_nonnull(bytes->x8);
  nnkit_net *net = small_cnn(2);
  nnkit_dataset *fb = NULL, *ff = NULL;
  ck_ok(nnkit_net_features(&fb, net, 3, bytes));
  ck_ok(nnkit_net_features(&ff, net, 3, floats));
  tu_same_values(fb, ff);
  check_features(net, 3, floats, ff);

  /* Regression targets are copied. */
  float *x = malloc(30 * 64 * sizeof *x), t[60];
  tu_fill_uniform(x, 30 * 64, 4, -1, 1);
  for (size_t i = 0; i < 60; i++)
    t[i] = (float)i * 0.5f;
  nnkit_dataset *reg = NULL, *fr = NULL;
  ck_ok(nnkit_dataset_from_targets(&reg, x, t, 30, shape, 3, 2));
  ck_ok(nnkit_net_features(&fr, net, 5, reg));
  ck_assert_uint_eq(nnkit_dataset_target_dim(fr), 2);
  ck_assert_ptr_null(nnkit_dataset_labels(fr));
  ck_assert_mem_eq(nnkit_dataset_targets(fr), t, sizeof t);
  check_features(net, 5, reg, fr);
  free(x);
  nnkit_dataset_free(reg);
  nnkit_dataset_free(fr);
  nnkit_dataset_free(fb);
  nnkit_dataset_free(ff);
  nnkit_dataset_free(bytes);
  nnkit_dataset_free(floats);
  nnkit_net_free(net);
}
END_TEST

START_TEST(bad_arguments_are_refused_with_sentences)
{
  nnkit_net *net = small_cnn(1);
  nnkit_dataset *ds = image_set(10, 4, 1);
  size_t np = nnkit_net_num_params(net);
  ck_fails(nnkit_net_cut(NULL, 1), NNKIT_E_INVALID, "net is NULL");
  ck_fails(nnkit_net_cut(net, 0), NNKIT_E_INVALID, "keep 0 is outside [1, 9]");
  ck_fails(nnkit_net_cut(net, 10), NNKIT_E_INVALID, "keep 10 is outside [1, 9]");
  ck_assert_uint_eq(nnkit_net_num_layers(net), CNN_LAYERS); /* unchanged */
  ck_assert_uint_eq(nnkit_net_num_params(net), np);

  nnkit_dataset *f = (nnkit_dataset *)&f; /* any non-NULL value */
  ck_fails(nnkit_net_features(NULL, net, 0, ds), NNKIT_E_INVALID, "out is NULL");
  ck_fails(nnkit_net_features(&f, NULL, 0, ds), NNKIT_E_INVALID, "net is NULL");
  ck_assert_ptr_null(f);
  ck_fails(nnkit_net_features(&f, net, 0, NULL), NNKIT_E_INVALID, "ds is NULL");
  ck_fails(nnkit_net_features(&f, net, 9, ds), NNKIT_E_INVALID,
           "layer 9 does not exist (the net has 9 layers, 0 to 8)");
  size_t wrong = 63;
  float xw[63 * 2] = {0};
  int32_t yw[2] = {0, 1};
  nnkit_dataset *bad = NULL;
  ck_ok(nnkit_dataset_from_buffers(&bad, xw, yw, 2, &wrong, 1, 2));
  ck_fails(nnkit_net_features(&f, net, 2, bad), NNKIT_E_SHAPE,
           "dataset samples have 63 values, the net takes 64");
  ck_assert_ptr_null(f);
  nnkit_net *empty = NULL;
  ck_ok(nnkit_net_create(&empty, &wrong, 1, 0));
  ck_fails(nnkit_net_features(&f, empty, 0, bad), NNKIT_E_STATE, "the net has no layers");

  float out[64 * 4];
  const float *x = nnkit_dataset_data(ds);
  ck_fails(nnkit_net_features_batch(NULL, 64, net, 0, x, 1), NNKIT_E_INVALID, "non-NULL");
  ck_fails(nnkit_net_features_batch(out, 64, NULL, 0, x, 1), NNKIT_E_INVALID, "non-NULL");
  ck_fails(nnkit_net_features_batch(out, 64, net, 0, NULL, 1), NNKIT_E_INVALID, "non-NULL");
  ck_fails(nnkit_net_features_batch(out, 64, net, 0, x, 0), NNKIT_E_INVALID, "batch > 0");
  ck_fails(nnkit_net_features_batch(out, 64 * 4, net, 12, x, 1), NNKIT_E_INVALID,
           "layer 12 does not exist");
  ck_fails(nnkit_net_features_batch(out, 64 * 4 - 1, net, 0, x, 1), NNKIT_E_INVALID,
           "out holds 255 floats, 1 samples x 256 values of layer 0 are needed");
  ck_ok(nnkit_net_features_batch(out, 64 * 4, net, 3, x, 4)); /* 4 x 64 fits */

  /* A net whose outputs are not finite gives no dataset. */
  nnkit_net_params(net)[0] = NAN;
  ck_fails(nnkit_net_features(&f, net, 0, ds), NNKIT_E_DIVERGED, "not usable");
  ck_assert_ptr_null(f);
  ck_fails(nnkit_net_features_batch(out, 64 * 4, net, 0, x, 1), NNKIT_E_DIVERGED,
           "layer 0's output");

  nnkit_net_free(empty);
  nnkit_dataset_free(bad);
  nnkit_dataset_free(ds);
  nnkit_net_free(net);
}
END_TEST

/* Builds a net, reads features of a byte set, cuts, appends a head and runs
 * it: everything the transfer calls touch, under failing allocations. */
static nnkit_status transfer_once(const void *arg)
{
  nnkit_dataset *const *sets = arg; /* the byte set and its float twin */
  const nnkit_dataset *ds = sets[0];
  size_t shape[3] = {1, 8, 8};
  nnkit_net *net = NULL;
  nnkit_dataset *f = NULL;
  float out[3 * 3];
  nnkit_status st = nnkit_net_create(&net, shape, 3, 4);
  if (st == NNKIT_OK)
    st = nnkit_net_add_conv2d(net, 2, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 5);
  if (st == NNKIT_OK) {
    f = (nnkit_dataset *)&f;
    st = nnkit_net_features(&f, net, 1, ds);
    ck_assert(st == NNKIT_OK ? f != NULL : f == NULL);
  }
  if (st == NNKIT_OK)
    st = nnkit_net_cut(net, 2);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 3);
  if (st == NNKIT_OK)
    st = nnkit_net_features_batch(out, 9, net, 2, nnkit_dataset_data(sets[1]), 3);
  if (st == NNKIT_OK)
    ck_assert(isfinite(out[0]) && isfinite(out[8]));
  nnkit_dataset_free(f);
  nnkit_net_free(net);
  return st;
}

START_TEST(transfer_calls_survive_allocation_failures)
{
  size_t shape[3] = {1, 8, 8};
  nnkit_dataset *bytes = NULL, *floats = NULL;
  tu_compact_twins(&bytes, &floats, 20, shape, 3, 2, 1);
  ck_assert_ptr_nonnull(bytes->x8);
  ck_assert_ptr_null(bytes->x); /* decoded chunk by chunk, not all at once */
  nnkit_dataset *sets[2] = {bytes, floats};
  ck_assert_ptr_nonnull(nnkit_dataset_data(floats));
  uint64_t n = tu_alloc_sweep(transfer_once, sets, "features, cut and a new head",
                              NNKIT_OK);
  ck_assert_uint_gt(n, 10);
  nnkit_dataset_free(bytes);
  nnkit_dataset_free(floats);
}
END_TEST

static Suite *transfer_suite(void)
{
  Suite *s = suite_create("transfer");
  TCase *tc = tcase_create("cut");
  tcase_add_test(tc, cut_keeps_the_kept_layers_bit_for_bit);
  tcase_add_test(tc, cut_and_new_head_compose_and_train);
  tcase_add_test(tc, cut_of_an_unbuilt_net_builds_like_a_fresh_one);
  suite_add_tcase(s, tc);
  TCase *tf = tcase_create("features");
  tcase_add_test(tf, features_equal_a_forward_stopped_at_the_layer);
  tcase_add_test(tf, features_of_compact_and_regression_sets);
  suite_add_tcase(s, tf);
  TCase *te = tcase_create("errors");
  tcase_add_test(te, bad_arguments_are_refused_with_sentences);
  tcase_add_test(te, transfer_calls_survive_allocation_failures);
  suite_add_tcase(s, te);
  return s;
}

int main(void) { return nnkit_test_run(transfer_suite()); }
