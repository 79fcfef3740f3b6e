/* perf: nnkit's side of bench/run.py. Training: seconds per epoch,
 * samples/s, achieved GFLOP/s against this machine's measured peaks (the
 * best cblas_sgemm and a register-only FMA loop), peak RSS and heap
 * allocations per training step. Inference: nnkit_net_predict latency for
 * one sample and throughput for a batch.
 *
 * Models (the same nets in bench/pytorch_peer.py):
 *   mlp         784-512-256-10 with ReLU, Fashion-MNIST (60k), batch 128,
 *               SGD with momentum 0.9, lr 0.01
 *   cnn         conv3x3(16)-ReLU-maxpool2-conv3x3(32)-ReLU-maxpool2-
 *               dense128-ReLU-dense10, as the mlp
 *   digits_cnn  the net, data split, normalization, optimizer and schedule
 *               of examples/digits_cnn.c: conv3x3(32)-BN-ReLU-pool,
 *               conv3x3(64)-BN-ReLU-pool, flatten, dense128-ReLU-
 *               dropout0.5-dense10 (convolutions without bias), data/digits
 *               with every tenth training image held out for validation
 *               (evaluated every epoch, as the example does), pixels
 *               standardized with the training file's mean and std, SGD
 *               momentum 0.9, lr 0.01 annealed to 0 along a cosine over all
 *               steps of the run (one step per batch), batch 32
 *
 *   build/bench/perf --model mlp|cnn|digits_cnn --threads 1 [--epochs 3]
 *                    [--data DIR]  (default fashion-mnist; data/digits for
 *                                   digits_cnn)
 *                    [--task train|predict|handoff] [--batch B]
 *                                  (handoff: the pool's fork-join cost in us
 *                                   for tasks of 5 us, workers spinning and
 *                                   asleep; --calls N)
 *                    [--calls N]   (predict: timed calls; default 2000 for
 *                                   batch 1, 50 otherwise)
 *                    [--peak 0]    (skip the sgemm and FMA peaks, e.g. under
 *                                   a profiler)
 *                    [--slice N]   (N samples per slice of the leading conv/
 *                                   ReLU/pool layers; 0 = whole batch)
 *                    [--layers 1]  (per-layer figures of the last epoch, see
 *                                   below, and the kernel choices made)
 *                    [--ab 1]      (alternate epochs with and without the AVX2
 *                                   kernels, i.e. gemm.c / direct convolution
 *                                   against cblas_sgemm / im2col, and print
 *                                   the best epoch of each: an A/B in one
 *                                   process, less exposed to a noisy machine)
 *
 * Training prints one line of key=value figures; with --layers 1 it is
 * preceded by one line per layer of the last epoch ("layer=3 kind=conv2d
 * fwd_ms=.. bwd_ms=.. fwd_gflops=.. bwd_gflops=.. fwd_calls=.. bwd_calls=..
 * kernel=<the rest of the line>", times and FLOPs summed over the epoch's
 * batches, its validation batches included; epoch_s then includes the
 * profile's own timers), then "layers=all fwd_ms=.. bwd_ms=.. epoch_ms=..
 * rest_ms=.." (rest: what the layers leave of the epoch: loss, optimizer
 * steps, batch gathering; with several threads the layer times are those of
 * the thread running the first share) and by the process's kernel choices ("kernel:
 * <key>: <measured times>"); the final line then also has
 * kernels=<kind_winner:count,...> (e.g. gemm_nnkit:4,gemm_cblas:6). Predict
 * prints
 * "peer=nnkit task=predict model=.. threads=.. batch=B latency_us=..
 * samples_s=..": the median over --calls calls after 10 warm-up calls, each
 * call on the next B test samples (so a different sample every call for
 * B = 1). The predict net is untrained (its initial weights; the PyTorch
 * peer does the same): the work per call does not depend on the weights. */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cblas.h>

#include "digits_data.h" /* digits_load_raw (examples/) */
#include "internal.h"    /* nnkit__alloc_count, nnkit__now */

