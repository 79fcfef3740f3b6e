/* Threads: nnkit's own fork-join pool, OpenBLAS kept single-threaded, and
 * the clock.
 *
 * nnkit owns its threads. nnkit_set_num_threads(n) sizes a pool of n - 1
 * persistent workers (the caller is the n-th) and sets OpenBLAS to one
 * thread; layers split their work (samples of a batch, rows of a GEMM,
 * ranges of elements) over the pool with nnkit__parallel() and call
 * single-threaded BLAS inside. One owner of the cores: no OpenBLAS worker
 * spins on a core while nnkit's want it, and small per-sample GEMMs pay
 * no BLAS synchronization. The split is static (task t always gets the
 * same share), so a fixed thread count gives bitwise-identical results.
 *
 * Hand-offs spin briefly before they sleep: a worker that finished a task
 * watches for the next call for SPIN_SECONDS (0.2 ms), and
 * the caller watches for the workers' end the same way, so the dozen
 * fork-joins of a training step do not each pay a futex wake-up (on a
 * virtual machine that is an inter-processor interrupt, and it made two
 * threads slower than one for the MLP). Past that they block on the
 * condition variables as before.
 *
 * A parallel call made inside a task runs inline as one task of its
 * thread (nnkit__task_slot() names the thread's working memory), so the
 * net can give each thread whole slices of a batch and run the layers'
 * own parallel code on them unchanged.
 *
 * Until nnkit_set_num_threads() is called the pool uses all cores (the
 * first parallel call sets it up). A parallel call made while another one
 * runs (two application threads training two nets at once) runs serially
 * in its caller instead of waiting. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "internal.h"

/* OpenBLAS's extension API; declared by its cblas.h, repeated here so the
 * build also works against cblas.h headers that omit it. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

#define MAX_THREADS 1024

static struct {
  pthread_mutex_t lock; /* guards everything below */
  pthread_cond_t go, done;
  pthread_t tid[MAX_THREADS];
  int started;          /* workers created */
  int want;             /* threads in use (workers + caller), 0 = not set */
  unsigned long gen;    /* bumped per parallel call */
  int quit;
  nnkit__task_fn fn;
  void *ctx;
  int n;                /* tasks of the current call */
  int workers;          /* workers 1..workers take part in it */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
            .go = PTHREAD_COND_INITIALIZER,
            .done = PTHREAD_COND_INITIALIZER};

static atomic_int busy; /* 1 while a parallel call runs */
static atomic_ulong agen;    /* pool.gen, readable without the lock */
static atomic_int apending;  /* tasks of the current call not finished yet */
static atomic_int aquit;
/* The next unclaimed task of the current call, tagged with the call's
 * generation in the high 32 bits: a worker that wakes late can never
 * claim a task of a later call with an earlier call's function. */
static _Atomic unsigned long long aclaim;

/* The task the calling thread runs (-1: none) and, inside a nested call,
 * the index that call's single task stands for (the enclosing task's);
 * the thread's slot: 0 for a caller, i for worker i. */
static _Thread_local int tl_task = -1;
static _Thread_local int tl_base;
static _Thread_local int tl_slot;

int nnkit__task_slot(void) { return tl_slot; }

int nnkit__task_part(int t) { return tl_base + t; }

/* The task count of a call at `threads` threads, before max_tasks. */
static int tasks_at(int threads)
{
  return threads <= 1 ? 1 : threads * NNKIT__TASKS_PER_THREAD;
}

int nnkit__max_tasks(void) { return tasks_at(nnkit__num_threads()); }


int nnkit__in_task(void) { return tl_task >= 0; }

/* fn(ctx, t, n) with tl_task = t for calls nested inside it. */
static void run_task(nnkit__task_fn fn, void *ctx, int t, int n)
{
  int saved = tl_task;
  tl_task = t;
  fn(ctx, t, n);
  tl_task = saved;
}

/* The n tasks one after the other on the calling thread. */
static void run_inline(nnkit__task_fn fn, void *ctx, int n)
{
  for (int t = 0; t < n; t++)
    run_task(fn, ctx, t, n);
}

