/* Model files: round trips (MLP, CNN with batch norm and dropout, every
 * normalizer kind), the safetensors layout read back byte by byte, and
 * bad files (every truncation, corrupt headers, bad tensors), failed and
 * atomic saves, allocation failures and NULL arguments. */
#include <dirent.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "testutil.h"
#include "io/io_internal.h"

/* ---- helpers --------------------------------------------------------- */


static unsigned char *read_all(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)n + 1);
  ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void write_all(const char *path, const void *buf, size_t len)
{
  FILE *f = fopen(path, "wb");
  ck_assert(f != NULL);
  ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
  fclose(f);
}

/* Offset of the checksum's 8 hex digits in a model file, found as
 * doc/file-format.md says: after the first "crc32":" of the header. */
static size_t crc_at(const unsigned char *b, size_t len)
{
  static const char key[] = "\"crc32\":\"";
  for (size_t i = 8; i + sizeof key - 1 + 8 <= len; i++)
    if (memcmp(b + i, key, sizeof key - 1) == 0)
      return i + sizeof key - 1;
  ck_abort_msg("no \"crc32\" in the file");
  return 0;
}

/* The checksum as doc/file-format.md defines it: zlib's crc32 of the whole
 * file with its own 8 digits read as "00000000". */
static uint32_t file_crc(const unsigned char *b, size_t len)
{
  size_t at = crc_at(b, len);
  uLong c = crc32(0L, Z_NULL, 0);
  c = crc32(c, b, (uInt)at);
  c = crc32(c, (const Bytef *)"00000000", 8);
  c = crc32(c, b + at + 8, (uInt)(len - at - 8));
  return (uint32_t)c;
}

/* Writes the right checksum into an edited file, so that a test reaches
 * the check after it. */
static void fix_crc(unsigned char *b, size_t len)
{
  char hex[9];
  snprintf(hex, sizeof hex, "%08x", (unsigned)file_crc(b, len));
  memcpy(b + crc_at(b, len), hex, 8);
}

/* Files in NNKIT_TEST_TMPDIR whose name starts with prefix's base name and
 * contains ".tmp." (left-over temporary files). */
static int leftover_tmp(const char *path)
{
  const char *base = strrchr(path, '/') + 1;
  DIR *d = opendir(NNKIT_TEST_TMPDIR);
  ck_assert(d != NULL);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    n += strncmp(e->d_name, base, strlen(base)) == 0 && strstr(e->d_name, ".tmp.");
  closedir(d);
  return n;
}

/* Runs a few training steps so parameters and batch-norm statistics move
 * away from their initial values. */
static void train_a_bit(nnkit_net *net, size_t steps)
{
  size_t in = nnkit_net_input_size(net), outw = nnkit_net_output_size(net);
  size_t batch = 8;
  float *x = malloc(batch * in * sizeof *x);
  int32_t labels[8];
  for (size_t s = 0; s < steps; s++) {
    tu_fill_uniform(x, batch * in, 100 + s, -1, 1);
    for (size_t i = 0; i < batch; i++)
      labels[i] = (int32_t)((i + s) % outw);
    ck_ok(nnkit_net_forward(net, x, batch, NULL, 0));
    ck_ok(nnkit_net_backward(net, labels, NULL, NULL));
    float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
    for (size_t i = 0; i < nnkit_net_num_params(net); i++)
      p[i] -= 0.05f * g[i];
  }
  free(x);
}

static nnkit_net *make_mlp(void)
{
  size_t shape[1] = {4};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 1, 7));
  ck_ok(nnkit_net_add_dense(net, 8));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dense(net, 6));
  ck_ok(nnkit_net_add_leaky_relu(net, 0.2f));
  ck_ok(nnkit_net_add_dense(net, 3));
  train_a_bit(net, 3);
  ck_ok(nnkit_net_set_trainable(net, 0, 0));
  ck_ok(nnkit_net_set_lr_multiplier(net, 2, 0.25));
  return net;
}

static nnkit_net *make_cnn(void)
{
  size_t shape[3] = {2, 7, 7};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 3, 11));
  ck_ok(nnkit_net_add_conv2d(net, 4, 3, 3, 1, 1, 1, 1, 0));
  ck_ok(nnkit_net_add_batchnorm(net, 0.2, 1e-4));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, NNKIT_PAD_SAME, NNKIT_PAD_SAME));
  ck_ok(nnkit_net_add_spatial_dropout(net, 0.1));
  ck_ok(nnkit_net_add_conv2d(net, 3, 2, 3, 1, 1, NNKIT_PAD_SAME, 0, 1));
  ck_ok(nnkit_net_add_avgpool2d(net, 1, 1, 1, 1, 0, 0));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dropout(net, 0.3));
  ck_ok(nnkit_net_add_dense(net, 5));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(net, 4));
  train_a_bit(net, 4);
  ck_ok(nnkit_net_set_trainable(net, 1, 0));
  ck_ok(nnkit_net_set_lr_multiplier(net, 9, 0.5));
  return net;
}

/* Same layers, descriptions, flags, parameters, statistics and (eval)
 * predictions, bit for bit. */
static void assert_same_net(nnkit_net *a, nnkit_net *b)
{
  size_t L = nnkit_net_num_layers(a);
  ck_assert_uint_eq(nnkit_net_num_layers(b), L);
  ck_assert_int_eq(nnkit_net_get_loss(a), nnkit_net_get_loss(b));
  ck_assert_int_eq(nnkit_net_is_training(b), 0);
  ck_assert_uint_eq(nnkit_net_num_params(a), nnkit_net_num_params(b));
  for (size_t i = 0; i < L; i++) {
    char da[256];
    snprintf(da, sizeof da, "%s", nnkit_net_layer_describe(a, i));
    ck_assert_str_eq(nnkit_net_layer_describe(b, i), da);
    ck_assert_int_eq(nnkit_net_is_trainable(a, i), nnkit_net_is_trainable(b, i));
    double ma, mb;
    ck_ok(nnkit_net_get_lr_multiplier(&ma, a, i));
    ck_ok(nnkit_net_get_lr_multiplier(&mb, b, i));
    ck_assert(ma == mb);
    float ra[64], va[64], rb[64], vb[64];
    if (nnkit_net_batchnorm_stats(ra, va, 64, a, i) == NNKIT_OK) {
      size_t off, cnt;
      ck_ok(nnkit_net_layer_params(&off, &cnt, a, i));
      ck_ok(nnkit_net_batchnorm_stats(rb, vb, 64, b, i));
      ck_assert(memcmp(ra, rb, cnt / 2 * sizeof(float)) == 0);
      ck_assert(memcmp(va, vb, cnt / 2 * sizeof(float)) == 0);
      ck_assert(va[0] != 1.0f); /* the statistics did move */
    }
  }
  nnkit_clear_error();
  ck_assert(memcmp(nnkit_net_params(a), nnkit_net_params(b),
                   nnkit_net_num_params(a) * sizeof(float)) == 0);
  size_t n = 13, in = nnkit_net_input_size(a), outw = nnkit_net_output_size(a);
  float *x = malloc(n * in * sizeof *x);
  float *pa = malloc(n * outw * sizeof *pa), *pb = malloc(n * outw * sizeof *pb);
  tu_fill_uniform(x, n * in, 5, -2, 2);
  ck_ok(nnkit_net_predict_proba(pa, n * outw, a, x, n));
  ck_ok(nnkit_net_predict_proba(pb, n * outw, b, x, n));
  ck_assert(memcmp(pa, pb, n * outw * sizeof(float)) == 0);
  free(x);
  free(pa);
  free(pb);
}

