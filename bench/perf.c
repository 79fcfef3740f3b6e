/* perf: seconds per epoch, samples/s, achieved GFLOP/s against this
 * machine's measured cblas_sgemm peak, peak RSS and heap allocations per
 * training step, for the MLP 784-512-256-10 and the CNN
 * conv3x3(16)-ReLU-maxpool2-conv3x3(32)-ReLU-maxpool2-dense128-ReLU-dense10
 * on Fashion-MNIST (60k), batch 128, SGD with momentum 0.9.
 *
 *   build/bench/perf --model mlp --threads 1 [--epochs 3] [--data DIR]
 *                    [--peak 0]   (skip the sgemm peak, e.g. under a profiler)
 *                    [--slice N]  (N samples per slice of the leading conv/ReLU/
 *                                  pool layers; 0 = whole batch; default auto)
 *                    [--ab 1]     (alternate epochs with and without the AVX2
 *                                  kernels, i.e. gemm.c / direct convolution
 *                                  against cblas_sgemm / im2col, and print
 *                                  the best epoch of each: an A/B in one
 *                                  process, less exposed to a noisy machine)
 *
 * Prints one line of key=value figures; bench/run.py runs it next to
 * bench/pytorch_peer.py and prints the ratios. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cblas.h>

#include "internal.h" /* nnkit__alloc_count, nnkit__now */

/* OpenBLAS's extension API (nnkit keeps OpenBLAS at one thread and runs
 * its own; the peak is measured with OpenBLAS's own threads). */
void openblas_set_num_threads(int num_threads);

static double flops_per_sample(int cnn)
{
  /* 2 flops per multiply-add; backward costs twice the forward. Must match
   * bench/pytorch_peer.py. */
  double fwd = cnn ? (28.0 * 28 * 16 * 9) + (14.0 * 14 * 32 * 16 * 9) +
                         32.0 * 7 * 7 * 128 + 128.0 * 10
                   : 784.0 * 512 + 512.0 * 256 + 256.0 * 10;
  return 2.0 * 3.0 * fwd;
}

/* Best sgemm GFLOP/s over the shapes the workloads run (M x N x K). */
static double sgemm_peak(void)
{
  static const int shapes[][3] = {
    {128, 512, 784}, {512, 784, 128}, {128, 784, 512}, /* MLP layer 1 */
    {128, 256, 512}, {1024, 1024, 1024},               /* MLP layer 2, square */
    {32, 25088, 144},                                  /* conv2 as im2col */
  };
  double best = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    float *a = calloc((size_t)m * k, sizeof *a), *b = calloc((size_t)k * n, sizeof *b),
          *c = calloc((size_t)m * n, sizeof *c);
    for (size_t i = 0; i < (size_t)m * k; i++)
      a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++)
      b[i] = (float)(i % 5) * 0.1f;
    double flop = 2.0 * m * n * k, t = 0;
    int reps = 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c,
                n);
    double t0 = nnkit__now();
    while ((t = nnkit__now() - t0) < 0.3 || reps < 3) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0,
                  c, n);
      reps++;
    }
    double g = flop * reps / t / 1e9;
    if (g > best)
      best = g;
    free(a);
    free(b);
    free(c);
  }
  return best;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#define TRY(call)                                                                 \
  do {                                                                            \
    nnkit_status st_ = (call);                                                    \
    if (st_ != NNKIT_OK) {                                                        \
      fprintf(stderr, "perf: %s: %s\n", #call, nnkit_last_error());               \
      exit(1);                                                                    \
    }                                                                             \
  } while (0)

/* The peak, measured in a child process: OpenBLAS's threads and packing
 * buffers then stay out of this process's peak RSS, which is the
 * training run's figure (0.0 if the child fails). */
static double sgemm_peak_apart(int threads)
{
  int fd[2];
  double peak = 0.0;
  if (pipe(fd) != 0)
    return 0.0;
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    openblas_set_num_threads(threads);
    peak = sgemm_peak();
    _exit(write(fd[1], &peak, sizeof peak) == (ssize_t)sizeof peak ? 0 : 1);
  }
  close(fd[1]);
  if (pid < 0 || read(fd[0], &peak, sizeof peak) != (ssize_t)sizeof peak)
    peak = 0.0;
  close(fd[0]);
  if (pid > 0)
    waitpid(pid, NULL, 0);
  return peak;
}