#define SPIN_SECONDS 200e-6

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Spins until done(arg): 1 when it became true within SPIN_SECONDS (the
 * clock is read every 64 pauses), 0 when the time ran out. */
static int spin_until(int (*done)(const void *), const void *arg)
{
  double t0 = 0;
  for (int i = 0;; i++) {
    if (done(arg))
      return 1;
    relax();
    if ((i & 63) == 63) {
      double t = nnkit__now();
      if (t0 == 0)
        t0 = t;
      else if (t - t0 > SPIN_SECONDS)
        return done(arg);
    }
  }
}

static int new_call(const void *seen)
{
  return atomic_load(&agen) != *(const unsigned long *)seen || atomic_load(&aquit);
}

/* Claims the next task of call `gen` (n tasks): its index, or -1 when
 * they are all taken or the call is over. */
static int claim(unsigned long gen, int n)
{
  unsigned long long cur = atomic_load(&aclaim);
  for (;;) {
    if ((unsigned long)(cur >> 32) != (gen & 0xffffffffUL) || (int)(cur & 0xffffffffU) >= n)
      return -1;
    if (atomic_compare_exchange_weak(&aclaim, &cur, cur + 1))
      return (int)(cur & 0xffffffffU);
  }
}

/* Runs task t of the current call and counts it done; the last one wakes
 * the caller if it sleeps. */
static void run_claimed(nnkit__task_fn fn, void *ctx, int t, int n)
{
  run_task(fn, ctx, t, n);
  if (atomic_fetch_sub(&apending, 1) == 1) {
    pthread_mutex_lock(&pool.lock);
    pthread_cond_signal(&pool.done);
    pthread_mutex_unlock(&pool.lock);
  }
}

static int workers_done(const void *unused)
{
  (void)unused;
  return atomic_load(&apending) == 0;
}

/* A forked child has only the forking thread: it starts a pool of its own
 * (the parent's workers, and their state, are not there). */
static void child_after_fork(void)
{
  pthread_mutex_init(&pool.lock, NULL);
  pthread_cond_init(&pool.go, NULL);
  pthread_cond_init(&pool.done, NULL);
  pool.started = 0;
  pool.quit = 0;
  atomic_store(&busy, 0);
  atomic_store(&apending, 0);
  atomic_store(&aquit, 0);
}

static void *worker(void *arg)
{
  tl_slot = (int)(intptr_t)arg;
  unsigned long seen = 0;
  for (;;) {
    spin_until(new_call, &seen);
    pthread_mutex_lock(&pool.lock);
    while (!pool.quit && pool.gen == seen)
      pthread_cond_wait(&pool.go, &pool.lock);
    if (pool.quit) {
      pthread_mutex_unlock(&pool.lock);
      break;
    }
    seen = pool.gen;
    if (tl_slot > pool.workers) { /* the thread count went down since */
      pthread_mutex_unlock(&pool.lock);
      continue;
    }
    nnkit__task_fn fn = pool.fn;
    void *ctx = pool.ctx;
    int n = pool.n;
    pthread_mutex_unlock(&pool.lock);
    for (int t; (t = claim(seen, n)) >= 0;)
      run_claimed(fn, ctx, t, n);
  }
  return NULL;
}

/* Joins the workers when the library is unloaded (or the process exits),
 * so leak checkers see no live threads. */
__attribute__((destructor)) static void pool_shutdown(void)
{
  pthread_mutex_lock(&pool.lock);
  pool.quit = 1;
  atomic_store(&aquit, 1);
  int started = pool.started;
  pthread_cond_broadcast(&pool.go);
  pthread_mutex_unlock(&pool.lock);
  for (int i = 0; i < started; i++)
    pthread_join(pool.tid[i], NULL);
  pool.started = 0;
}

static int cores(void)
{
  long c = sysconf(_SC_NPROCESSORS_ONLN);
  return c > 0 ? (c > MAX_THREADS ? MAX_THREADS : (int)c) : 1;
}

