/* Core: versions, status strings, the error channel, threads, RNG, the
 * allocation hook. */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

START_TEST(version_matches_header)
{
  char expect[32];
  snprintf(expect, sizeof expect, "%d.%d.%d", NNKIT_VERSION_MAJOR, NNKIT_VERSION_MINOR,
           NNKIT_VERSION_PATCH);
  ck_assert_str_eq(nnkit_version(), expect);
  ck_assert_str_eq(nnkit_version(), NNKIT_VERSION_STRING);
  ck_assert_uint_eq(nnkit_version_number(), NNKIT_VERSION_NUMBER);
}
END_TEST

START_TEST(status_strings)
{
  const nnkit_status all[] = {NNKIT_OK, NNKIT_E_INVALID, NNKIT_E_NOMEM, NNKIT_E_IO,
                              NNKIT_E_FORMAT, NNKIT_E_SHAPE, NNKIT_E_STATE,
                              NNKIT_E_DIVERGED, NNKIT_E_USER};
  ck_assert_int_eq(NNKIT_OK, 0);
  ck_assert_int_eq(NNKIT_E_USER, -8);
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    const char *s = nnkit_status_string(all[i]);
    ck_assert_ptr_nonnull(s);
    ck_assert(strncmp(s, "NNKIT_", 6) == 0);
    for (size_t j = 0; j < i; j++)
      ck_assert_str_ne(s, nnkit_status_string(all[j]));
  }
  ck_assert_str_eq(nnkit_status_string((nnkit_status)-999), "unknown nnkit status");
}
END_TEST

START_TEST(last_error_set_and_clear)
{
  nnkit_clear_error();
  ck_assert_str_eq(nnkit_last_error(), "");
  ck_assert_int_eq(nnkit__err(NNKIT_E_SHAPE, "layer %d: %s", 3, "bad"), NNKIT_E_SHAPE);
  ck_assert_str_eq(nnkit_last_error(), "layer 3: bad");
  nnkit_clear_error();
  ck_assert_str_eq(nnkit_last_error(), "");
}
END_TEST

#include <pthread.h>
#include <dirent.h>
#include <sys/stat.h>
static void *other_thread(void *arg)
{
  (void)arg;
  /* A fresh thread starts with an empty sentence. */
  return (void *)(intptr_t)(nnkit_last_error()[0] == '\0');
}

START_TEST(last_error_is_thread_local)
{
  nnkit__err(NNKIT_E_IO, "main thread failure");
  pthread_t t;
  void *res;
  ck_assert_int_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
  pthread_join(t, &res);
  ck_assert_int_eq((int)(intptr_t)res, 1);
  ck_assert_str_eq(nnkit_last_error(), "main thread failure");
}
END_TEST

START_TEST(threads)
{
  ck_ok(nnkit_set_num_threads(1));
  ck_assert_int_eq(nnkit_get_num_threads(), 1);
  ck_ok(nnkit_set_num_threads(2));
  ck_assert_int_eq(nnkit_get_num_threads(), 2);
  ck_ok(nnkit_set_num_threads(0));
  ck_assert_int_ge(nnkit_get_num_threads(), 1);
  ck_fails(nnkit_set_num_threads(-1), NNKIT_E_INVALID, "[0, 1024]");
  ck_fails(nnkit_set_num_threads(5000), NNKIT_E_INVALID, "5000");
}
END_TEST

/* nnkit__parallel: every task runs once with the same n, n is capped by
 * max_tasks, and the pool's threads are really used. */
typedef struct par_rec {
  int ran[8], n[8];
  pthread_t who[8];
} par_rec;

static void par_task(void *ctx, int t, int n)
{
  par_rec *r = ctx;
  r->n[t] = n;
  r->who[t] = pthread_self();
  __atomic_fetch_add(&r->ran[t], 1, __ATOMIC_SEQ_CST);
}

/* par_task, but task 0 waits (up to 5 s) until task 1 has run: the caller
 * is busy meanwhile, so a worker must have claimed task 1. */
static void par_task_wait(void *ctx, int t, int n)
{
  par_rec *r = ctx;
  if (t == 0 && n > 1) {
    double t0 = nnkit__now();
    while (!__atomic_load_n(&r->ran[1], __ATOMIC_SEQ_CST) && nnkit__now() - t0 < 5.0)
      ;
  }
  par_task(ctx, t, n);
}