int main(int argc, char **argv)
{
  const char *data = "/usr/share/datasets/fashion-mnist", *model = "mlp";
  int threads = 1, epochs = 3, batch = 128, measure_peak = 1, slice = -1, ab = 0;
  double lr = 0.01;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model"))
      model = argv[i + 1];
    else if (!strcmp(argv[i], "--threads"))
      threads = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--epochs"))
      epochs = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--data"))
      data = argv[i + 1];
    else if (!strcmp(argv[i], "--peak"))
      measure_peak = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--slice"))
      slice = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--ab"))
      ab = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: perf [--model mlp|cnn] [--threads N] [--epochs N] "
                      "[--data DIR] [--peak 0|1] [--slice N] [--ab 0|1]\n");
      return 2;
    }
  }
  int cnn = !strcmp(model, "cnn");
  double peak = measure_peak ? sgemm_peak_apart(threads) : 0.0;
  TRY(nnkit_set_num_threads(threads));

  char p1[1024], p2[1024];
  nnkit_dataset *train = NULL, *test = NULL;
  snprintf(p1, sizeof p1, "%s/train-images-idx3-ubyte.gz", data);
  snprintf(p2, sizeof p2, "%s/train-labels-idx1-ubyte.gz", data);
  TRY(nnkit_dataset_load_idx(&train, p1, p2, 10));
  snprintf(p1, sizeof p1, "%s/t10k-images-idx3-ubyte.gz", data);
  snprintf(p2, sizeof p2, "%s/t10k-labels-idx1-ubyte.gz", data);
  TRY(nnkit_dataset_load_idx(&test, p1, p2, 10));
  TRY(nnkit_dataset_scale(train, 1.0f / 255, 0));
  TRY(nnkit_dataset_scale(test, 1.0f / 255, 0));

  size_t shape[3] = {1, 28, 28};
  nnkit_net *net = NULL;
  TRY(nnkit_net_create(&net, shape, 3, 1));
  if (slice >= 0)
    nnkit__net_force_slice(net, slice ? (size_t)slice : SIZE_MAX);
  if (cnn) {
    TRY(nnkit_net_add_conv2d(net, 16, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
    TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    TRY(nnkit_net_add_maxpool2d(net, 2, 2, 2, 2, 0, 0));
    TRY(nnkit_net_add_conv2d(net, 32, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
    TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    TRY(nnkit_net_add_maxpool2d(net, 2, 2, 2, 2, 0, 0));
    TRY(nnkit_net_add_dense(net, 128));
    TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    TRY(nnkit_net_add_dense(net, 10));
  } else {
    TRY(nnkit_net_add_dense(net, 512));
    TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    TRY(nnkit_net_add_dense(net, 256));
    TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    TRY(nnkit_net_add_dense(net, 10));
  }
  nnkit_optimizer *opt = NULL;
  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, lr));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.9));
  nnkit_trainer *tr = NULL;
  TRY(nnkit_trainer_create(&tr, net, opt));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 1));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, batch));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, 1));
  /* The peer's workload: no copy of the last good epoch to restore on
   * divergence, no per-layer statistics (PyTorch keeps neither). With
   * nnkit's defaults the MLP's peak RSS is 6 MB higher (the copies of the
   * weights, of the momentum buffer and of the weights before a step). */
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_KEEP_GOOD, 0));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_LAYER_STATS, 0));

  size_t n = nnkit_dataset_count(train);
  size_t steps_per_epoch = (n + (size_t)batch - 1) / (size_t)batch;
  double *secs = calloc((size_t)epochs, sizeof *secs);
  uint64_t allocs_after_first = 0;
  double abmin[2] = {1e9, 1e9};
  for (int e = 0; e < epochs; e++) {
    if (ab) { /* odd epochs without the AVX2 kernels: cblas_sgemm, im2col */
      nnkit__direct_force((e & 1) ? 0 : -1);
      nnkit__gemm_force((e & 1) ? 0 : 1); /* even: nnkit's GEMM, even on AVX-512 */
    }
    uint64_t a0 = nnkit__alloc_count();
    double t0 = nnkit__now();
    TRY(nnkit_trainer_fit(tr, train, NULL));
    secs[e] = nnkit__now() - t0;
    if (secs[e] < abmin[e & 1])
      abmin[e & 1] = secs[e];
    if (ab)
      printf("ab epoch %d %s %.3f s\n", e, (e & 1) ? "cblas" : "kernels", secs[e]);
    if (e > 0)
      allocs_after_first += nnkit__alloc_count() - a0;
  }
  qsort(secs, (size_t)epochs, sizeof *secs, cmp_double);
  double med = secs[epochs / 2];
  double loss, acc;
  TRY(nnkit_net_evaluate(&loss, &acc, net, test));
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double gflops = flops_per_sample(cnn) * (double)n / med / 1e9;
  printf("peer=nnkit model=%s threads=%d epoch_s=%.3f samples_s=%.0f gflops=%.1f "
         "sgemm_peak_gflops=%.1f peak_fraction=%.2f rss_mb=%.0f "
         "allocs_per_step=%.3f test_acc=%.4f epochs=%d gemm=%s\n",
         model, threads, med, (double)n / med, gflops, peak, peak > 0 ? gflops / peak : 0.0,
         (double)ru.ru_maxrss / 1024.0,
         epochs > 1 ? (double)allocs_after_first /
                          (double)(steps_per_epoch * (size_t)(epochs - 1))
                    : 0.0,
         acc, epochs, ab ? "alternating" : nnkit__gemm_fast() ? "nnkit" : "cblas");
  if (ab)
    printf("ab best epoch: kernels %.3f s, cblas %.3f s, ratio %.3f\n", abmin[0],
           abmin[1], abmin[0] / abmin[1]);
  free(secs);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  nnkit_dataset_free(test);
  return 0;
}
