/* augment_bench: what augmentation costs per epoch once the batch pipeline
 * prepares batches in its background thread.
 *
 *   build/bench/augment_bench [--data DIR] [--epochs N] [--threads N]
 *                             [--model mlp|cnn]
 *
 * Trains on the digits training set (8,000 images, [0, 1] pixels) with the
 * public API only: nnkit_pipeline_next -> nnkit_net_forward -> backward ->
 * nnkit_optimizer_step. Epochs without and with augmentation alternate
 * (the machine's load drifts; alternating keeps the comparison fair) and
 * the median epoch time of each is compared:
 *
 *   ratio = median(epoch with augmentation) / median(epoch without)
 *
 * Target: <= 1.15 with prefetching. For reference it also times the same
 * augmented epoch with PREFETCH 0 (batches prepared in the training
 * thread), i.e. the cost prefetching hides, and how long the training
 * thread spent inside nnkit_pipeline_next (waiting for batches). --threads
 * is the math thread count (default 1, leaving a core for the pipeline
 * thread; on a machine whose cores are all busy the pipeline thread
 * competes with training and the ratio says so). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nnkit.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define TRY(call)                                                         \
  do {                                                                    \
    nnkit_status st_ = (call);                                            \
    if (st_ != NNKIT_OK) {                                                \
      fprintf(stderr, "augment_bench: %s: %s\n", #call,                   \
              nnkit_last_error());                                        \
      exit(EXIT_FAILURE);                                                 \
    }                                                                     \
  } while (0)

static nnkit_net *make_net(const nnkit_dataset *ds, int cnn)
{
  size_t shape[3] = {nnkit_dataset_dim(ds, 0), nnkit_dataset_dim(ds, 1),
                     nnkit_dataset_dim(ds, 2)};
  nnkit_net *net = NULL;
  TRY(nnkit_net_create(&net, shape, 3, 1));
  if (cnn) {
    TRY(nnkit_net_add_conv2d(net, 16, 5, 5, 1, 1, 2, 2, 1));
    TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    TRY(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
    TRY(nnkit_net_add_conv2d(net, 32, 5, 5, 1, 1, 2, 2, 1));
    TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    TRY(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
    TRY(nnkit_net_add_flatten(net));
    TRY(nnkit_net_add_dense(net, 64));
  } else {
    TRY(nnkit_net_add_dense(net, 256));
    TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    TRY(nnkit_net_add_dense(net, 128));
  }
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  TRY(nnkit_net_add_dense(net, 10));
  return net;
}

/* One epoch of training through p; returns wall seconds and adds the time
 * spent inside nnkit_pipeline_next (waiting for, or with PREFETCH 0
 * preparing, batches) to *waited. */
static double epoch(nnkit_pipeline *p, nnkit_net *net, nnkit_optimizer *opt,
                    uint64_t e, double *waited)
{
  double t0 = now();
  TRY(nnkit_pipeline_begin_epoch(p, e));
  size_t b;
  for (;;) {
    double w0 = now();
    TRY(nnkit_pipeline_next(&b, p));
    *waited += now() - w0;
    if (b == 0)
      break;
    double loss;
    TRY(nnkit_net_forward(net, nnkit_pipeline_batch_data(p), b, NULL, 0));
    TRY(nnkit_net_backward(net, nnkit_pipeline_batch_labels(p), NULL, &loss));
    TRY(nnkit_optimizer_step(opt, net));
  }
  return now() - t0;
}