START_TEST(parallel_runs_every_task_once)
{
  for (int threads = 1; threads <= 4; threads++)
    for (int cap = 1; cap <= 6; cap++) {
      ck_ok(nnkit_set_num_threads(threads));
      par_rec r;
      memset(&r, 0, sizeof r);
      nnkit__parallel(par_task_wait, &r, cap);
      int most = threads == 1 ? 1 : threads * NNKIT__TASKS_PER_THREAD;
      ck_assert_int_eq(nnkit__max_tasks(), most);
      int n = most < cap ? most : cap;
      for (int t = 0; t < 8; t++) {
        ck_assert_int_eq(r.ran[t], t < n);
        if (t < n)
          ck_assert_int_eq(r.n[t], n);
      }
      ck_assert(pthread_equal(r.who[0], pthread_self())); /* task 0: the caller */
      if (n > 1)
        ck_assert(!pthread_equal(r.who[1], pthread_self()));
    }
  size_t lo, hi, covered = 0;
  for (int t = 0; t < 3; t++) {
    nnkit__split(10, t, 3, &lo, &hi);
    ck_assert_uint_eq(lo, covered);
    covered = hi;
  }
  ck_assert_uint_eq(covered, 10);
  ck_ok(nnkit_set_num_threads(0));
}
END_TEST

/* A parallel call made while another runs (a second application thread)
 * runs its tasks in its caller, with the same n. */
typedef struct nested {
  par_rec inner;
  int outer_ran;
} nested;

static void *second_caller(void *arg)
{
  nested *z = arg;
  nnkit__parallel(par_task, &z->inner, 4);
  return NULL;
}

static void outer_task(void *ctx, int t, int n)
{
  (void)n;
  nested *z = ctx;
  if (t != 0)
    return;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, second_caller, z), 0);
  pthread_join(th, NULL); /* the pool is busy with us meanwhile */
  z->outer_ran = 1;
}

START_TEST(parallel_while_busy_runs_serially)
{
  ck_ok(nnkit_set_num_threads(2));
  nested z;
  memset(&z, 0, sizeof z);
  nnkit__parallel(outer_task, &z, 2);
  ck_assert_int_eq(z.outer_ran, 1);
  int n = nnkit__max_tasks() < 4 ? nnkit__max_tasks() : 4;
  ck_assert_int_ge(n, 2);
  for (int t = 0; t < 8; t++) {
    ck_assert_int_eq(z.inner.ran[t], t < n);
    if (t < n) {
      ck_assert_int_eq(z.inner.n[t], n);
      ck_assert(pthread_equal(z.inner.who[t], z.inner.who[0])); /* one thread ran all */
    }
  }
  ck_ok(nnkit_set_num_threads(0));
}
END_TEST

/* After fork() the child has no pool workers: its parallel calls start
 * new ones instead of waiting for the parent's. */
START_TEST(parallel_after_fork)
{
  ck_ok(nnkit_set_num_threads(2));
  par_rec r;
  memset(&r, 0, sizeof r);
  nnkit__parallel(par_task, &r, 2); /* the parent's worker exists now */
  ck_assert_int_eq(r.ran[1], 1);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    alarm(20); /* a hang fails the test instead of blocking it */
    par_rec c;
    memset(&c, 0, sizeof c);
    nnkit__parallel(par_task_wait, &c, 2);
    _exit(c.ran[0] == 1 && c.ran[1] == 1 && !pthread_equal(c.who[0], c.who[1]) ? 0 : 1);
  }
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "the child's parallel call failed or hung (status %d)", status);
  ck_ok(nnkit_set_num_threads(0));
}
END_TEST

START_TEST(rng_counter_based)
{
  nnkit__rng a, b, c;
  nnkit__rng_init(&a, 7, 3);
  nnkit__rng_init(&b, 7, 3);
  nnkit__rng_init(&c, 7, 4);
  int differ = 0;
  for (int i = 0; i < 100; i++) {
    uint64_t va = nnkit__rng_u64(&a);
    ck_assert_uint_eq(va, nnkit__rng_u64(&b));
    differ += va != nnkit__rng_u64(&c);
  }
  ck_assert_int_eq(differ, 100);
  /* Draw i depends only on (seed, stream, i): skip ahead by setting the
   * counter. */
  nnkit__rng_init(&a, 7, 3);
  for (int i = 0; i < 10; i++)
    nnkit__rng_u64(&a);
  uint64_t eleventh = nnkit__rng_u64(&a);
  nnkit__rng_init(&b, 7, 3);
  b.counter = 10;
  ck_assert_uint_eq(nnkit__rng_u64(&b), eleventh);
}
END_TEST