static nnkit_net *save_load(nnkit_net *net, const char *name)
{
  char path[512];
  tu_tmp_path(path, sizeof path, name);
  ck_ok(nnkit_net_save(net, NULL, path));
  nnkit_net *back = (nnkit_net *)1;
  nnkit_normalizer *nz = (nnkit_normalizer *)1;
  ck_ok(nnkit_net_load(&back, &nz, path));
  ck_assert_ptr_null(nz);
  unlink(path);
  return back;
}

/* ---- round trips ------------------------------------------------------ */

START_TEST(roundtrip_mlp)
{
  nnkit_net *net = make_mlp();
  nnkit_net *back = save_load(net, "mlp.safetensors");
  assert_same_net(net, back);
  ck_assert_int_eq(nnkit_net_is_trainable(back, 0), 0);
  /* The loaded net trains on like the original. */
  nnkit_net_set_training(back, 1);
  train_a_bit(net, 2);
  train_a_bit(back, 2);
  ck_assert(memcmp(nnkit_net_params(net), nnkit_net_params(back),
                   nnkit_net_num_params(net) * sizeof(float)) == 0);
  nnkit_net_free(net);
  nnkit_net_free(back);
}
END_TEST

START_TEST(roundtrip_cnn_batchnorm_dropout)
{
  nnkit_net *net = make_cnn();
  nnkit_net *back = save_load(net, "cnn.safetensors");
  assert_same_net(net, back);
  ck_assert_msg(strstr(nnkit_net_layer_describe(back, 5), "same") != NULL, "%s",
                nnkit_net_layer_describe(back, 5));
  nnkit_net_free(net);
  nnkit_net_free(back);
}
END_TEST

/* A file written by nnkit 0.1.0 (tests/fixtures/models/gen_v010.c, before
 * the descriptor redesign; format version 1, no checksum) still loads: same
 * architecture and options, normalizer, flags, and predictions equal to
 * 0.1.0's. Those were computed by the net alone on the raw samples (the
 * normalizer was only saved), so they are compared with the loaded net's
 * normalizer detached; with it attached, predictions are those of the net
 * on the normalizer's output. 0.1.0's figures were computed on another
 * machine, whose kernels (AVX2, AVX-512 or BLAS; and valgrind's CPU) round
 * differently, so they agree to 1e-5, not bit for bit; the weights
 * themselves are compared exactly by the round-trip tests. */
START_TEST(loads_files_of_version_0_1_0)
{
  enum { N = 24, C = 2, H = 6, W = 6, K = 3 };
  static float x[N * C * H * W], p[N * K];
  for (size_t i = 0; i < N; i++)
    for (size_t j = 0; j < C * H * W; j++)
      x[i * C * H * W + j] = (float)((i * 131 + j * 17) % 23) / 7.0f - 1.5f +
                             (float)(i % K) * (j % 5 == 0);
  nnkit_net *net = NULL;
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_net_load(&net, &nz, NNKIT_FIXTURES "/models/v0.1.0_cnn.safetensors"));
  ck_assert_ptr_nonnull(nz);
  ck_assert_int_eq(nnkit_normalizer_kind(nz), NNKIT_NORM_STANDARDIZE);
  ck_assert_uint_eq(nnkit_net_num_layers(net), 11);
  ck_assert_str_eq(nnkit_net_layer_describe(net, 2), "leaky_relu(0.1) 108");
  double v;
  ck_ok(nnkit_net_layer_get(&v, net, 6, NNKIT_LAYER_DROP_P));
  ck_assert(v == 0.2);
  ck_ok(nnkit_net_layer_get(&v, net, 1, NNKIT_LAYER_MOMENTUM));
  ck_assert(v == 0.2);
  ck_assert_int_eq(nnkit_net_is_trainable(net, 0), 0);
  ck_ok(nnkit_net_get_lr_multiplier(&v, net, 7));
  ck_assert(v == 0.5);
  /* attached: raw samples in, the normalizer's output through the net */
  ck_assert_ptr_nonnull(nnkit_net_normalizer(net));
  ck_assert_int_eq(nnkit_normalizer_kind(nnkit_net_normalizer(net)),
                   NNKIT_NORM_STANDARDIZE);
  static float z[N * C * H * W], pz[N * K];
  ck_ok(nnkit_normalizer_transform(nz, x, z, N));
  ck_ok(nnkit_net_predict_proba(p, N * K, net, x, N));
  ck_ok(nnkit_net_set_normalizer(net, NULL));
  ck_assert_ptr_null(nnkit_net_normalizer(net));
  ck_ok(nnkit_net_predict_proba(pz, N * K, net, z, N));
  ck_assert(memcmp(p, pz, sizeof p) == 0);
  /* detached: the net alone on the raw samples, as 0.1.0 computed them */
  ck_ok(nnkit_net_predict_proba(p, N * K, net, x, N));
  FILE *f = fopen(NNKIT_FIXTURES "/models/v0.1.0_cnn.txt", "r");
  ck_assert_ptr_nonnull(f);
  char line[128];
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f)); /* the comment */
  for (size_t i = 0; i < N * K; i++) {
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    double want = strtod(line, NULL);
    ck_assert_msg(fabs(p[i] - want) <= 1e-5 * (1.0 + fabs(want)),
                  "probability %zu: %a now, %a in 0.1.0", i, (double)p[i], want);
  }
  fclose(f);
  nnkit_normalizer_free(nz);
  nnkit_net_free(net);
}
END_TEST

/* A kind added through its descriptor alone (layer norm) round-trips:
 * options, gamma and beta by name, predictions bit for bit. */
START_TEST(roundtrip_layernorm)
{
  size_t in = 6;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 21));
  ck_ok(nnkit_net_add_dense(net, 5));
  ck_ok(nnkit_net_add_layernorm(net, 1e-4));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dense(net, 3));
  train_a_bit(net, 3);
  size_t off, cnt;
  ck_ok(nnkit_net_layer_params(&off, &cnt, net, 1));
  ck_assert(nnkit_net_params(net)[off] != 1.0f); /* gamma moved */
  nnkit_net *back = save_load(net, "ln.safetensors");
  assert_same_net(net, back);
  double eps;
  ck_ok(nnkit_net_layer_get(&eps, back, 1, NNKIT_LAYER_EPS));
  ck_assert(eps == 1e-4);
  nnkit_net_free(net);
  nnkit_net_free(back);
}
END_TEST

/* Every registered kind's descriptor is complete: a unique name, an add
 * call, options within the limit with settable ones reachable. */
START_TEST(registry_descriptors_are_complete)
{
  size_t n = 0;
  ck_assert_ptr_null(nnkit__layer_kind_at(1000, &n));
  ck_assert_uint_ge(n, 11);
  for (size_t i = 0; i < n; i++) {
    const nnkit__layer_kind *k = nnkit__layer_kind_at(i, &n);
    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_eq(nnkit__layer_kind_named(k->name), k);
    ck_assert_ptr_nonnull(k->add);
    ck_assert_ptr_nonnull(k->setup);
    ck_assert_ptr_nonnull(k->forward);
    ck_assert_ptr_nonnull(k->backward);
    ck_assert_ptr_nonnull(k->describe);
    ck_assert_uint_le(k->num_opts, NNKIT__MAX_LAYER_ARGS);
    ck_assert(k->num_opts == 0 || k->get_opts != NULL);
    for (size_t a = 0; a < k->num_opts; a++) {
      ck_assert_ptr_nonnull(k->opts[a].name);
      ck_assert(k->opts[a].lo <= k->opts[a].def && k->opts[a].def <= k->opts[a].hi);
    }
  }
  ck_assert_ptr_null(nnkit__layer_kind_named("no such kind"));
}
END_TEST

/* conv2d keeps the padding as requested: NNKIT_PAD_SAME (here symmetric)
 * and an explicit padding both come back as they were asked for. */