int main(int argc, char **argv)
{
  const char *data = "data/digits";
  int epochs = 6, threads = 1, cnn = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: augment_bench [--data DIR] [--epochs N] [--threads N] "
             "[--model mlp|cnn]\n");
      return EXIT_SUCCESS;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "augment_bench: %s needs a value\n", argv[i]);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(argv[i - 1], "--data"))
      data = v;
    else if (!strcmp(argv[i - 1], "--epochs"))
      epochs = atoi(v);
    else if (!strcmp(argv[i - 1], "--threads"))
      threads = atoi(v);
    else if (!strcmp(argv[i - 1], "--model") && (!strcmp(v, "mlp") || !strcmp(v, "cnn")))
      cnn = !strcmp(v, "cnn");
    else {
      fprintf(stderr, "augment_bench: bad option %s %s\n", argv[i - 1], v);
      return 2;
    }
  }
  if (epochs < 1 || epochs > 1000 || threads < 0) {
    fprintf(stderr, "augment_bench: --epochs in [1, 1000], --threads >= 0\n");
    return 2;
  }
  TRY(nnkit_set_num_threads(threads));
  char img[1024], lab[1024];
  snprintf(img, sizeof img, "%s/train-images-idx3-ubyte.gz", data);
  snprintf(lab, sizeof lab, "%s/train-labels-idx1-ubyte.gz", data);
  nnkit_dataset *ds = NULL;
  TRY(nnkit_dataset_load_idx(&ds, img, lab, 10));
  TRY(nnkit_dataset_scale(ds, 1.0f / 255, 0));

  nnkit_augmenter *aug = NULL;
  TRY(nnkit_augmenter_create(&aug));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 0.8, -12, 12));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_SCALE, 0.5, 0.9, 1.1));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_SHEAR_X, 0.3, -12, 12));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_TRANSLATE, 0.8, 2.5, 2.5));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_BRIGHTNESS, 0.5, -0.1, 0.1));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_NOISE, 0.5, 0.02, 0.05));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_ERASE, 0.25, 0.02, 0.08));

  /* Three pipelines over the same data and seed. */
  nnkit_pipeline *plain = NULL, *with = NULL, *sync = NULL;
  nnkit_pipeline **ps[3] = {&plain, &with, &sync};
  for (int i = 0; i < 3; i++) {
    TRY(nnkit_pipeline_create(ps[i], ds));
    TRY(nnkit_pipeline_set(*ps[i], NNKIT_PIPE_BATCH_SIZE, 64));
    TRY(nnkit_pipeline_set(*ps[i], NNKIT_PIPE_SEED, 1));
  }
  TRY(nnkit_pipeline_set_augmenter(with, aug));
  TRY(nnkit_pipeline_set_augmenter(sync, aug));
  TRY(nnkit_pipeline_set(sync, NNKIT_PIPE_PREFETCH, 0));

  nnkit_net *net = make_net(ds, cnn);
  nnkit_optimizer *opt = NULL;
  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.01));

  printf("augment_bench: %s on %zu digits, batch 64, %d math thread(s), "
         "%d epochs each; augmenter of %zu transforms\n",
         cnn ? "CNN" : "MLP 784-256-128-10", nnkit_dataset_count(ds),
         nnkit_get_num_threads(), epochs, nnkit_augmenter_count(aug));
  double wait[3] = {0, 0, 0};
  epoch(plain, net, opt, 0, &wait[0]); /* warm-up: sizes every buffer */
  epoch(with, net, opt, 0, &wait[1]);
  epoch(sync, net, opt, 0, &wait[2]);
  wait[0] = wait[1] = wait[2] = 0;
  double *tp = malloc((size_t)epochs * sizeof *tp);
  double *tw = malloc((size_t)epochs * sizeof *tw);
  double *ts = malloc((size_t)epochs * sizeof *ts);
  if (!tp || !tw || !ts) {
    fprintf(stderr, "augment_bench: out of memory\n");
    return EXIT_FAILURE;
  }
  printf("epoch  without  with (prefetch 2)  with (prefetch 0)   seconds\n");
  for (int e = 0; e < epochs; e++) {
    tp[e] = epoch(plain, net, opt, (uint64_t)e + 1, &wait[0]);
    tw[e] = epoch(with, net, opt, (uint64_t)e + 1, &wait[1]);
    ts[e] = epoch(sync, net, opt, (uint64_t)e + 1, &wait[2]);
    printf("%5d  %7.3f  %17.3f  %17.3f\n", e + 1, tp[e], tw[e], ts[e]);
  }
  double mp = median(tp, epochs), mw = median(tw, epochs), ms = median(ts, epochs);
  printf("median epoch: %.3f s without, %.3f s with augmentation (prefetch 2), "
         "%.3f s (prefetch 0)\n", mp, mw, ms);
  printf("time per epoch inside nnkit_pipeline_next: %.4f s without, %.4f s "
         "with augmentation (prefetch 2), %.4f s (prefetch 0)\n",
         wait[0] / epochs, wait[1] / epochs, wait[2] / epochs);
  printf("ratio with/without augmentation, prefetching: %.3f (target <= 1.15)\n",
         mw / mp);
  printf("ratio with/without augmentation, no prefetching: %.3f\n", ms / mp);
  free(tp);
  free(tw);
  free(ts);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  for (int i = 0; i < 3; i++)
    nnkit_pipeline_free(*ps[i]);
  nnkit_augmenter_free(aug);
  nnkit_dataset_free(ds);
  return mw / mp <= 1.15 ? EXIT_SUCCESS : 3;
}