START_TEST(rng_distributions)
{
  nnkit__rng r;
  nnkit__rng_init(&r, 1, 0);
  const int n = 200000;
  double su = 0, su2 = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; i++) {
    double u = nnkit__rng_uniform(&r);
    ck_assert(u >= 0 && u < 1);
    su += u;
    su2 += u * u;
    double z = nnkit__rng_normal(&r);
    ck_assert(isfinite(z));
    sn += z;
    sn2 += z * z;
  }
  /* Uniform: mean 1/2, variance 1/12. Normal: 0 and 1. Tolerances are
   * about 5 standard errors at n = 200000. */
  ck_assert_double_eq_tol(su / n, 0.5, 0.004);
  ck_assert_double_eq_tol(su2 / n - (su / n) * (su / n), 1.0 / 12, 0.002);
  ck_assert_double_eq_tol(sn / n, 0.0, 0.012);
  ck_assert_double_eq_tol(sn2 / n, 1.0, 0.02);
  size_t hist[7] = {0};
  for (int i = 0; i < 70000; i++) {
    uint64_t v = nnkit__rng_below(&r, 7);
    ck_assert_uint_lt(v, 7);
    hist[v]++;
  }
  for (int i = 0; i < 7; i++)
    ck_assert(hist[i] > 9500 && hist[i] < 10500);
}
END_TEST

START_TEST(rng_shuffle_is_permutation)
{
  size_t idx[1000], seen[1000] = {0};
  for (size_t i = 0; i < 1000; i++)
    idx[i] = i;
  nnkit__rng r;
  nnkit__rng_init(&r, 9, 1);
  nnkit__rng_shuffle(&r, idx, 1000);
  size_t fixed = 0;
  for (size_t i = 0; i < 1000; i++) {
    seen[idx[i]]++;
    fixed += idx[i] == i;
  }
  for (size_t i = 0; i < 1000; i++)
    ck_assert_uint_eq(seen[i], 1);
  ck_assert_uint_lt(fixed, 10); /* ~1 expected for a random permutation */
}
END_TEST

START_TEST(alloc_hook_counts_and_fails)
{
  uint64_t before = nnkit__alloc_count();
  void *p = nnkit__malloc(16);
  ck_assert_ptr_nonnull(p);
  ck_assert_uint_eq(nnkit__alloc_count(), before + 1);
  nnkit__free(p);
  nnkit__alloc_fail_after(2);
  void *a = nnkit__malloc(8);
  void *b = nnkit__calloc(2, 8);
  void *c = nnkit__malloc(8);
  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_null(b);
  ck_assert_ptr_nonnull(c);
  nnkit__free(a);
  nnkit__free(c);
  char *s = nnkit__strdup("abc");
  ck_assert_str_eq(s, "abc");
  nnkit__free(s);
  int ovf = 0;
  ck_assert_uint_eq(nnkit__mul_size(3, 4, &ovf), 12);
  ck_assert_int_eq(ovf, 0);
  nnkit__mul_size(SIZE_MAX / 2, 3, &ovf);
  ck_assert_int_eq(ovf, 1);
}
END_TEST

/* The NULL rule (core.h): every public call that returns no status accepts
 * NULL handles: numeric getters (kinds and yes/no answers included) give 0,
 * pointer getters NULL, void calls do nothing. One line per call of every
 * header that returns something other than nnkit_status. */