START_TEST(conv_padding_reloads_as_requested)
{
  size_t shape[3] = {1, 5, 5};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 3, 2));
  ck_ok(nnkit_net_add_conv2d(net, 2, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
  ck_ok(nnkit_net_add_conv2d(net, 2, 3, 3, 1, 1, 1, 0, 0));
  ck_ok(nnkit_net_add_dense(net, 3));
  nnkit_net *back = save_load(net, "same.safetensors");
  ck_assert_ptr_nonnull(strstr(nnkit_net_layer_describe(net, 0), "pad same"));
  ck_assert_ptr_nonnull(strstr(nnkit_net_layer_describe(back, 0), "pad same"));
  ck_assert_str_eq(nnkit_net_layer_describe(back, 1), nnkit_net_layer_describe(net, 1));
  float x[25], ya[3], yb[3];
  tu_fill_uniform(x, 25, 1, -1, 1);
  ck_ok(nnkit_net_predict_proba(ya, 3, net, x, 1));
  ck_ok(nnkit_net_predict_proba(yb, 3, back, x, 1));
  ck_assert(memcmp(ya, yb, sizeof ya) == 0);
  nnkit_net_free(net);
  nnkit_net_free(back);
}
END_TEST

START_TEST(roundtrip_mse_and_unbuilt_net)
{
  size_t shape[2] = {3, 2};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 2, 3));
  ck_ok(nnkit_net_add_dense(net, 2));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_SIGMOID));
  ck_ok(nnkit_net_set_loss(net, NNKIT_LOSS_MSE));
  /* never initialized: save draws the parameters first */
  nnkit_net *back = save_load(net, "mse.safetensors");
  assert_same_net(net, back);
  nnkit_net_free(net);
  nnkit_net_free(back);
}
END_TEST

/* Every normalizer kind: fitted on 30 samples of [2, 2, 2], saved with a
 * net taking its output, loaded back: same arrays, settings and output. */
START_TEST(roundtrip_every_normalizer_kind)
{
  size_t shape[3] = {2, 2, 2}, n = 30;
  float x[30 * 8];
  int32_t y[30];
  tu_fill_uniform(x, n * 8, 3, -1, 3);
  for (size_t i = 0; i < n; i++) {
    x[8 * i + 1] = 0.5f * x[8 * i] + 0.1f * x[8 * i + 1];
    y[i] = (int32_t)(i % 2);
  }
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, n, shape, 3, 2));
  for (int kind = NNKIT_NORM_MEAN_IMAGE; kind <= NNKIT_NORM_ZCA_WHITEN; kind++) {
    nnkit_normalizer *nz = NULL, *nz2 = NULL;
    ck_ok(nnkit_normalizer_create(&nz, (nnkit_norm_kind)kind));
    if (kind == NNKIT_NORM_CHANNEL_MEAN)
      ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_WITH_STD, 1));
    if (kind == NNKIT_NORM_PCA || kind == NNKIT_NORM_PCA_WHITEN)
      ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_VARIANCE, 0.9));
    if (kind == NNKIT_NORM_ZCA_WHITEN)
      ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_EPSILON, 0.01));
    ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_FIT_SAMPLES, 20));
    ck_ok(nnkit_normalizer_fit(nz, ds));
    size_t out = nnkit_normalizer_out_size(nz);
    nnkit_net *net = NULL, *back = NULL;
    ck_ok(nnkit_net_create(&net, &out, 1, 1));
    ck_ok(nnkit_net_add_dense(net, 2));
    char path[512];
    tu_tmp_path(path, sizeof path, "norm.safetensors");
    ck_ok(nnkit_net_save(net, nz, path));
    ck_ok(nnkit_net_load(&back, &nz2, path));
    ck_assert_ptr_nonnull(nz2);
    ck_assert_int_eq(nnkit_normalizer_kind(nz2), kind);
    ck_assert_uint_eq(nnkit_normalizer_in_size(nz2), 8);
    ck_assert_uint_eq(nnkit_normalizer_out_size(nz2), out);
    size_t dims[4], nd;
    ck_ok(nnkit_normalizer_shape(dims, 4, &nd, nz2));
    ck_assert_uint_eq(nd, 3);
    for (int key = NNKIT_NORM_WITH_STD; key <= NNKIT_NORM_SEED; key++) {
      double a, b;
      nnkit_status sa = nnkit_normalizer_get(&a, nz, (nnkit_norm_param)key);
      nnkit_status sb = nnkit_normalizer_get(&b, nz2, (nnkit_norm_param)key);
      ck_assert_int_eq(sa, sb);
      if (sa == NNKIT_OK)
        ck_assert_msg(a == b, "kind %d key %d: %g != %g", kind, key, a, b);
    }
    float ya[30 * 8], yb[30 * 8];
    ck_ok(nnkit_normalizer_transform(nz, x, ya, n));
    ck_ok(nnkit_normalizer_transform(nz2, x, yb, n));
    ck_assert_msg(memcmp(ya, yb, n * out * sizeof(float)) == 0, "kind %d", kind);
    /* nz_out NULL: the normalizer is validated, then dropped */
    nnkit_net_free(back);
    ck_ok(nnkit_net_load(&back, NULL, path));
    nnkit_net_free(back);
    unlink(path);
    nnkit_net_free(net);
    nnkit_normalizer_free(nz);
    nnkit_normalizer_free(nz2);
  }
  nnkit_dataset_free(ds);
}
END_TEST

/* ---- the file is a safetensors file ----------------------------------- */