/* OpenBLAS's extension API (nnkit keeps OpenBLAS at one thread and runs
 * its own; the peak is measured with OpenBLAS's own threads). */
void openblas_set_num_threads(int num_threads);

enum { MLP, CNN, DIGITS_CNN };

/* Multiply-adds per sample of each parameterised layer's forward pass, in
 * order, 0-terminated. */
static const double *layer_macs(int model)
{
  static const double mlp[] = {784.0 * 512, 512.0 * 256, 256.0 * 10, 0};
  static const double cnn[] = {28.0 * 28 * 16 * 1 * 9, 14.0 * 14 * 32 * 16 * 9,
                               32.0 * 7 * 7 * 128, 128.0 * 10, 0};
  static const double dcnn[] = {28.0 * 28 * 32 * 1 * 9, 14.0 * 14 * 64 * 32 * 9,
                                64.0 * 7 * 7 * 128, 128.0 * 10, 0};
  return model == MLP ? mlp : model == CNN ? cnn : dcnn;
}

/* Floating-point operations per training sample, counted as computed: 2
 * per multiply-add of each convolution and dense layer, for the forward
 * pass, the weight gradient and the input gradient, except the input
 * gradient of the first parameterised layer, which neither nnkit nor
 * PyTorch computes. Element-wise layers (activations, pooling, batch norm,
 * dropout, biases, the loss) are not counted. Must match
 * flops_per_sample() in bench/pytorch_peer.py. */
static double train_flops_per_sample(int model)
{
  const double *m = layer_macs(model);
  double f = 0;
  for (int i = 0; m[i] > 0; i++)
    f += 2.0 * m[i] * (i == 0 ? 2 : 3);
  return f;
}