START_TEST(null_handles_everywhere)
{
  /* data.h */
  nnkit_dataset_free(NULL);
  ck_assert_uint_eq(nnkit_dataset_count(NULL), 0);
  ck_assert_uint_eq(nnkit_dataset_ndim(NULL), 0);
  ck_assert_uint_eq(nnkit_dataset_dim(NULL, 0), 0);
  ck_assert_uint_eq(nnkit_dataset_sample_size(NULL), 0);
  ck_assert_uint_eq(nnkit_dataset_num_classes(NULL), 0);
  ck_assert_uint_eq(nnkit_dataset_target_dim(NULL), 0);
  ck_assert_ptr_null(nnkit_dataset_data(NULL));
  ck_assert_ptr_null(nnkit_dataset_labels(NULL));
  ck_assert_ptr_null(nnkit_dataset_targets(NULL));
  ck_assert_ptr_null(nnkit_dataset_class_name(NULL, 0));
  /* init.h */
  nnkit_init_free(NULL);
  ck_assert_int_eq((int)nnkit_init_get_kind(NULL), 0);
  /* search.h */
  nnkit_space_free(NULL);
  ck_assert_uint_eq(nnkit_space_num_dims(NULL), 0);
  ck_assert_ptr_null(nnkit_space_dim_name(NULL, 0));
  nnkit_search_free(NULL);
  nnkit_search_set_logger(NULL, NULL, NULL);
  ck_assert_uint_eq(nnkit_search_num_trials(NULL), 0);
  ck_assert_ptr_null(nnkit_search_reason(NULL, 0));
  ck_assert_ptr_null(nnkit_search_warnings(NULL));
  ck_assert(nnkit_trial_value(NULL, 0) == 0);
  ck_assert_uint_eq(nnkit_trial_index(NULL), 0);
  ck_assert_uint_eq(nnkit_trial_seed(NULL), 0);
  ck_assert_uint_eq(nnkit_trial_epochs(NULL), 0);
  ck_assert_int_eq(nnkit_trial_report(NULL, 0, 1), 0);
  nnkit_trial_set_reason(NULL, "x");
  /* monitor.h */
  nnkit_trainer_clear_callbacks(NULL);
  ck_assert_ptr_null(nnkit_trainer_net(NULL));
  ck_assert_ptr_null(nnkit_trainer_optimizer(NULL));
  ck_assert_ptr_null(nnkit_trainer_stop_reason(NULL));
  ck_assert_ptr_null(nnkit_trainer_history(NULL));
  ck_assert_uint_eq(nnkit_history_epochs(NULL), 0);
  ck_assert_uint_eq(nnkit_history_batches(NULL), 0);
  ck_assert_uint_eq(nnkit_history_num_layers(NULL), 0);
  ck_assert_ptr_null(nnkit_trainer_sanity_report(NULL));
  nnkit_diagnosis_free(NULL);
  ck_assert_uint_eq(nnkit_diagnosis_count(NULL), 0);
  ck_assert_int_eq((int)nnkit_diagnosis_verdict(NULL, 0), 0);
  ck_assert_int_eq(nnkit_diagnosis_has(NULL, (nnkit_verdict)1), 0);
  ck_assert_ptr_null(nnkit_diagnosis_evidence(NULL, 0));
  ck_assert_ptr_null(nnkit_diagnosis_advice(NULL, 0));
  ck_assert_ptr_null(nnkit_diagnosis_report(NULL));
  /* net.h */
  nnkit_net_free(NULL);
  ck_assert_int_eq((int)nnkit_net_get_loss(NULL), 0);
  nnkit_net_set_training(NULL, 1);
  ck_assert_int_eq(nnkit_net_is_training(NULL), 0);
  ck_assert_uint_eq(nnkit_net_num_layers(NULL), 0);
  ck_assert_uint_eq(nnkit_net_input_size(NULL), 0);
  ck_assert_uint_eq(nnkit_net_output_size(NULL), 0);
  ck_assert_ptr_null(nnkit_net_layer_describe(NULL, 0));
  ck_assert_uint_eq(nnkit_net_num_params(NULL), 0);
  ck_assert_ptr_null(nnkit_net_params(NULL));
  ck_assert_ptr_null(nnkit_net_grads(NULL));
  ck_assert_int_eq(nnkit_net_is_trainable(NULL, 0), 0);
  ck_assert_ptr_null(nnkit_net_normalizer(NULL));
  ck_assert_ptr_null(nnkit_net_class_name(NULL, 0));
  /* normalizer.h */
  nnkit_normalizer_free(NULL);
  ck_assert_int_eq((int)nnkit_normalizer_kind(NULL), 0);
  ck_assert_int_eq(nnkit_normalizer_is_fitted(NULL), 0);
  ck_assert_uint_eq(nnkit_normalizer_in_size(NULL), 0);
  ck_assert_uint_eq(nnkit_normalizer_out_size(NULL), 0);
  ck_assert_uint_eq(nnkit_normalizer_fit_count(NULL), 0);
  ck_assert_uint_eq(nnkit_normalizer_array_len(NULL, (nnkit_norm_array)0), 0);
  /* optim.h */
  nnkit_optimizer_free(NULL);
  ck_assert_int_eq((int)nnkit_optimizer_kind(NULL), 0);
  ck_assert_uint_eq(nnkit_optimizer_steps(NULL), 0);
  ck_assert(nnkit_optimizer_reg_loss(NULL) == 0.0);
  nnkit_optimizer_reset(NULL);
  ck_assert_uint_eq(nnkit_optimizer_state_size(NULL), 0);
  ck_assert_uint_eq(nnkit_optimizer_state_scalars(NULL), 0);
  nnkit_schedule_free(NULL);
  ck_assert_int_eq((int)nnkit_schedule_kind(NULL), 0);
  ck_assert_uint_eq(nnkit_schedule_steps(NULL), 0);
  ck_assert_ptr_null(nnkit_optimizer_schedule(NULL));
  nnkit_regularizer_free(NULL);
  ck_assert_int_eq((int)nnkit_regularizer_kind(NULL), 0);
  ck_assert_uint_eq(nnkit_optimizer_num_regularizers(NULL), 0);
  /* pipeline.h */
  nnkit_augmenter_free(NULL);
  ck_assert_uint_eq(nnkit_augmenter_count(NULL), 0);
  nnkit_pipeline_free(NULL);
  ck_assert_ptr_null(nnkit_pipeline_batch_data(NULL));
  ck_assert_ptr_null(nnkit_pipeline_batch_labels(NULL));
  ck_assert_ptr_null(nnkit_pipeline_batch_targets(NULL));
  ck_assert_uint_eq(nnkit_pipeline_batches_per_epoch(NULL), 0);
  ck_assert_uint_eq(nnkit_pipeline_sample_size(NULL), 0);
  ck_assert_uint_eq(nnkit_pipeline_ndim(NULL), 0);
  ck_assert_uint_eq(nnkit_pipeline_dim(NULL, 0), 0);
  /* train.h */
  nnkit_trainer_free(NULL);
  nnkit_trainer_set_logger(NULL, NULL, NULL);
  ck_assert_uint_eq(nnkit_trainer_epochs_done(NULL), 0);
  /* ensemble.h */
  nnkit_ensemble_free(NULL);
  ck_assert_uint_eq(nnkit_ensemble_size(NULL), 0);
  ck_assert_int_eq(nnkit_ensemble_get_kind(NULL), 0);
  ck_assert_ptr_null(nnkit_ensemble_member(NULL, 0));
  ck_assert_double_eq(nnkit_ensemble_weight(NULL, 0), 0);
  ck_assert_uint_eq(nnkit_trainer_num_snapshots(NULL), 0);
}
END_TEST