START_TEST(file_is_safetensors)
{
  nnkit_net *net = make_mlp();
  char path[512];
  tu_tmp_path(path, sizeof path, "layout.safetensors");
  ck_ok(nnkit_net_save(net, NULL, path));
  size_t len;
  unsigned char *b = read_all(path, &len);
  uint64_t hlen = 0;
  for (int i = 0; i < 8; i++)
    hlen |= (uint64_t)b[i] << (8 * i);
  ck_assert_uint_eq(hlen % 8, 0);
  ck_assert(8 + hlen <= len);
  ck_assert_int_eq(b[8], '{');
  char *text = malloc(hlen + 1);
  memcpy(text, b + 8, hlen);
  text[hlen] = 0;
  cJSON *h = cJSON_Parse(text);
  ck_assert_ptr_nonnull(h);
  cJSON *meta = cJSON_GetObjectItem(h, "__metadata__");
  ck_assert_str_eq(cJSON_GetObjectItem(meta, "format")->valuestring, "nnkit");
  ck_assert_str_eq(cJSON_GetObjectItem(meta, "format_version")->valuestring, "2");
  char want_crc[9];
  snprintf(want_crc, sizeof want_crc, "%08x", (unsigned)file_crc(b, len));
  ck_assert_str_eq(cJSON_GetObjectItem(meta, "crc32")->valuestring, want_crc);
  ck_assert_ptr_null(cJSON_GetObjectItem(meta, "class_names"));
  ck_assert_ptr_null(cJSON_GetObjectItem(meta, "normalizer"));
  ck_assert_str_eq(cJSON_GetObjectItem(meta, "nnkit_version")->valuestring,
                   nnkit_version());
  ck_assert_str_eq(cJSON_GetObjectItem(meta, "input_shape")->valuestring, "[4]");
  ck_assert_str_eq(cJSON_GetObjectItem(meta, "loss")->valuestring,
                   "softmax_cross_entropy");
  cJSON *m;
  cJSON_ArrayForEach(m, meta) ck_assert(cJSON_IsString(m));
  cJSON *arch = cJSON_Parse(cJSON_GetObjectItem(meta, "architecture")->valuestring);
  ck_assert_int_eq(cJSON_GetArraySize(arch), 5);
  cJSON *l0 = cJSON_GetArrayItem(arch, 0), *l3 = cJSON_GetArrayItem(arch, 3);
  ck_assert_str_eq(cJSON_GetObjectItem(l0, "kind")->valuestring, "dense");
  ck_assert_int_eq(cJSON_GetObjectItem(l0, "units")->valueint, 8);
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(l0, "trainable")));
  ck_assert_int_eq(cJSON_GetObjectItem(l3, "activation")->valueint,
                   NNKIT_ACT_LEAKY_RELU);
  ck_assert(cJSON_GetObjectItem(l3, "slope")->valuedouble == (double)0.2f);
  cJSON_Delete(arch);
  /* Tensors: F32, PyTorch shapes, offsets tile the data in order. */
  const char *names[] = {"layers.0.weight", "layers.0.bias", "layers.2.weight",
                         "layers.2.bias", "layers.4.weight", "layers.4.bias"};
  const int shapes[6][2] = {{8, 4}, {8, 0}, {6, 8}, {6, 0}, {3, 6}, {3, 0}};
  const float *params = nnkit_net_params(net);
  size_t at = 0;
  for (int i = 0; i < 6; i++) {
    cJSON *t = cJSON_GetObjectItem(h, names[i]);
    ck_assert_msg(t != NULL, "%s missing", names[i]);
    ck_assert_str_eq(cJSON_GetObjectItem(t, "dtype")->valuestring, "F32");
    cJSON *sh = cJSON_GetObjectItem(t, "shape");
    ck_assert_int_eq(cJSON_GetArraySize(sh), shapes[i][1] ? 2 : 1);
    ck_assert_int_eq(cJSON_GetArrayItem(sh, 0)->valueint, shapes[i][0]);
    size_t count = (size_t)shapes[i][0] * (shapes[i][1] ? (size_t)shapes[i][1] : 1);
    cJSON *of = cJSON_GetObjectItem(t, "data_offsets");
    ck_assert_uint_eq((size_t)cJSON_GetArrayItem(of, 0)->valuedouble, at);
    ck_assert_uint_eq((size_t)cJSON_GetArrayItem(of, 1)->valuedouble, at + 4 * count);
    /* bytes are the parameters, little-endian float32 */
    for (size_t k = 0; k < count; k++) {
      const unsigned char *p = b + 8 + hlen + at + 4 * k;
      uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                   (uint32_t)p[3] << 24;
      float f;
      memcpy(&f, &u, 4);
      ck_assert(f == params[at / 4 + k]);
    }
    at += 4 * count;
  }
  ck_assert_uint_eq(8 + hlen + at, len);
  ck_assert_int_eq(cJSON_GetArraySize(h), 7);
  cJSON_Delete(h);
  free(text);
  free(b);
  unlink(path);
  nnkit_net_free(net);
}
END_TEST

/* ---- bad files -------------------------------------------------------- */

/* A small model file's bytes (dense 2 -> 3 with batch norm). */
static unsigned char *small_file(size_t *len, int with_normalizer)
{
  size_t shape[1] = {2};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 1, 1));
  ck_ok(nnkit_net_add_dense(net, 3));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  nnkit_normalizer *nz = NULL;
  nnkit_dataset *ds = NULL;
  if (with_normalizer) {
    float x[8] = {0, 1, 2, 3, 4, 5, 7, 6};
    int32_t y[4] = {0, 1, 0, 1};
    ck_ok(nnkit_dataset_from_buffers(&ds, x, y, 4, shape, 1, 2));
    ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_STANDARDIZE));
    ck_ok(nnkit_normalizer_fit(nz, ds));
    const char *names[3] = {"a", "b", "c"};
    ck_ok(nnkit_net_set_class_names(net, names, 3));
  }
  char path[512];
  tu_tmp_path(path, sizeof path, "small.safetensors");
  ck_ok(nnkit_net_save(net, nz, path));
  unsigned char *b = read_all(path, len);
  unlink(path);
  nnkit_net_free(net);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(ds);
  return b;
}

static void load_fails(const void *bytes, size_t len, nnkit_status want,
                       const char *needle)
{
  char path[512];
  tu_tmp_path(path, sizeof path, "bad.safetensors");
  write_all(path, bytes, len);
  nnkit_net *net = (nnkit_net *)1;
  nnkit_normalizer *nz = (nnkit_normalizer *)1;
  ck_fails(nnkit_net_load(&net, &nz, path), want, needle);
  ck_assert_ptr_null(net);
  ck_assert_ptr_null(nz);
  ck_assert_msg(strstr(nnkit_last_error(), path) != NULL, "no file name in '%s'",
                nnkit_last_error());
  unlink(path);
}

START_TEST(every_truncation_fails_cleanly)
{
  for (int with_nz = 0; with_nz <= 1; with_nz++) {
    size_t len;
    unsigned char *b = small_file(&len, with_nz);
    for (size_t n = 0; n < len; n++)
      load_fails(b, n, NNKIT_E_FORMAT, "");
    /* one byte too many is not a model file either: the checksum says so,
     * and with a checksum to match, the tensors' extent */
    unsigned char *more = malloc(len + 1);
    memcpy(more, b, len);
    more[len] = 0;
    load_fails(more, len + 1, NNKIT_E_FORMAT, "checksum mismatch");
    fix_crc(more, len + 1);
    load_fails(more, len + 1, NNKIT_E_FORMAT, "cover");
    free(more);
    free(b);
  }
}
END_TEST

/* Rewrites the header of a small file with edit() and returns the new
 * bytes (data unchanged), with the checksum made right again. */
static unsigned char *edited(size_t *len_out, void (*edit)(cJSON *h))
{
  size_t len;
  unsigned char *b = small_file(&len, 1);
  uint64_t hlen = 0;
  for (int i = 0; i < 8; i++)
    hlen |= (uint64_t)b[i] << (8 * i);
  char *text = malloc(hlen + 1);
  memcpy(text, b + 8, hlen);
  text[hlen] = 0;
  cJSON *h = cJSON_Parse(text);
  ck_assert_ptr_nonnull(h);
  edit(h);
  char *nt = cJSON_PrintUnformatted(h);
  size_t nl = strlen(nt), data = len - 8 - hlen;
  unsigned char *out = malloc(8 + nl + data);
  for (int i = 0; i < 8; i++)
    out[i] = (unsigned char)((uint64_t)nl >> (8 * i));
  memcpy(out + 8, nt, nl);
  memcpy(out + 8 + nl, b + 8 + hlen, data);
  *len_out = 8 + nl + data;
  /* a well-formed checksum is made right (the edits that spoil it keep
   * theirs) */
  cJSON *crc = cJSON_GetObjectItem(cJSON_GetObjectItem(h, "__metadata__"), "crc32");
  if (crc && strspn(crc->valuestring, "0123456789abcdef") == 8)
    fix_crc(out, *len_out);
  free(nt);
  cJSON_Delete(h);
  free(text);
  free(b);
  return out;
}

static void edit_meta(cJSON *h, const char *key, const char *value)
{
  cJSON *meta = cJSON_GetObjectItem(h, "__metadata__");
  cJSON_ReplaceItemInObject(meta, key, cJSON_CreateString(value));
}

/* Replaces meta[key] (a JSON string) by the result of edit on its JSON. */
static void edit_meta_json(cJSON *h, const char *key, void (*edit)(cJSON *))
{
  cJSON *meta = cJSON_GetObjectItem(h, "__metadata__");
  cJSON *j = cJSON_Parse(cJSON_GetObjectItem(meta, key)->valuestring);
  edit(j);
  char *s = cJSON_PrintUnformatted(j);
  edit_meta(h, key, s);
  free(s);
  cJSON_Delete(j);
}

