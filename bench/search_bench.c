/* search_bench: hyperparameter-search throughput, trials per second with 1
 * and with 2 workers.
 *
 *   build/bench/search_bench [--trials N] [--reps N] [--samples N]
 *
 * Each trial is the built-in objective (nnkit_search_run_training) on a
 * 784-128-10 ReLU perceptron: build, one epoch of SGD on `samples` random
 * 784-pixel samples of 10 classes, validation on 500 more. A search of N
 * random trials runs with WORKERS 1 and WORKERS 2, alternating (the
 * machine's load drifts; alternating keeps the comparison fair), --reps
 * times each; the median wall time of each gives
 *
 *   speed-up = trials/s with 2 workers / trials/s with 1 worker
 *
 * Target: >= 1.7 on 2 free cores. Each trial runs at one nnkit thread and
 * one BLAS thread whatever the worker count, so both searches do the same
 * work (the bench checks that their scores agree). The load average is
 * printed: on a machine whose cores are busy the figure says so, and the
 * CPU time per trial of each (1.0 = two workers cost no more CPU per
 * trial than one, so two free cores would give 2x times that ratio). */
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

static double cpu_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static nnkit_dataset *random_set(size_t n, unsigned seed)
{
  float *x = malloc(n * 784 * sizeof *x);
  int32_t *y = malloc(n * sizeof *y);
  nnkit_dataset *ds = NULL;
  if (x && y) {
    srand(seed);
    for (size_t i = 0; i < n; i++) {
      y[i] = (int32_t)(i % 10);
      for (size_t j = 0; j < 784; j++) /* a class-dependent mean: learnable */
        x[i * 784 + j] = (float)rand() / (float)RAND_MAX + (j % 10 == (size_t)y[i] ? 0.5f : 0);
    }
    size_t shape[1] = {784};
    nnkit_dataset_from_buffers(&ds, x, y, n, shape, 1, 10);
  }
  free(x);
  free(y);
  return ds;
}

static int build(nnkit_net **net_out, nnkit_optimizer **opt_out, const nnkit_trial *t,
                 void *user)
{
  (void)user;
  size_t in = 784;
  nnkit_status st = nnkit_net_create(net_out, &in, 1, nnkit_trial_seed(t));
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(*net_out, 128);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(*net_out, NNKIT_ACT_RELU);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(*net_out, 10);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_create(opt_out, NNKIT_OPTIM_SGD);
  return st == NNKIT_OK ? 0 : -1;
}

/* Wall seconds of one search; *cpu_out its CPU seconds (all threads),
 * *sum_out the sum of its scores. */
static double one_search(const nnkit_space *sp, int workers, long trials,
                         const nnkit_dataset *train, const nnkit_dataset *val,
                         double *cpu_out, double *sum_out)
{
  nnkit_search *s = NULL;
  if (nnkit_search_create(&s, sp) != NNKIT_OK)
    return -1;
  nnkit_search_set(s, NNKIT_SEARCH_TRIALS, (double)trials);
  nnkit_search_set(s, NNKIT_SEARCH_EPOCHS, 1);
  nnkit_search_set(s, NNKIT_SEARCH_WORKERS, workers);
  double t0 = now(), c0 = cpu_now();
  nnkit_status st = nnkit_search_run_training(s, build, NULL, train, val);
  double t = now() - t0;
  *cpu_out = cpu_now() - c0;
  double sum = 0;
  for (size_t i = 0; i < nnkit_search_num_trials(s); i++) {
    double v;
    nnkit_search_result(&v, s, i, NNKIT_RESULT_SCORE);
    sum += v;
  }
  *sum_out = sum;
  nnkit_search_free(s);
  return st == NNKIT_OK ? t : -1;
}

int main(int argc, char **argv)
{
  long trials = 16, reps = 3, samples = 3000;
  for (int i = 1; i + 1 < argc; i += 2) {
    long v = strtol(argv[i + 1], NULL, 10);
    if (!strcmp(argv[i], "--trials"))
      trials = v;
    else if (!strcmp(argv[i], "--reps"))
      reps = v;
    else if (!strcmp(argv[i], "--samples"))
      samples = v;
  }
  if (trials < 2 || reps < 1 || reps > 100 || samples < 10) {
    fprintf(stderr, "usage: search_bench [--trials N>=2] [--reps 1..100] "
                    "[--samples N>=10]\n");
    return 2;
  }
  nnkit_dataset *train = random_set((size_t)samples, 1), *val = random_set(500, 2);
  nnkit_space *sp = NULL;
  if (!train || !val || nnkit_space_create(&sp) != NNKIT_OK ||
      nnkit_space_add(sp, "lr", NNKIT_DIM_LOG_UNIFORM, 1e-3, 1e-1, NNKIT_TARGET_OPTIMIZER,
                      NNKIT_OPTIM_SGD, NNKIT_OPT_LR) != NNKIT_OK) {
    fprintf(stderr, "search_bench: %s\n", nnkit_last_error());
    return 1;
  }
  double t1[100], t2[100], c1[100], c2[100], s1 = 0, s2 = 0;
  for (long r = 0; r < reps; r++) {
    t1[r] = one_search(sp, 1, trials, train, val, &c1[r], &s1);
    t2[r] = one_search(sp, 2, trials, train, val, &c2[r], &s2);
    if (t1[r] < 0 || t2[r] < 0) {
      fprintf(stderr, "search_bench: %s\n", nnkit_last_error());
      return 1;
    }
  }
  qsort(t1, (size_t)reps, sizeof t1[0], cmp_double);
  qsort(t2, (size_t)reps, sizeof t2[0], cmp_double);
  qsort(c1, (size_t)reps, sizeof c1[0], cmp_double);
  qsort(c2, (size_t)reps, sizeof c2[0], cmp_double);
  double m1 = t1[reps / 2], m2 = t2[reps / 2];
  double load = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &load) != 1)
      load = -1;
    fclose(f);
  }
  printf("search_bench: %ld trials of one epoch on %ld samples (784-128-10 MLP), "
         "median of %ld runs\n", trials, samples, reps);
  printf("  1 worker : %.2f trials/s (%.2f s wall, %.2f s CPU)\n", (double)trials / m1, m1,
         c1[reps / 2]);
  printf("  2 workers: %.2f trials/s (%.2f s wall, %.2f s CPU)\n", (double)trials / m2, m2,
         c2[reps / 2]);
  /* CPU seconds per trial, 1 worker / 2 workers: 1.0 when two workers
   * add no overhead, i.e. the speed-up two free cores would give is 2x
   * times this */
  printf("  CPU per trial, 1 worker / 2 workers: %.2f\n", c1[reps / 2] / c2[reps / 2]);
  printf("  same scores with 1 and 2 workers: %s\n", s1 == s2 ? "yes" : "NO");
  printf("  load average at the end: %.2f on %ld cores\n", load,
         (long)nnkit_get_num_threads());
  printf("speed-up 2 workers / 1 worker: %.2fx (target >= 1.7x on 2 free cores)\n",
         m1 / m2);
  nnkit_space_free(sp);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
  return s1 == s2 ? 0 : 1;
}