/* ---- atomic writes (lib/core/tmpfile.c), under every save -------------- */

static void tfile_write(const char *path, const char *text)
{
  nnkit__tfile t;
  ck_ok(nnkit__tfile_open(&t, path));
  fputs(text, t.f);
  ck_ok(nnkit__tfile_commit(&t, 1));
}

static void assert_text(const char *path, const char *text)
{
  char buf[64] = {0};
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  ck_assert_uint_eq(n, strlen(text));
  ck_assert_str_eq(buf, text);
}

static mode_t mode_of(const char *path)
{
  struct stat sb;
  ck_assert_int_eq(stat(path, &sb), 0);
  return sb.st_mode & 07777;
}

/* Files next to path whose name starts with "<base>.tmp.". */
static int temps_next_to(const char *path)
{
  const char *slash = strrchr(path, '/');
  char dir[512], prefix[512];
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  snprintf(prefix, sizeof prefix, "%s.tmp.", slash + 1);
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return n;
}

START_TEST(atomic_write_keeps_the_mode_and_honours_the_umask)
{
  char path[512];
  tu_tmp_path(path, sizeof path, "mode.txt");
  unlink(path);
  mode_t old = umask(027);
  tfile_write(path, "new"); /* a new file: 0666 & ~umask, as fopen */
  ck_assert_int_eq(mode_of(path), 0640);
  umask(0);
  ck_assert_int_eq(chmod(path, 0600), 0);
  tfile_write(path, "again"); /* an existing 0600 file stays 0600 */
  ck_assert_int_eq(mode_of(path), 0600);
  ck_assert_int_eq(chmod(path, 0604), 0);
  tfile_write(path, "third");
  ck_assert_int_eq(mode_of(path), 0604);
  umask(old);
  assert_text(path, "third");
  ck_assert_int_eq(temps_next_to(path), 0);
}
END_TEST