NNKIT_API nnkit_status nnkit_set_num_threads(int n)
{
  if (n < 0 || n > MAX_THREADS)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_set_num_threads: %d threads is outside [0, 1024]; "
                      "pass 0 for all cores or a positive count", n);
  if (n == 0)
    n = cores();
  openblas_set_num_threads(1);
  pthread_mutex_lock(&pool.lock);
  pool.want = n;
  pthread_mutex_unlock(&pool.lock);
  return NNKIT_OK;
}

NNKIT_API int nnkit_get_num_threads(void)
{
  pthread_mutex_lock(&pool.lock);
  int n = pool.want;
  pthread_mutex_unlock(&pool.lock);
  return n > 0 ? n : cores();
}

/* A per-thread cap on the threads nnkit's math uses (0: none): a search
 * worker runs its trials at one thread. */
static _Thread_local int tl_limit;

void nnkit__set_thread_limit(int n) { tl_limit = n > 0 ? n : 0; }

int nnkit__num_threads(void)
{
  int n = nnkit_get_num_threads();
  return tl_limit > 0 && tl_limit < n ? tl_limit : n;
}

int nnkit__blas_threads(int n)
{
  int old = openblas_get_num_threads();
  openblas_set_num_threads(n);
  return old;
}

void nnkit__parallel(nnkit__task_fn fn, void *ctx, int max_tasks)
{
  if (tl_task >= 0) { /* nested: one task, inline, in the enclosing slot */
    int saved_base = tl_base, saved_task = tl_task;
    tl_base += tl_task;
    tl_task = 0;
    fn(ctx, 0, 1);
    tl_base = saved_base;
    tl_task = saved_task;
    return;
  }
  int threads = nnkit__num_threads(), n = tasks_at(threads);
  if (n > max_tasks)
    n = max_tasks > 1 ? max_tasks : 1;
  int expect = 0;
  if (n <= 1 || !atomic_compare_exchange_strong(&busy, &expect, 1)) {
    run_inline(fn, ctx, n); /* the same tasks, one after the other */
    return;
  }
  pthread_mutex_lock(&pool.lock);
  if (pool.want == 0) { /* first use without nnkit_set_num_threads() */
    pool.want = threads;
    openblas_set_num_threads(1);
  }
  static int atfork_done;
  if (!atfork_done)
    atfork_done = pthread_atfork(NULL, NULL, child_after_fork) == 0;
  while (pool.started < threads - 1) {
    if (pthread_create(&pool.tid[pool.started], NULL, worker,
                       (void *)(intptr_t)(pool.started + 1)) != 0)
      break;
    pool.started++;
  }
  /* Workers past threads - 1 (a larger count set before) see the call but
   * claim nothing: the slots stay below nnkit__num_threads(). A worker
   * that could not start leaves its share to the others, the same n. */
  int workers = pool.started < threads - 1 ? pool.started : threads - 1;
  if (workers == 0) {
    pthread_mutex_unlock(&pool.lock);
    atomic_store(&busy, 0);
    run_inline(fn, ctx, n);
    return;
  }
  pool.workers = workers;
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  atomic_store(&apending, n);
  pool.gen++;
  unsigned long gen = pool.gen;
  atomic_store(&aclaim, ((unsigned long long)(gen & 0xffffffffUL) << 32) | 1ULL);
  atomic_store(&agen, gen);
  pthread_cond_broadcast(&pool.go);
  pthread_mutex_unlock(&pool.lock);
  /* Task 0 is the caller's; then it takes every task no worker has
   * claimed yet: a worker that a busy core keeps off the CPU costs at
   * most the task it started, never a whole share of the batch. Task t
   * is the same share whoever runs it, so results do not change. */
  run_claimed(fn, ctx, 0, n);
  for (int t; (t = claim(gen, n)) >= 0;)
    run_claimed(fn, ctx, t, n);
  if (!spin_until(workers_done, NULL)) {
    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&apending) > 0)
      pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
  }
  atomic_store(&busy, 0);
}

double nnkit__now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