static void wrong_dtype(cJSON *h)
{
  cJSON *t = cJSON_GetObjectItem(h, "layers.0.bias");
  cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("F64"));
}
static void units_9(cJSON *arch)
{
  cJSON_ReplaceItemInObject(cJSON_GetArrayItem(arch, 0), "units", cJSON_CreateNumber(9));
}
static void arch_units(cJSON *h) { edit_meta_json(h, "architecture", units_9); }
static void kind_unknown(cJSON *arch)
{
  cJSON_ReplaceItemInObject(cJSON_GetArrayItem(arch, 1), "kind",
                            cJSON_CreateString("transformer"));
}
static void arch_kind(cJSON *h) { edit_meta_json(h, "architecture", kind_unknown); }
static void units_frac(cJSON *arch)
{
  cJSON_ReplaceItemInObject(cJSON_GetArrayItem(arch, 0), "units",
                            cJSON_CreateNumber(2.5));
}
static void arch_frac(cJSON *h) { edit_meta_json(h, "architecture", units_frac); }
static void momentum_bad(cJSON *arch)
{
  cJSON_ReplaceItemInObject(cJSON_GetArrayItem(arch, 1), "momentum",
                            cJSON_CreateNumber(7));
}
static void arch_momentum(cJSON *h) { edit_meta_json(h, "architecture", momentum_bad); }
static void overlap(cJSON *h)
{
  cJSON *of = cJSON_GetObjectItem(cJSON_GetObjectItem(h, "layers.0.bias"),
                                  "data_offsets");
  double b = cJSON_GetArrayItem(of, 0)->valuedouble;
  cJSON_ReplaceItemInArray(of, 0, cJSON_CreateNumber(b - 4));
  cJSON_ReplaceItemInArray(of, 1, cJSON_CreateNumber(b + 8));
}
static void version_3(cJSON *h) { edit_meta(h, "format_version", "3"); }
static void not_nnkit(cJSON *h) { edit_meta(h, "format", "other"); }
static void arch_garbage(cJSON *h) { edit_meta(h, "architecture", "[{\"kind\":"); }
static void drop_tensor(cJSON *h) { cJSON_DeleteItemFromObject(h, "layers.1.running_var"); }
static void extra_tensor(cJSON *h)
{
  cJSON *t = cJSON_Duplicate(cJSON_GetObjectItem(h, "layers.0.bias"), 1);
  cJSON_AddItemToObject(h, "layers.7.weight", t);
}
static void shape_bytes(cJSON *h)
{
  cJSON *sh = cJSON_GetObjectItem(cJSON_GetObjectItem(h, "layers.0.bias"), "shape");
  cJSON_ReplaceItemInArray(sh, 0, cJSON_CreateNumber(4));
}
static void norm_kind(cJSON *n)
{
  cJSON_ReplaceItemInObject(n, "kind", cJSON_CreateString("whitening"));
}
static void bad_norm(cJSON *h) { edit_meta_json(h, "normalizer", norm_kind); }
static void nan_weight(cJSON *h) { (void)h; }
static void two_names(cJSON *h) { edit_meta(h, "class_names", "[\"a\", \"b\"]"); }
static void number_name(cJSON *h) { edit_meta(h, "class_names", "[\"a\", 1, \"c\"]"); }
static void no_crc(cJSON *h)
{
  cJSON_DeleteItemFromObject(cJSON_GetObjectItem(h, "__metadata__"), "crc32");
}
static void bad_crc(cJSON *h) { edit_meta(h, "crc32", "12AB34cd"); }

START_TEST(corrupt_headers_fail_with_a_sentence)
{
  static const struct {
    void (*edit)(cJSON *);
    const char *needle;
  } cases[] = {
    {wrong_dtype, "tensor layers.0.bias has dtype F64"},
    {arch_units, "tensor layers.0.weight has shape [3, 2] but the architecture's "
                 "dense layer 0 needs [9, 2]"},
    {arch_kind, "unknown kind \"transformer\""},
    {arch_frac, "\"units\", a whole number"},
    {arch_momentum, "layer 1: batchnorm (layer 1): momentum 7 is outside"},
    {overlap, "must not overlap"},
    {version_3, "format version 3"},
    {not_nnkit, "not an nnkit model file"},
    {arch_garbage, "\"architecture\" is not valid JSON"},
    {drop_tensor, "leave gaps"},
    {extra_tensor, "layers.7.weight"},
    {shape_bytes, "has shape [4] but 12 bytes"},
    {bad_norm, "normalizer has an unknown \"kind\""},
    {two_names, "\"class_names\" must be an array of 3 strings"},
    {number_name, "class name 1 in the metadata is not a string"},
    {no_crc, "lacks \"crc32\""},
    {bad_crc, "must be 8 lowercase hex digits"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t len;
    unsigned char *b = edited(&len, cases[i].edit);
    load_fails(b, len, NNKIT_E_FORMAT, cases[i].needle);
    free(b);
  }
  /* the unedited rewrite loads: the cases fail for their edit only */
  size_t len;
  unsigned char *b = edited(&len, nan_weight);
  char path[512];
  tu_tmp_path(path, sizeof path, "ok.safetensors");
  write_all(path, b, len);
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_load(&net, NULL, path));
  nnkit_net_free(net);
  unlink(path);
  /* a NaN in the data */
  uint64_t hlen = 0;
  for (int i = 0; i < 8; i++)
    hlen |= (uint64_t)b[i] << (8 * i);
  float nan = NAN;
  memcpy(b + 8 + hlen + 4, &nan, 4);
  load_fails(b, len, NNKIT_E_FORMAT, "checksum mismatch");
  fix_crc(b, len);
  load_fails(b, len, NNKIT_E_FORMAT, "NaN");
  /* header length larger than the file; garbage JSON; trailing bytes */
  b[0] = 0xff;
  b[1] = 0xff;
  load_fails(b, len, NNKIT_E_FORMAT, "the header claims");
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(hlen >> (8 * i));
  b[8] = '[';
  load_fails(b, len, NNKIT_E_FORMAT, "not valid JSON");
  free(b);
  const char junk[] = "\x10\0\0\0\0\0\0\0{\"a\": 1}   xxxxx";
  load_fails(junk, sizeof junk - 1, NNKIT_E_FORMAT, "bytes after its JSON");
  const char arr[] = "\x08\0\0\0\0\0\0\0[1]     ";
  load_fails(arr, sizeof arr - 1, NNKIT_E_FORMAT, "not a JSON object");
  const char nometa[] = "\x08\0\0\0\0\0\0\0{}      ";
  load_fails(nometa, sizeof nometa - 1, NNKIT_E_FORMAT, "__metadata__");
}
END_TEST

/* ---- preprocessing and labels the file keeps -------------------------- */

/* A net trained on normalized samples, saved with its normalizer and
 * loaded back, predicts raw samples exactly as the saved net predicts the
 * normalized ones: predict, predict_proba and evaluate, bit for bit, over
 * more than one chunk of 256 samples; saving the loaded net again (nz
 * NULL: its own normalizer) keeps that. A standardizing CNN and a PCA MLP
 * (the normalizer changes the sample size). */