START_TEST(atomic_write_goes_through_a_symlink)
{
  char target[512], link1[512], link2[512];
  tu_tmp_path(target, sizeof target, "real.txt");
  tu_tmp_path(link1, sizeof link1, "link1.txt");
  tu_tmp_path(link2, sizeof link2, "link2.txt");
  unlink(target);
  unlink(link1);
  unlink(link2);
  tfile_write(target, "old");
  ck_assert_int_eq(chmod(target, 0600), 0);
  /* link2 -> link1 (relative) -> target (absolute) */
  ck_assert_int_eq(symlink(target, link1), 0);
  ck_assert_int_eq(symlink(strrchr(link1, '/') + 1, link2), 0);
  tfile_write(link2, "through");
  struct stat sb;
  ck_assert_int_eq(lstat(link2, &sb), 0);
  ck_assert(S_ISLNK(sb.st_mode));
  ck_assert_int_eq(lstat(link1, &sb), 0);
  ck_assert(S_ISLNK(sb.st_mode));
  ck_assert_int_eq(lstat(target, &sb), 0);
  ck_assert(S_ISREG(sb.st_mode));
  ck_assert_int_eq(sb.st_mode & 07777, 0600);
  assert_text(target, "through");
  ck_assert_int_eq(temps_next_to(target), 0);
  ck_assert_int_eq(temps_next_to(link2), 0);
  /* A dangling link: its target is created, the link kept. */
  unlink(target);
  tfile_write(link1, "created");
  ck_assert_int_eq(lstat(link1, &sb), 0);
  ck_assert(S_ISLNK(sb.st_mode));
  assert_text(target, "created");
  /* A loop of links is an error that names the path. */
  char loop[512];
  tu_tmp_path(loop, sizeof loop, "loop.txt");
  unlink(loop);
  ck_assert_int_eq(symlink(strrchr(loop, '/') + 1, loop), 0);
  nnkit__tfile t;
  ck_fails(nnkit__tfile_open(&t, loop), NNKIT_E_IO, "loop.txt");
  unlink(loop);
  unlink(link1);
  unlink(link2);
}
END_TEST

START_TEST(atomic_write_removes_stale_temporaries)
{
  char path[512], stale[2][600], other[3][600];
  tu_tmp_path(path, sizeof path, "stale.txt");
  unlink(path);
  /* What killed saves leave behind: our exact form. */
  snprintf(stale[0], sizeof stale[0], "%s.tmp.Ab3xY9", path);
  snprintf(stale[1], sizeof stale[1], "%s.tmp.000000", path);
  /* Not ours: another base, another suffix length, a folder. */
  snprintf(other[0], sizeof other[0], "%s.tmp.Ab3xY", path);
  snprintf(other[1], sizeof other[1], "%s.tmp.Ab3xY9.bak", path);
  snprintf(other[2], sizeof other[2], "%s.tmp.DIRDIR", path);
  for (int i = 0; i < 2; i++) {
    FILE *f = fopen(stale[i], "wb");
    ck_assert_ptr_nonnull(f);
    fclose(f);
  }
  for (int i = 0; i < 2; i++) {
    FILE *f = fopen(other[i], "wb");
    ck_assert_ptr_nonnull(f);
    fclose(f);
  }
  ck_assert_int_eq(mkdir(other[2], 0700), 0);
  tfile_write(path, "fresh");
  for (int i = 0; i < 2; i++)
    ck_assert_msg(access(stale[i], F_OK) != 0, "%s was not removed", stale[i]);
  for (int i = 0; i < 3; i++)
    ck_assert_msg(access(other[i], F_OK) == 0, "%s was removed", other[i]);
  assert_text(path, "fresh");
  unlink(other[0]);
  unlink(other[1]);
  rmdir(other[2]);
  unlink(path);
}
END_TEST

static Suite *core_suite(void)
{
  Suite *s = suite_create("core");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, version_matches_header);
  tcase_add_test(tc, status_strings);
  tcase_add_test(tc, last_error_set_and_clear);
  tcase_add_test(tc, last_error_is_thread_local);
  tcase_add_test(tc, threads);
  tcase_add_test(tc, parallel_runs_every_task_once);
  tcase_add_test(tc, parallel_while_busy_runs_serially);
  tcase_add_test(tc, parallel_after_fork);
  tcase_add_test(tc, rng_counter_based);
  tcase_add_test(tc, rng_distributions);
  tcase_add_test(tc, rng_shuffle_is_permutation);
  tcase_add_test(tc, alloc_hook_counts_and_fails);
  tcase_add_test(tc, null_handles_everywhere);
  tcase_add_test(tc, atomic_write_keeps_the_mode_and_honours_the_umask);
  tcase_add_test(tc, atomic_write_goes_through_a_symlink);
  tcase_add_test(tc, atomic_write_removes_stale_temporaries);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nnkit_test_run(core_suite()); }