/* Forward only (inference), same counting. */
static double predict_flops_per_sample(int model)
{
  const double *m = layer_macs(model);
  double f = 0;
  for (int i = 0; m[i] > 0; i++)
    f += 2.0 * m[i];
  return f;
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

/* ---- FMA peak: a register-only loop of independent multiply-adds ---- */

#define FMA_ACC 12 /* independent accumulators: latency 4 x 2 pipes, and more */

/* iters rounds of FMA_ACC 8-wide FMAs; returns a value that depends on
 * every accumulator so the loop cannot be dropped. */
__attribute__((target("avx2,fma"))) static float fma_loop256(long iters)
{
  __m256 acc[FMA_ACC];
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  for (int j = 0; j < FMA_ACC; j++)
    acc[j] = _mm256_set1_ps((float)j);
  for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
    for (int j = 0; j < FMA_ACC; j++)
      acc[j] = _mm256_fmadd_ps(acc[j], m, c);
  }
  __m256 s = acc[0];
  for (int j = 1; j < FMA_ACC; j++)
    s = _mm256_add_ps(s, acc[j]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

/* The same with 16-wide (AVX-512) FMAs. */
__attribute__((target("avx512f"))) static float fma_loop512(long iters)
{
  __m512 acc[FMA_ACC];
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  for (int j = 0; j < FMA_ACC; j++)
    acc[j] = _mm512_set1_ps((float)j);
  for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
    for (int j = 0; j < FMA_ACC; j++)
      acc[j] = _mm512_fmadd_ps(acc[j], m, c);
  }
  __m512 s = acc[0];
  for (int j = 1; j < FMA_ACC; j++)
    s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}

typedef struct fma_job {
  int wide;      /* 512: the AVX-512 loop, else the AVX2 one */
  long iters;
  double gflops; /* out */
  float sink;
} fma_job;

static void *fma_thread(void *arg)
{
  fma_job *j = arg;
  double t0 = nnkit__now();
  j->sink = j->wide == 512 ? fma_loop512(j->iters) : fma_loop256(j->iters);
  double t = nnkit__now() - t0;
  j->gflops = (double)j->iters * FMA_ACC * (j->wide / 32) * 2.0 / t / 1e9;
  return NULL;
}

/* GFLOP/s of the wide-bit loop run on `threads` threads at once, summed
 * over the threads; the best of 3 runs of about 0.2 s each. */
static double fma_peak_of(int wide, int threads)
{
  double best = 0;
  fma_job jobs[64];
  pthread_t tid[64];
  if (threads > 64)
    threads = 64;
  /* about 0.2 s at 4 GHz and 2 FMAs per cycle */
  long iters = (long)(0.2 * 4e9 * 2 / FMA_ACC);
  for (int r = 0; r < 3; r++) {
    int started = 0;
    for (int t = 0; t < threads; t++) {
      jobs[t] = (fma_job){wide, iters, 0, 0};
      if (pthread_create(&tid[t], NULL, fma_thread, &jobs[t]) != 0)
        break;
      started++;
    }
    double sum = 0;
    for (int t = 0; t < started; t++) {
      pthread_join(tid[t], NULL);
      sum += jobs[t].gflops;
    }
    if (sum > best)
      best = sum;
  }
  return best;
}

static double fma256_gflops, fma512_gflops; /* each loop's figure, for the line */

/* The machine's FMA peak in GFLOP/s on `threads` threads: the AVX2 loop,
 * and the AVX-512 one where it runs, the larger (AMD Zen 4 double-pumps
 * 512-bit FMAs, so there the 256-bit loop is the peak; Intel parts with
 * two 512-bit FMA units double it). *which gets "avx2", "avx512" or
 * "none" (no FMA: 0). */
static double fma_peak(int threads, const char **which)
{
  double p256 = 0, p512 = 0;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    p256 = fma_peak_of(256, threads);
  if (__builtin_cpu_supports("avx512f"))
    p512 = fma_peak_of(512, threads);
  *which = p512 > p256 ? "avx512" : p256 > 0 ? "avx2" : "none";
  fma256_gflops = p256;
  fma512_gflops = p512;
  return p512 > p256 ? p512 : p256;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#define CHECK(call)                                                               \
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

/* Loads the model's data: Fashion-MNIST scaled to [0, 1] for mlp and cnn;
 * for digits_cnn the digits standardized with the training file's pixel
 * mean and std, every tenth training image moved to *val (as
 * examples/digits_cnn.c). */
static void load_data(int model, const char *dir, nnkit_dataset **train,
                      nnkit_dataset **val, nnkit_dataset **test)
{
  nnkit_dataset *all = NULL;
  *val = NULL;
  nnkit_status st;
  if (model == DIGITS_CNN) {
    st = digits_load_raw(&all, test, dir); /* says how to fetch missing digits */
  } else {
    char p[4][1024];
    const char *names[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (int i = 0; i < 4; i++)
      snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
    st = nnkit_dataset_load_idx(&all, p[0], p[1], 10);
    if (st == NNKIT_OK)
      st = nnkit_dataset_load_idx(test, p[2], p[3], 10);
  }
  if (st != NNKIT_OK) {
    fprintf(stderr, "perf: cannot load the four MNIST-named IDX files of %s (--data DIR): "
                    "%s\n", dir, nnkit_last_error());
    exit(1);
  }
  if (model != DIGITS_CNN) {
    CHECK(nnkit_dataset_scale(all, 1.0f / 255, 0));
    CHECK(nnkit_dataset_scale(*test, 1.0f / 255, 0));
    *train = all;
    return;
  }
  double sum = 0, sq = 0;
  const float *px = nnkit_dataset_data(all);
  size_t npx = nnkit_dataset_count(all) * nnkit_dataset_sample_size(all);
  for (size_t i = 0; i < npx; i++) {
    sum += px[i];
    sq += (double)px[i] * px[i];
  }
  double mean = sum / (double)npx, sd = sqrt(sq / (double)npx - mean * mean);
  CHECK(nnkit_dataset_scale(all, (float)(1.0 / sd), (float)(-mean / sd)));
  CHECK(nnkit_dataset_scale(*test, (float)(1.0 / sd), (float)(-mean / sd)));
  size_t n = nnkit_dataset_count(all), nv = n / 10, nt = n - nv;
  size_t *tix = malloc(nt * sizeof *tix), *vix = malloc(nv * sizeof *vix);
  if (!tix || !vix) {
    fprintf(stderr, "perf: out of memory\n");
    exit(1);
  }
  for (size_t i = 0, a = 0, b = 0; i < n; i++) {
    if (i % 10 == 9 && b < nv)
      vix[b++] = i;
    else
      tix[a++] = i;
  }
  CHECK(nnkit_dataset_subset(train, all, tix, nt));
  CHECK(nnkit_dataset_subset(val, all, vix, nv));
  free(tix);
  free(vix);
  nnkit_dataset_free(all);
}

static nnkit_net *build_net(int model, int slice)
{
  size_t shape[3] = {1, 28, 28};
  nnkit_net *net = NULL;
  CHECK(nnkit_net_create(&net, shape, 3, 1));
  if (slice >= 0)
    nnkit__net_force_slice(net, slice ? (size_t)slice : SIZE_MAX);
  if (model == CNN) {
    CHECK(nnkit_net_add_conv2d(net, 16, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
    CHECK(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    CHECK(nnkit_net_add_maxpool2d(net, 2, 2, 2, 2, 0, 0));
    CHECK(nnkit_net_add_conv2d(net, 32, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
    CHECK(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    CHECK(nnkit_net_add_maxpool2d(net, 2, 2, 2, 2, 0, 0));
    CHECK(nnkit_net_add_dense(net, 128));
    CHECK(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    CHECK(nnkit_net_add_dense(net, 10));
  } else if (model == DIGITS_CNN) { /* examples/digits_cnn.c */
    CHECK(nnkit_net_add_conv2d(net, 32, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 0));
    CHECK(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
    CHECK(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    CHECK(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
    CHECK(nnkit_net_add_conv2d(net, 64, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 0));
    CHECK(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
    CHECK(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    CHECK(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
    CHECK(nnkit_net_add_flatten(net));
    CHECK(nnkit_net_add_dense(net, 128));
    CHECK(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    CHECK(nnkit_net_add_dropout(net, 0.5));
    CHECK(nnkit_net_add_dense(net, 10));
  } else {
    CHECK(nnkit_net_add_dense(net, 512));
    CHECK(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    CHECK(nnkit_net_add_dense(net, 256));
    CHECK(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    CHECK(nnkit_net_add_dense(net, 10));
  }
  return net;
}

/* perf --task predict: nnkit_net_predict on `batch` test samples per call. */
static void run_predict(const char *model_name, int model, nnkit_net *net,
                        const nnkit_dataset *test, int threads, int batch, int calls)
{
  size_t n = nnkit_dataset_count(test), d = nnkit_dataset_sample_size(test);
  const float *x = nnkit_dataset_data(test);
  if ((size_t)batch > n) {
    fprintf(stderr, "perf: --batch %d is larger than the %zu test samples\n", batch, n);
    exit(2);
  }
  int32_t *cls = malloc((size_t)batch * sizeof *cls);
  double *t = malloc((size_t)calls * sizeof *t);
  if (!cls || !t) {
    fprintf(stderr, "perf: out of memory\n");
    exit(1);
  }
  size_t at = 0, span = n - (size_t)batch + 1;
  for (int i = 0; i < 10; i++, at = (at + (size_t)batch) % span)
    CHECK(nnkit_net_predict(cls, net, x + at * d, (size_t)batch));
  uint64_t a0 = nnkit__alloc_count();
  for (int i = 0; i < calls; i++, at = (at + (size_t)batch) % span) {
    double t0 = nnkit__now();
    CHECK(nnkit_net_predict(cls, net, x + at * d, (size_t)batch));
    t[i] = nnkit__now() - t0;
  }
  uint64_t allocs = nnkit__alloc_count() - a0;
  qsort(t, (size_t)calls, sizeof *t, cmp_double);
  double med = t[calls / 2];
  printf("peer=nnkit task=predict model=%s threads=%d batch=%d latency_us=%.1f "
         "samples_s=%.0f gflops=%.1f allocs_per_call=%.3f calls=%d weights=untrained\n",
         model_name, threads, batch, med * 1e6, batch / med,
         predict_flops_per_sample(model) * batch / med / 1e9, (double)allocs / calls, calls);
  free(cls);
  free(t);
}

/* perf --layers 1: one line per layer of the profile that ran since
 * nnkit__profile_enable (called before the last epoch, which took
 * epoch_s), then the sums and what the layers leave of the epoch
 * (rest_ms: loss, optimizer steps, batch gathering, shuffling). */
/* perf --task handoff: the fixed cost of one fork-join of nnkit's pool,
 * the price each layer's parallel call pays per batch. Each of the
 * `threads` tasks works 5 us (a clock loop); a call's time beyond that is
 * the hand-off (when a worker joins; tasks a worker did not take the
 * caller runs too, so a call takes up to threads x 5 us). Back to back,
 * the workers are still spinning from the previous call, as between a
 * step's layers; 1 ms apart they have gone to sleep (a futex wake-up). */
#define HANDOFF_TASK_S 5e-6

typedef struct handoff_rec {
  int worker_tasks; /* tasks run by a worker thread */
} handoff_rec;

static void busy_task(void *ctx, int t, int n)
{
  (void)t, (void)n;
  double t0 = nnkit__now();
  while (nnkit__now() - t0 < HANDOFF_TASK_S)
    ;
  if (nnkit__task_slot() != 0)
    __atomic_fetch_add(&((handoff_rec *)ctx)->worker_tasks, 1, __ATOMIC_RELAXED);
}

static void run_handoff(int threads, int calls)
{
  handoff_rec r = {0};
  for (int i = 0; i < 100; i++)
    nnkit__parallel(busy_task, &r, threads);
  r.worker_tasks = 0;
  double t0 = nnkit__now();
  for (int i = 0; i < calls; i++)
    nnkit__parallel(busy_task, &r, threads);
  double hot = (nnkit__now() - t0) / calls;
  int hot_workers = r.worker_tasks;
  int cold_calls = calls / 20 > 10 ? calls / 20 : 10;
  double cold = 0;
  r.worker_tasks = 0;
  for (int i = 0; i < cold_calls; i++) {
    double w = nnkit__now();
    while (nnkit__now() - w < 1e-3) /* the workers give up spinning */
      ;
    double c0 = nnkit__now();
    nnkit__parallel(busy_task, &r, threads);
    cold += nnkit__now() - c0;
  }
  cold /= cold_calls;
  printf("peer=nnkit task=handoff threads=%d calls=%d task_us=%.0f spinning_call_us=%.2f "
         "spinning_overhead_us=%.2f spinning_worker_share=%.2f asleep_call_us=%.2f "
         "asleep_overhead_us=%.2f asleep_worker_share=%.2f\n",
         threads, calls, HANDOFF_TASK_S * 1e6, hot * 1e6, (hot - HANDOFF_TASK_S) * 1e6,
         threads > 1 ? (double)hot_workers / ((double)calls * (threads - 1)) : 0.0,
         cold * 1e6, (cold - HANDOFF_TASK_S) * 1e6,
         threads > 1 ? (double)r.worker_tasks / ((double)cold_calls * (threads - 1)) : 0.0);
}

static void print_layers(const nnkit_net *net, double epoch_s)
{
  nnkit__layer_profile p;
  double fwd = 0, bwd = 0;
  for (size_t i = 0; nnkit__profile_get(net, i, &p); i++) {
    fwd += p.fwd_s;
    bwd += p.bwd_s;
    printf("layer=%zu kind=%s fwd_ms=%.1f bwd_ms=%.1f fwd_gflops=%.1f bwd_gflops=%.1f "
           "fwd_calls=%zu bwd_calls=%zu kernel=%s\n",
           i, p.kind, p.fwd_s * 1e3, p.bwd_s * 1e3,
           p.fwd_s > 0 ? p.fwd_flop / p.fwd_s / 1e9 : 0.0,
           p.bwd_s > 0 ? p.bwd_flop / p.bwd_s / 1e9 : 0.0, p.fwd_calls, p.bwd_calls,
           p.kernel[0] ? p.kernel : "-");
  }
  printf("layers=all fwd_ms=%.1f bwd_ms=%.1f epoch_ms=%.1f rest_ms=%.1f\n", fwd * 1e3,
         bwd * 1e3, epoch_s * 1e3, (epoch_s - fwd - bwd) * 1e3);
}

/* The process's kernel choices, each line as "kernel: <line>"; *summary
 * gets how often each kind of product went to each kernel
 * ("conv2d_direct:1,gemm_nnkit:4,gemm_cblas:6"), or "" when that does not
 * fit in cap. A line reads "<kind> <shape...>: <winner> <time> < <other>
 * <time>". */
static void print_kernels(char *summary, size_t cap)
{
  struct {
    char name[48];
    int n;
  } tally[16];
  int nt = 0, fits = 1;
  size_t need = nnkit__kernel_report(NULL, 0);
  char *rep = malloc(need + 1);
  summary[0] = 0;
  if (!rep)
    return;
  nnkit__kernel_report(rep, need + 1);
  for (char *line = strtok(rep, "\n"); line; line = strtok(NULL, "\n")) {
    printf("kernel: %s\n", line);
    char *colon = strstr(line, ": ");
    if (!colon)
      continue;
    char name[48];
    snprintf(name, sizeof name, "%.*s_%.*s", (int)strcspn(line, " "), line,
             (int)strcspn(colon + 2, " "), colon + 2);
    int i = 0;
    while (i < nt && strcmp(tally[i].name, name))
      i++;
    if (i == nt) {
      if (nt == (int)(sizeof tally / sizeof tally[0])) {
        fits = 0;
        continue;
      }
      snprintf(tally[nt].name, sizeof tally[nt].name, "%s", name);
      tally[nt++].n = 0;
    }
    tally[i].n++;
  }
  size_t used = 0;
  for (int i = 0; i < nt && fits; i++) {
    int w = snprintf(summary + used, cap - used, "%s%s:%d", i ? "," : "", tally[i].name,
                     tally[i].n);
    if (w < 0 || (size_t)w >= cap - used)
      fits = 0;
    else
      used += (size_t)w;
  }
  if (!fits)
    summary[0] = 0;
  free(rep);
}

static void usage(FILE *f)
{
  fprintf(f, "usage: perf [--model mlp|cnn|digits_cnn] [--task train|predict|handoff] "
             "[--threads N] [--epochs N] [--batch N] [--calls N] [--data DIR] "
             "[--peak 0|1] [--slice N] [--layers 0|1] [--ab 0|1]\n"
             "(see the comment at the top of bench/perf.c)\n");
}

static int int_arg(const char *opt, const char *s, int lo)
{
  char *end;
  long v = strtol(s, &end, 10);
  if (*end || end == s || v < lo || v > 1 << 20) {
    fprintf(stderr, "perf: %s '%s' is not an integer in [%d, %d]\n", opt, s, lo, 1 << 20);
    exit(2);
  }
  return (int)v;
}

int main(int argc, char **argv)
{
  const char *data = NULL, *model_name = "mlp", *task = "train";
  int threads = 1, epochs = 3, batch = 0, measure_peak = 1, slice = -1, ab = 0, calls = 0;
  int layers = 0;
  double lr = 0.01;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "perf: %s needs a value\n", argv[i]);
      usage(stderr);
      return 2;
    }
    const char *o = argv[i], *v = argv[++i];
    if (!strcmp(o, "--model"))
      model_name = v;
    else if (!strcmp(o, "--task"))
      task = v;
    else if (!strcmp(o, "--threads"))
      threads = int_arg(o, v, 1);
    else if (!strcmp(o, "--epochs"))
      epochs = int_arg(o, v, 1);
    else if (!strcmp(o, "--batch"))
      batch = int_arg(o, v, 1);
    else if (!strcmp(o, "--calls"))
      calls = int_arg(o, v, 1);
    else if (!strcmp(o, "--data"))
      data = v;
    else if (!strcmp(o, "--peak"))
      measure_peak = int_arg(o, v, 0);
    else if (!strcmp(o, "--slice"))
      slice = int_arg(o, v, 0);
    else if (!strcmp(o, "--layers"))
      layers = int_arg(o, v, 0);
    else if (!strcmp(o, "--ab"))
      ab = int_arg(o, v, 0);
    else {
      fprintf(stderr, "perf: unknown option %s\n", o);
      usage(stderr);
      return 2;
    }
  }
  int model = !strcmp(model_name, "mlp")          ? MLP
              : !strcmp(model_name, "cnn")        ? CNN
              : !strcmp(model_name, "digits_cnn") ? DIGITS_CNN
                                                  : -1;
  int predict = !strcmp(task, "predict");
  if (!strcmp(task, "handoff")) {
    CHECK(nnkit_set_num_threads(threads));
    run_handoff(threads, calls ? calls : 20000);
    return 0;
  }
  if (model < 0 || (!predict && strcmp(task, "train"))) {
    fprintf(stderr, "perf: unknown %s '%s'\n", model < 0 ? "model" : "task",
            model < 0 ? model_name : task);
    usage(stderr);
    return 2;
  }
  if (!data)
    data = model == DIGITS_CNN ? "data/digits" : "/usr/share/datasets/fashion-mnist";
  if (!batch)
    batch = predict ? 1 : model == DIGITS_CNN ? 32 : 128;
  if (!calls)
    calls = batch == 1 ? 2000 : 50;

  nnkit_dataset *train = NULL, *val = NULL, *test = NULL;
  load_data(model, data, &train, &val, &test);
  CHECK(nnkit_set_num_threads(threads));
  nnkit_net *net = build_net(model, slice);
  if (predict) {
    run_predict(model_name, model, net, test, threads, batch, calls);
    nnkit_net_free(net);
    nnkit_dataset_free(train);
    nnkit_dataset_free(test);
    nnkit_dataset_free(val);
    return 0;
  }

  const char *fma_kind = "none";
  double peak = measure_peak ? sgemm_peak_apart(threads) : 0.0;
  double fpeak = measure_peak ? fma_peak(threads, &fma_kind) : 0.0;

  size_t n = nnkit_dataset_count(train);
  size_t steps_per_epoch = (n + (size_t)batch - 1) / (size_t)batch;
  nnkit_optimizer *opt = NULL;
  CHECK(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  CHECK(nnkit_optimizer_set(opt, NNKIT_OPT_LR, lr));
  CHECK(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.9));
  if (model == DIGITS_CNN) { /* cosine from lr to 0 over every step of the run */
    nnkit_schedule *sched = NULL;
    CHECK(nnkit_schedule_create(&sched, NNKIT_SCHEDULE_COSINE));
    CHECK(nnkit_schedule_set(sched, NNKIT_SCHED_PER_BATCH, 1));
    CHECK(nnkit_schedule_set(sched, NNKIT_SCHED_T_MAX, (double)(steps_per_epoch * epochs)));
    CHECK(nnkit_optimizer_set_schedule(opt, sched)); /* the optimizer owns it */
  }
  nnkit_trainer *tr = NULL;
  CHECK(nnkit_trainer_create(&tr, net, opt));
  CHECK(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 1));
  CHECK(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, batch));
  CHECK(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, 1));
  /* The peer's workload: no copy of the last good epoch to restore on
   * divergence, no per-layer statistics (PyTorch keeps neither). With
   * nnkit's defaults the MLP's peak RSS is 6 MB higher (the copies of the
   * weights, of the momentum buffer and of the weights before a step). */
  CHECK(nnkit_trainer_set(tr, NNKIT_TRAIN_KEEP_GOOD, 0));
  CHECK(nnkit_trainer_set(tr, NNKIT_TRAIN_LAYER_STATS, 0));

  double *secs = calloc((size_t)epochs, sizeof *secs);
  uint64_t allocs_after_first = 0;
  double abmin[2] = {1e9, 1e9};
  for (int e = 0; e < epochs; e++) {
    if (ab) { /* odd epochs without the AVX2 kernels: cblas_sgemm, im2col */
      nnkit__direct_force((e & 1) ? 0 : -1);
      nnkit__gemm_force((e & 1) ? 0 : 1); /* even: nnkit's GEMM, even on AVX-512 */
    }
    if (layers && e == epochs - 1) /* the last epoch's profile */
      CHECK(nnkit__profile_enable(net, 1));
    uint64_t a0 = nnkit__alloc_count();
    double t0 = nnkit__now();
    CHECK(nnkit_trainer_fit(tr, train, val));
    secs[e] = nnkit__now() - t0;
    if (secs[e] < abmin[e & 1])
      abmin[e & 1] = secs[e];
    if (ab)
      printf("ab epoch %d %s %.3f s\n", e, (e & 1) ? "cblas" : "kernels", secs[e]);
    if (e > 0)
      allocs_after_first += nnkit__alloc_count() - a0;
  }
  char kernels[256] = "";
  if (layers) {
    print_layers(net, secs[epochs - 1]);
    CHECK(nnkit__profile_enable(net, 0));
    print_kernels(kernels, sizeof kernels);
  }
  qsort(secs, (size_t)epochs, sizeof *secs, cmp_double);
  double med = secs[epochs / 2];
  double loss, acc;
  CHECK(nnkit_net_evaluate(&loss, &acc, net, test));
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  /* digits_cnn's epoch also runs the validation set forward */
  size_t nval = val ? nnkit_dataset_count(val) : 0;
  double gflops = (train_flops_per_sample(model) * (double)n +
                   predict_flops_per_sample(model) * (double)nval) /
                  med / 1e9;
  printf("peer=nnkit task=train model=%s threads=%d batch=%d epoch_s=%.3f samples_s=%.0f "
         "gflops=%.1f sgemm_peak_gflops=%.1f peak_fraction=%.2f fma_peak_gflops=%.1f "
         "fma_kind=%s fma256_gflops=%.1f fma512_gflops=%.1f fma_fraction=%.2f rss_mb=%.0f allocs_per_step=%.3f test_acc=%.4f "
         "epochs=%d kernel_mode=%s%s%s\n",
         model_name, threads, batch, med, (double)n / med, gflops, peak,
         peak > 0 ? gflops / peak : 0.0, fpeak, fma_kind, fma256_gflops, fma512_gflops, fpeak > 0 ? gflops / fpeak : 0.0,
         (double)ru.ru_maxrss / 1024.0,
         epochs > 1 ? (double)allocs_after_first /
                          (double)(steps_per_epoch * (size_t)(epochs - 1))
                    : 0.0,
         acc, epochs,
         ab                                       ? "alternating"
         : nnkit_get_kernels() == NNKIT_KERNELS_OWN  ? "own"
         : nnkit_get_kernels() == NNKIT_KERNELS_BLAS ? "blas"
                                                     : "measure",
         kernels[0] ? " kernels=" : "", kernels);
  if (ab)
    printf("ab best epoch: kernels %.3f s, cblas %.3f s, ratio %.3f\n", abmin[0],
           abmin[1], abmin[0] / abmin[1]);
  free(secs);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
  nnkit_dataset_free(test);
  return 0;
}