START_TEST(loaded_net_predicts_raw_input_like_the_saved_net)
{
  for (int pca = 0; pca <= 1; pca++) {
    nnkit_net *net = pca ? make_mlp() : make_cnn();
    size_t raw_shape[3] = {2, 7, 7}, raw_nd = 3;
    if (pca) {
      raw_shape[0] = 6;
      raw_nd = 1;
    }
    size_t in = pca ? 6 : 98, n = 300, outw = nnkit_net_output_size(net);
    float *x = malloc(n * in * sizeof *x);
    int32_t *y = malloc(n * sizeof *y);
    tu_fill_uniform(x, n * in, 40 + pca, 50, 250); /* far from normalized */
    for (size_t i = 0; i < n; i++) {
      y[i] = (int32_t)(i % outw);
      x[i * in + 1] += 30.0f * (float)y[i];
    }
    nnkit_dataset *raw = NULL, *norm = NULL;
    ck_ok(nnkit_dataset_from_buffers(&raw, x, y, n, raw_shape, raw_nd, (uint32_t)outw));
    nnkit_normalizer *nz = NULL;
    ck_ok(nnkit_normalizer_create(&nz, pca ? NNKIT_NORM_PCA : NNKIT_NORM_STANDARDIZE));
    if (pca)
      ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 4));
    ck_ok(nnkit_normalizer_fit(nz, raw));
    ck_assert_uint_eq(nnkit_normalizer_out_size(nz), nnkit_net_input_size(net));
    ck_ok(nnkit_dataset_from_buffers(&norm, x, y, n, raw_shape, raw_nd,
                                     (uint32_t)outw));
    ck_ok(nnkit_normalizer_apply(nz, norm));
    const float *z = nnkit_dataset_data(norm);
    char path[512];
    tu_tmp_path(path, sizeof path, "raw.safetensors");
    ck_ok(nnkit_net_save(net, nz, path));
    nnkit_net *back = NULL;
    ck_ok(nnkit_net_load(&back, NULL, path));
    ck_assert_ptr_nonnull(nnkit_net_normalizer(back));
    ck_assert_ptr_null(nnkit_net_normalizer(net));
    for (int round = 0; round < 2; round++) {
      float *pa = malloc(n * outw * sizeof *pa), *pb = malloc(n * outw * sizeof *pb);
      int32_t *ca = malloc(n * sizeof *ca), *cb = malloc(n * sizeof *cb);
      ck_ok(nnkit_net_predict_proba(pa, n * outw, net, z, n));
      ck_ok(nnkit_net_predict_proba(pb, n * outw, back, x, n));
      ck_assert(memcmp(pa, pb, n * outw * sizeof *pa) == 0);
      ck_ok(nnkit_net_predict(ca, net, z, n));
      ck_ok(nnkit_net_predict(cb, back, x, n));
      ck_assert(memcmp(ca, cb, n * sizeof *ca) == 0);
      double la, aa, lb, ab;
      ck_ok(nnkit_net_evaluate(&la, &aa, net, norm));
      ck_ok(nnkit_net_evaluate(&lb, &ab, back, raw));
      ck_assert(la == lb && aa == ab);
      /* the raw-input calls want raw samples (here of another size) */
      if (pca)
        ck_fails(nnkit_net_evaluate(&lb, &ab, back, norm), NNKIT_E_SHAPE,
                 "samples have 4 values, the net's normalizer takes 6");
      free(pa);
      free(pb);
      free(ca);
      free(cb);
      /* round 2: the loaded net saved with its own normalizer */
      ck_ok(nnkit_net_save(back, NULL, path));
      nnkit_net_free(back);
      ck_ok(nnkit_net_load(&back, NULL, path));
    }
    unlink(path);
    nnkit_net_free(back);
    nnkit_normalizer_free(nz);
    nnkit_dataset_free(raw);
    nnkit_dataset_free(norm);
    free(x);
    free(y);
    nnkit_net_free(net);
  }
}
END_TEST

/* Class names round-trip (JSON escapes and UTF-8 included); a net whose
 * names no longer match its outputs is not saved. */
START_TEST(class_names_round_trip)
{
  nnkit_net *net = make_mlp();
  const char *names[3] = {"setosa", "versi\"color\"\\", "virgínica"};
  ck_ok(nnkit_net_set_class_names(net, names, 3));
  nnkit_net *back = save_load(net, "names.safetensors");
  for (size_t i = 0; i < 3; i++)
    ck_assert_str_eq(nnkit_net_class_name(back, i), names[i]);
  ck_assert_ptr_null(nnkit_net_class_name(back, 3));
  /* no names: none come back */
  ck_ok(nnkit_net_set_class_names(back, NULL, 0));
  ck_assert_ptr_null(nnkit_net_class_name(back, 0));
  nnkit_net *again = save_load(back, "names.safetensors");
  ck_assert_ptr_null(nnkit_net_class_name(again, 0));
  /* a layer that changes the output size: the names no longer fit */
  ck_ok(nnkit_net_add_dense(net, 5));
  char path[512];
  tu_tmp_path(path, sizeof path, "names.safetensors");
  ck_fails(nnkit_net_save(net, NULL, path), NNKIT_E_STATE, "3 class names but 5 outputs");
  ck_assert_int_eq(access(path, F_OK), -1);
  nnkit_net_free(again);
  nnkit_net_free(back);
  nnkit_net_free(net);
}
END_TEST

/* The checksum covers every byte: each byte of a small file inverted, and
 * each header byte with one bit flipped, is refused with NNKIT_E_FORMAT
 * (in the data: "checksum mismatch"). A file of format version 1 (no
 * checksum) still loads; one of version 2 without it does not. */
START_TEST(every_flipped_byte_is_refused)
{
  size_t len;
  unsigned char *b = small_file(&len, 1);
  uint64_t hlen = 0;
  for (int i = 0; i < 8; i++)
    hlen |= (uint64_t)b[i] << (8 * i);
  unsigned char *c = malloc(len);
  for (size_t i = 0; i < len; i++) {
    memcpy(c, b, len);
    c[i] ^= 0xff;
    load_fails(c, len, NNKIT_E_FORMAT, i >= 8 + hlen ? "checksum mismatch" : "");
  }
  for (size_t i = 8; i < 8 + hlen; i++) {
    memcpy(c, b, len);
    c[i] ^= (unsigned char)(1u << (i % 8));
    load_fails(c, len, NNKIT_E_FORMAT, "");
  }
  /* the unflipped bytes load */
  char path[512];
  tu_tmp_path(path, sizeof path, "flip.safetensors");
  write_all(path, b, len);
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_load(&net, NULL, path));
  nnkit_net_free(net);
  unlink(path);
  free(c);
  free(b);
}
END_TEST

static void version_1_no_crc(cJSON *h)
{
  no_crc(h);
  edit_meta(h, "format_version", "1");
}

START_TEST(files_of_version_1_need_no_checksum)
{
  size_t len;
  unsigned char *b = edited(&len, version_1_no_crc);
  char path[512];
  tu_tmp_path(path, sizeof path, "v1.safetensors");
  write_all(path, b, len);
  nnkit_net *net = NULL;
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_net_load(&net, &nz, path));
  ck_assert_ptr_nonnull(nz);
  ck_assert_ptr_nonnull(nnkit_net_normalizer(net));
  nnkit_normalizer_free(nz);
  nnkit_net_free(net);
  unlink(path);
  free(b);
}
END_TEST

START_TEST(missing_file_and_null_arguments)
{
  nnkit_net *net = (nnkit_net *)1;
  char path[512];
  tu_tmp_path(path, sizeof path, "absent.safetensors");
  ck_fails(nnkit_net_load(&net, NULL, path), NNKIT_E_IO, "absent.safetensors");
  ck_assert_ptr_null(net);
  ck_fails(nnkit_net_load(&net, NULL, NNKIT_TEST_TMPDIR), NNKIT_E_IO, "");
  ck_fails(nnkit_net_load(NULL, NULL, path), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_net_load(&net, NULL, NULL), NNKIT_E_INVALID, "NULL");
  nnkit_net *mlp = make_mlp();
  ck_fails(nnkit_net_save(NULL, NULL, path), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_net_save(mlp, NULL, NULL), NNKIT_E_INVALID, "NULL");
  size_t in = 4;
  nnkit_net *empty = NULL;
  ck_ok(nnkit_net_create(&empty, &in, 1, 1));
  ck_fails(nnkit_net_save(empty, NULL, path), NNKIT_E_INVALID, "no layers");
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_STANDARDIZE));
  ck_fails(nnkit_net_save(mlp, nz, path), NNKIT_E_STATE, "not fitted");
  float x[6] = {1, 2, 3, 4, 5, 6};
  int32_t y[2] = {0, 1};
  size_t three = 3;
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, 2, &three, 1, 2));
  ck_ok(nnkit_normalizer_fit(nz, ds));
  ck_fails(nnkit_net_save(mlp, nz, path), NNKIT_E_SHAPE, "3 values per sample");
  ck_assert_int_eq(access(path, F_OK), -1);
  nnkit_dataset_free(ds);
  nnkit_normalizer_free(nz);
  nnkit_net_free(empty);
  nnkit_net_free(mlp);
}
END_TEST

/* A FIFO with no writer: opening it for reading would block forever. */
START_TEST(load_from_a_fifo_fails_promptly)
{
  char path[512];
  tu_tmp_path(path, sizeof path, "fifo.safetensors");
  unlink(path);
  ck_assert_int_eq(mkfifo(path, 0600), 0);
  alarm(10); /* a hang becomes a failure (SIGALRM) */
  nnkit_net *net = (nnkit_net *)1;
  ck_fails(nnkit_net_load(&net, NULL, path), NNKIT_E_IO, "is a FIFO");
  ck_fails(nnkit_net_load(&net, NULL, path), NNKIT_E_IO, path);
  alarm(0);
  ck_assert_ptr_null(net);
  unlink(path);
}
END_TEST

/* Saves keep an existing file's mode, honour the umask for a new one,
 * write through a symbolic link and remove temporaries a killed save left. */
START_TEST(save_keeps_mode_follows_links_and_cleans_temporaries)
{
  nnkit_net *net = make_mlp();
  char path[512], link[512], stale[600];
  tu_tmp_path(path, sizeof path, "perm.safetensors");
  tu_tmp_path(link, sizeof link, "perm_link.safetensors");
  mode_t old = umask(077);
  ck_ok(nnkit_net_save(net, NULL, path));
  struct stat sb;
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 07777, 0600);
  umask(022);
  ck_ok(nnkit_net_save(net, NULL, path)); /* stays 0600, not 0644 */
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 07777, 0600);
  umask(old);
  ck_assert_int_eq(symlink(path, link), 0);
  snprintf(stale, sizeof stale, "%s.tmp.k1LLed", path);
  write_all(stale, "half a file", 11);
  ck_ok(nnkit_net_save(net, NULL, link));
  ck_assert_int_eq(lstat(link, &sb), 0);
  ck_assert(S_ISLNK(sb.st_mode));
  ck_assert_int_eq(lstat(path, &sb), 0);
  ck_assert(S_ISREG(sb.st_mode));
  ck_assert_int_eq(sb.st_mode & 07777, 0600);
  ck_assert_int_eq(access(stale, F_OK), -1);
  ck_assert_int_eq(leftover_tmp(path), 0);
  ck_assert_int_eq(leftover_tmp(link), 0);
  nnkit_net *back = NULL;
  ck_ok(nnkit_net_load(&back, NULL, link));
  assert_same_net(net, back);
  nnkit_net_free(back);
  unlink(link);
  unlink(path);
  nnkit_net_free(net);
}
END_TEST

/* ---- bad JSON or no memory (lib/io/safetensors.c) ---------------------- */

/* cJSON returns NULL for both; nnkit answers NNKIT_E_NOMEM only when its
 * non-allocating validator accepts the text, which must therefore accept
 * nothing cJSON refuses (given memory). */
static void json_case(const char *text, size_t len, int valid)
{
  ck_assert_msg(nnkit__json_valid(text, len) == valid, "validator on '%.*s': %d",
                (int)(len > 80 ? 80 : len), text, !valid);
  cJSON *j = cJSON_ParseWithLengthOpts(text, len, NULL, 0);
  if (valid)
    ck_assert_msg(j != NULL, "cJSON refuses '%.*s'", (int)(len > 80 ? 80 : len), text);
  cJSON_Delete(j);
  nnkit_status st = nnkit__json_parse_failed("f", text, len, "the header");
  ck_assert_int_eq(st, valid ? NNKIT_E_NOMEM : NNKIT_E_FORMAT);
  ck_assert_ptr_nonnull(strstr(nnkit_last_error(), valid ? "out of memory" : "not valid JSON"));
}

START_TEST(json_failures_tell_memory_from_bad_text)
{
  static const char *const good[] = {
    "{}", " [ ] ", "null", "true", "false", "0", "-0.5e+3", "\"\"",
    "{\"a\":[1,2,{\"b\":\"c\\\"\\\\\\/\\b\\f\\n\\r\\t\"}]}",
    "\"\\u00e9\\ud83d\\ude00\"", "{\"__metadata__\":{\"x\":\"1\"}}   ",
    "[1] trailing bytes are the caller's", "123456789012345678901234567890",
  };
  static const char *const bad[] = {
    "", " ", "{", "[1,]", "{\"a\"}", "{\"a\":}", "{1:2}", "nul", "tru", "01x",
    "-", "1.", "1e", ".5", "+1", "\"abc", "\"\\x\"", "\"\\u12\"",
    "\"\\udc00\"", "\"\\ud800\"", "\"\\ud800\\u0041\"", "\"a\tb\"", "\x01[]",
    "\xef\xbb\xbf{}", "[1 2]", "{\"a\":1,}", "'a'",
  };
  for (size_t i = 0; i < sizeof good / sizeof *good; i++)
    json_case(good[i], strlen(good[i]), 1);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    json_case(bad[i], strlen(bad[i]), 0);
  /* cJSON's limits: 63 characters a number, nesting below 1000. */
  char num[80];
  memset(num, '1', 64);
  json_case(num, 64, 0);
  json_case(num, 63, 1);
  char *deep = malloc(2000);
  ck_assert_ptr_nonnull(deep);
  memset(deep, '[', 999);
  memset(deep + 999, ']', 999);
  json_case(deep, 1998, 1);
  memset(deep, '[', 1000);
  memset(deep + 1000, ']', 1000);
  json_case(deep, 2000, 0);
  free(deep);
  /* A real header, each byte replaced by three values and each length:
   * whatever the validator accepts, cJSON parses. */
  size_t len;
  unsigned char *b = small_file(&len, 1);
  size_t hlen = 0;
  for (int k = 0; k < 8; k++)
    hlen |= (size_t)b[k] << (8 * k);
  char *h = malloc(hlen);
  ck_assert_ptr_nonnull(h);
  size_t accepted = 0;
  for (size_t i = 0; i <= hlen; i++) {
    for (int v = 0; v < 4; v++) {
      memcpy(h, b + 8, hlen);
      size_t n = hlen;
      if (i == hlen)
        n = v == 0 ? hlen : (size_t)v * hlen / 4; /* truncations */
      else
        h[i] = (char)"\0\"}9"[v];
      int ok = nnkit__json_valid(h, n);
      cJSON *j = cJSON_ParseWithLengthOpts(h, n, NULL, 0);
      ck_assert_msg(!ok || j, "byte %zu -> %d: the validator accepts what cJSON refuses", i, v);
      accepted += (size_t)ok;
      cJSON_Delete(j);
    }
  }
  for (size_t n = 0; n < hlen; n++) {
    int ok = nnkit__json_valid((const char *)b + 8, n);
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)b + 8, n, NULL, 0);
    ck_assert_msg(!ok || j, "length %zu: the validator accepts what cJSON refuses", n);
    cJSON_Delete(j);
  }
  ck_assert_uint_gt(accepted, hlen); /* many edits stay valid JSON */
  free(h);
  free(b);
}
END_TEST

/* ---- resource bombs: a small file declaring a huge net ----------------- */

static void units_2_24(cJSON *arch)
{
  cJSON_ReplaceItemInObject(cJSON_GetArrayItem(arch, 0), "units",
                            cJSON_CreateNumber(16777216.0));
}
static void units_2_20(cJSON *arch)
{
  cJSON_ReplaceItemInObject(cJSON_GetArrayItem(arch, 0), "units",
                            cJSON_CreateNumber(1048576.0));
}
static void bomb_huge(cJSON *h)
{
  edit_meta(h, "input_shape", "[16]"); /* 2^24 x 16: 2^28 weights, 1 GB */
  edit_meta_json(h, "architecture", units_2_24);
}
static void bomb_large(cJSON *h) { edit_meta_json(h, "architecture", units_2_20); }


START_TEST(small_files_declaring_huge_nets_fail_before_allocating)
{
  static const struct {
    void (*edit)(cJSON *);
    const char *needle;
  } cases[] = {
    {bomb_huge, "the architecture's dense layer 0 declares 285212672 parameters, "
                "more than the whole"},
    {bomb_large, "the architecture's dense layer 0 declares 3145728 parameters, "
                 "more than the whole"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    size_t len;
    unsigned char *b = edited(&len, cases[c].edit);
    ck_assert_uint_lt(len, 4096);
    char path[512];
    tu_tmp_path(path, sizeof path, "bomb.safetensors");
    write_all(path, b, len);
    free(b);
    nnkit_net *net = (nnkit_net *)1;
    uint64_t before = nnkit__alloc_count();
    nnkit__alloc_largest(1);
    ck_fails(nnkit_net_load(&net, NULL, path), NNKIT_E_FORMAT, cases[c].needle);
    size_t largest = nnkit__alloc_largest(0);
    uint64_t allocs = nnkit__alloc_count() - before;
    ck_assert_ptr_null(net);
    /* Before the check the loader allocated and initialized the parameters
     * (and their gradients) first: 2 x 1 GB written for 2^28 weights (and
     * seconds of work); now nothing of that size is asked for or touched.
     * Measured as the largest request, not as time or resident memory,
     * so neither a loaded machine nor valgrind can fail it: the file is
     * 4 KiB, and nothing near the 1 GiB of weights (or the 12 MiB of the
     * smaller case) may be asked for. */
    ck_assert_msg(largest < (1u << 20), "case %zu: asked for %zu bytes at once", c,
                  largest);
    ck_assert_msg(allocs < 100, "case %zu: %llu allocations", c,
                  (unsigned long long)allocs);
    unlink(path);
  }
}
END_TEST

/* ---- failed saves ----------------------------------------------------- */

START_TEST(failed_save_leaves_nothing_and_keeps_old_file)
{
  nnkit_net *net = make_cnn();
  char path[512];
  snprintf(path, sizeof path, "%s/no_such_dir_%ld/model.safetensors",
           NNKIT_TEST_TMPDIR, (long)getpid());
  ck_fails(nnkit_net_save(net, NULL, path), NNKIT_E_IO, "no_such_dir");
  ck_assert_int_eq(access(path, F_OK), -1);
  /* An existing file survives every allocation failure, bit for bit. */
  tu_tmp_path(path, sizeof path, "keep.safetensors");
  write_all(path, "old contents", 12);
  size_t fails = 0;
  for (uint64_t n = 1;; n++) {
    nnkit__alloc_fail_after(n);
    nnkit_status st = nnkit_net_save(net, NULL, path);
    nnkit__alloc_fail_after(0);
    if (st == NNKIT_OK)
      break;
    fails++;
    ck_assert_msg(st == NNKIT_E_NOMEM || st == NNKIT_E_IO, "allocation %llu: %d (%s)",
                  (unsigned long long)n, (int)st, nnkit_last_error());
    size_t len;
    unsigned char *b = read_all(path, &len);
    ck_assert_uint_eq(len, 12);
    ck_assert(memcmp(b, "old contents", 12) == 0);
    free(b);
    ck_assert_int_eq(leftover_tmp(path), 0);
    ck_assert_uint_lt(n, 10000);
  }
  ck_assert_uint_gt(fails, 5);
  ck_assert_int_eq(leftover_tmp(path), 0);
  nnkit_net *back = NULL;
  ck_ok(nnkit_net_load(&back, NULL, path));
  assert_same_net(net, back);
  nnkit_net_free(back);
  unlink(path);
  nnkit_net_free(net);
}
END_TEST

/* One load for the allocation-failure sweep: a net and a normalizer, or
 * neither. */
static nnkit_status load_once(const void *path)
{
  nnkit_net *net = (nnkit_net *)1;
  nnkit_normalizer *nz = (nnkit_normalizer *)1;
  nnkit_status st = nnkit_net_load(&net, &nz, path);
  if (st != NNKIT_OK) {
    ck_assert_ptr_null(net);
    ck_assert_ptr_null(nz);
    return st;
  }
  ck_assert_ptr_nonnull(nz);
  ck_assert_ptr_nonnull(nnkit_net_normalizer(net));
  ck_assert_ptr_ne(nnkit_net_normalizer(net), nz);
  ck_assert_str_eq(nnkit_net_class_name(net, 2), "c");
  nnkit_net_free(net);
  nnkit_normalizer_free(nz);
  return st;
}

START_TEST(load_survives_every_allocation_failure)
{
  size_t len;
  unsigned char *b = small_file(&len, 1);
  char path[512];
  tu_tmp_path(path, sizeof path, "alloc.safetensors");
  write_all(path, b, len);
  free(b);
  /* Only NNKIT_E_NOMEM: a failed parse of valid JSON is memory (see
   * json_failures_tell_memory_from_bad_text). */
  uint64_t n = tu_alloc_sweep(load_once, path, "nnkit_net_load", NNKIT_OK);
  ck_assert_uint_gt(n, 10);
}
END_TEST

static Suite *io_suite(void)
{
  Suite *s = suite_create("io");
  TCase *tr = tcase_create("roundtrip");
  tcase_add_test(tr, roundtrip_mlp);
  tcase_add_test(tr, roundtrip_cnn_batchnorm_dropout);
  tcase_add_test(tr, roundtrip_layernorm);
  tcase_add_test(tr, loads_files_of_version_0_1_0);
  tcase_add_test(tr, registry_descriptors_are_complete);
  tcase_add_test(tr, roundtrip_mse_and_unbuilt_net);
  tcase_add_test(tr, conv_padding_reloads_as_requested);
  tcase_add_test(tr, roundtrip_every_normalizer_kind);
  tcase_add_test(tr, file_is_safetensors);
  tcase_add_test(tr, loaded_net_predicts_raw_input_like_the_saved_net);
  tcase_add_test(tr, class_names_round_trip);
  suite_add_tcase(s, tr);
  TCase *tb = tcase_create("bad_files");
  tcase_add_test(tb, every_truncation_fails_cleanly);
  tcase_add_test(tb, corrupt_headers_fail_with_a_sentence);
  tcase_add_test(tb, every_flipped_byte_is_refused);
  tcase_add_test(tb, files_of_version_1_need_no_checksum);
  tcase_add_test(tb, missing_file_and_null_arguments);
  tcase_add_test(tb, load_from_a_fifo_fails_promptly);
  tcase_add_test(tb, json_failures_tell_memory_from_bad_text);
  tcase_add_test(tb, small_files_declaring_huge_nets_fail_before_allocating);
  tcase_add_test(tb, save_keeps_mode_follows_links_and_cleans_temporaries);
  tcase_add_test(tb, failed_save_leaves_nothing_and_keeps_old_file);
  tcase_add_test(tb, load_survives_every_allocation_failure);
  suite_add_tcase(s, tb);
  return s;
}

int main(void) { return nnkit_test_run(io_suite()); }
