/* The hyperparameter search (nnkit/search.h): settings, the plan of each
 * strategy (grid, random, coarse-to-fine, successive halving, Hyperband)
 * as phases of trials, the workers that run a phase's trials (threads,
 * each trial at one nnkit thread and one BLAS thread), median stopping,
 * the trial handle and the built-in "build, train, validate" objective.
 *
 * Determinism: a trial's values and seed are functions of the search's
 * SEED and the trial's index (or its configuration's), a phase's plan
 * depends only on the earlier phases' records, and a trial's stopping
 * decision only on the lower-indexed trials of its phase; so the records
 * are the same with any number of workers, and a resumed search plans
 * what the killed one planned. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

/* ---- settings -------------------------------------------------------------- */

static const nnkit__spec search_specs[] = {
  {0, NNKIT_SEARCH_STRATEGY, "strategy", 1, 5, NNKIT_STRATEGY_RANDOM, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_TRIALS, "trials", 1, 1e6, 20, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_EPOCHS, "epochs", 1, 1e6, 5, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_FINE_TRIALS, "fine_trials", 1, 1e6, 20, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_FINE_EPOCHS, "fine_epochs", 1, 1e6, 10, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_TOP_K, "top_k", 1, 1e6, 5, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_GRID_POINTS, "grid_points", 1, 1e4, 3, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_ETA, "eta", 2, 64, 3, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_MAX_EPOCHS, "max_epochs", 1, 1e6, 27, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_WORKERS, "workers", 1, 256, 1, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_SEED, "seed", 0, 9007199254740992.0, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_MAXIMIZE, "maximize", 0, 1, 1, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_PRUNE, "prune", 0, 1, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_FOLDS, "folds", 0, 100, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_SEARCH_VERBOSE, "verbose", 0, 1, 0, NNKIT_BOUND_INTEGER},
};
#define NSPECS (sizeof search_specs / sizeof search_specs[0])

#define GRID_MAX 1000000 /* trials of a grid */
#define PRUNE_MIN 3      /* earlier trials median stopping needs */
#define EDGE 0.1        /* the outer share of a range that draws a warning */
#define SEED_STREAMS (UINT64_C(1) << 62) /* trial seeds' streams, apart from draws' */

#define S(key) (s->set[key])

NNKIT_API nnkit_status nnkit_search_create(nnkit_search **out, const nnkit_space *sp)
{
  if (!out || !sp)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_search_create: NULL argument");
  *out = NULL;
  if (sp->num_dims == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_search_create: the space has no dimensions; add some "
                      "with nnkit_space_add()");
  nnkit_search *s = nnkit__calloc(1, sizeof *s);
  if (!s)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_search_create: out of memory");
  s->space = nnkit__space_copy(sp);
  if (!s->space) {
    nnkit__free(s);
    return NNKIT_E_NOMEM;
  }
  for (size_t i = 0; i < NSPECS; i++)
    s->set[search_specs[i].key] = search_specs[i].def;
  *out = s;
  return NNKIT_OK;
}

NNKIT_API void nnkit_search_free(nnkit_search *s)
{
  if (!s)
    return;
  nnkit__search_clear(s);
  for (size_t i = 0; i < s->cap_trials; i++)
    nnkit__free(s->trials[i].values);
  nnkit__free(s->trials);
  nnkit_space_free(s->space);
  nnkit__free(s->score_name);
  nnkit__free(s->results_path);
  nnkit__free(s->warnings);
  nnkit__free(s);
}

NNKIT_API nnkit_status nnkit_search_set(nnkit_search *s, nnkit_search_param key,
                                        double value)
{
  if (!s)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_search_set: the search is NULL");
  const nnkit__spec *sp =
      nnkit__spec_lookup(search_specs, NSPECS, 0, key, "search", "NNKIT_SEARCH_*");
  if (!sp)
    return NNKIT_E_INVALID;
  nnkit_status st = nnkit__spec_check(sp, "search", value);
  if (st == NNKIT_OK)
    s->set[key] = value;
  return st;
}

NNKIT_API nnkit_status nnkit_search_get(double *out, const nnkit_search *s,
                                        nnkit_search_param key)
{
  if (!s || !out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_search_get: NULL argument");
  if (!nnkit__spec_lookup(search_specs, NSPECS, 0, key, "search", "NNKIT_SEARCH_*"))
    return NNKIT_E_INVALID;
  *out = s->set[key];
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_search_bounds(double *lo_out, double *hi_out,
                                           int *flags_out, nnkit_search_param key)
{
  const nnkit__spec *sp =
      nnkit__spec_lookup(search_specs, NSPECS, 0, key, "search", "NNKIT_SEARCH_*");
  if (!sp)
    return NNKIT_E_INVALID;
  nnkit__spec_bounds(sp, lo_out, hi_out, flags_out);
  return NNKIT_OK;
}

NNKIT_API void nnkit_search_set_logger(nnkit_search *s, nnkit_log_fn fn, void *user)
{
  if (!s)
    return;
  s->log_fn = fn;
  s->log_user = user;
}

NNKIT_API nnkit_status nnkit_search_set_score_name(nnkit_search *s, const char *name)
{
  if (!s)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_search_set_score_name: the search is NULL");
  if (!nnkit__search_name_ok(name))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_search_set_score_name: '%s' is not 1 to 63 letters, "
                      "digits, '_', '.' or '-'", name ? name : "(NULL)");
  char *c = nnkit__strdup(name);
  if (!c)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_search_set_score_name: out of memory");
  nnkit__free(s->score_name);
  s->score_name = c;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_search_set_results_file(nnkit_search *s, const char *path)
{
  if (!s)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_search_set_results_file: the search is NULL");
  char *c = NULL;
  if (path) {
    if (strlen(path) > 3000)
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_search_set_results_file: the path is longer than "
                        "3000 characters");
    c = nnkit__strdup(path);
    if (!c)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_search_set_results_file: out of memory");
  }
  nnkit__free(s->results_path);
  s->results_path = c;
  return NNKIT_OK;
}

/* ---- the run --------------------------------------------------------------- */

typedef struct run_ctx {
  nnkit_search *s;
  nnkit_objective_fn fn;
  void *user;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t start, next, end; /* the running phase's trials [start, end) */
  int stop;                /* the objective asked to stop */
  nnkit_status err;        /* the first failure of the results file */
  char errmsg[1024];
  nnkit__results_file rf;
  nnkit__file_rec *file; /* records read from the results file */
  size_t file_n;
} run_ctx;

struct nnkit_trial {
  run_ctx *run;
  size_t index;
  char reason[256];
  int pruned;
};

static void emit(nnkit_search *s, const char *line)
{
  if (!S(NNKIT_SEARCH_VERBOSE))
    return;
  if (s->log_fn) {
    s->log_fn(line, s->log_user);
  } else {
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }
}

static uint64_t trial_seed(const nnkit_search *s, size_t config)
{
  nnkit__rng r;
  nnkit__rng_init(&r, (uint64_t)S(NNKIT_SEARCH_SEED), SEED_STREAMS + config);
  return nnkit__rng_u64(&r) >> 11; /* [0, 2^53) */
}

/* Plans trial i: values already in the record; the rest here. */
static void plan(nnkit_search *s, size_t i, size_t phase, size_t config, size_t epochs)
{
  nnkit__trial_rec *r = &s->trials[i];
  r->phase = phase;
  r->config = config;
  r->epochs = epochs;
  r->seed = trial_seed(s, config);
  r->score = r->score_std = NAN;
}

/* Runs trial i on the calling worker. */
static void run_trial(run_ctx *rc, size_t i)
{
  nnkit_search *s = rc->s;
  nnkit__trial_rec *r = &s->trials[i];
  nnkit_trial t = {rc, i, "", 0};
  double score = NAN;
  nnkit_clear_error();
  double t0 = nnkit__now();
  int ret = rc->fn(&score, &t, rc->user);
  double sec = nnkit__now() - t0;
  pthread_mutex_lock(&rc->mu);
  if (ret > 0) {
    rc->stop = 1;
  } else {
    r->seconds = sec;
    r->score = score;
    if (ret < 0) {
      r->status = NNKIT_TRIAL_FAILED;
      r->score = NAN;
      const char *why = t.reason[0] ? t.reason : nnkit_last_error();
      if (why[0])
        snprintf(r->reason, sizeof r->reason, "%s", why);
      else
        snprintf(r->reason, sizeof r->reason, "the objective returned %d", ret);
    } else if (!isfinite(score)) {
      r->status = NNKIT_TRIAL_FAILED;
      snprintf(r->reason, sizeof r->reason,
               "the objective's score is %g (diverged)", score);
      r->score = NAN;
    } else if (t.pruned) {
      r->status = NNKIT_TRIAL_PRUNED;
      snprintf(r->reason, sizeof r->reason,
               "median stopping after epoch %zu", r->reached);
    } else {
      r->status = NNKIT_TRIAL_OK;
    }
    r->done = 1;
    if (rc->err == NNKIT_OK) {
      nnkit_status st = nnkit__results_append(&rc->rf, s, i);
      if (st != NNKIT_OK) {
        rc->err = st;
        snprintf(rc->errmsg, sizeof rc->errmsg, "%s", nnkit_last_error());
      }
    }
    char line[2048];
    nnkit__search_line(s, i, i - rc->start + 1, rc->end - rc->start, line, sizeof line);
    emit(s, line);
  }
  r->ended = 1;
  pthread_cond_broadcast(&rc->cv);
  pthread_mutex_unlock(&rc->mu);
}

static void *worker(void *arg)
{
  run_ctx *rc = arg;
  nnkit__set_thread_limit(1);
  pthread_mutex_lock(&rc->mu);
  for (;;) {
    while (rc->next < rc->end && rc->s->trials[rc->next].done)
      rc->next++;
    if (rc->stop || rc->err != NNKIT_OK || rc->next >= rc->end)
      break;
    size_t i = rc->next++;
    pthread_mutex_unlock(&rc->mu);
    run_trial(rc, i);
    pthread_mutex_lock(&rc->mu);
  }
  pthread_mutex_unlock(&rc->mu);
  nnkit__set_thread_limit(0);
  return NULL;
}

/* Takes finished trials of [lo, hi) from the results file; NNKIT_E_STATE
 * when a record's values differ from the plan's. */
static nnkit_status take_resumed(run_ctx *rc, size_t lo, size_t hi)
{
  nnkit_search *s = rc->s;
  size_t nd = s->space->num_dims, taken = 0;
  for (size_t k = 0; k < rc->file_n; k++) {
    nnkit__file_rec *f = &rc->file[k];
    size_t i = f->index;
    if (i < lo || i >= hi || s->trials[i].done)
      continue;
    nnkit__trial_rec *r = &s->trials[i];
    int same = f->rec.epochs == r->epochs && f->rec.config == r->config &&
               f->rec.phase == r->phase;
    for (size_t j = 0; same && j < nd; j++)
      same = f->rec.values[j] == r->values[j];
    if (!same)
      return nnkit__err(NNKIT_E_STATE,
                        "search results file %s: trial %zu was recorded with other "
                        "values or epochs than this search plans for it: the file "
                        "belongs to another search (space, seed or strategy); use a "
                        "new file", s->results_path, i);
    r->status = f->rec.status;
    r->score = f->rec.score;
    r->score_std = f->rec.score_std;
    r->seconds = f->rec.seconds;
    memcpy(r->reason, f->rec.reason, sizeof r->reason);
    nnkit__free(r->curve);
    r->curve = f->rec.curve; /* moved */
    f->rec.curve = NULL;
    r->reached = f->rec.reached;
    r->done = r->ended = 1;
    taken++;
  }
  if (taken) {
    char line[160];
    snprintf(line, sizeof line, "resumed %zu finished trial(s) of this phase from %s",
             taken, s->results_path);
    emit(s, line);
  }
  return NNKIT_OK;
}

/* Runs the planned trials [lo, hi) as one phase on the workers. */
static nnkit_status run_phase(run_ctx *rc, size_t lo, size_t hi, const char *what)
{
  nnkit_search *s = rc->s;
  nnkit_status st = take_resumed(rc, lo, hi); /* those bring their curves */
  if (st != NNKIT_OK)
    return st;
  for (size_t i = lo; i < hi; i++) {
    if (!s->trials[i].curve && s->trials[i].epochs > 0) {
      s->trials[i].curve = nnkit__calloc(s->trials[i].epochs, sizeof(double));
      if (!s->trials[i].curve)
        return nnkit__err(NNKIT_E_NOMEM, "search: out of memory");
    }
  }
  char line[256];
  snprintf(line, sizeof line, "%s: %zu trial(s)", what, hi - lo);
  emit(s, line);
  rc->start = rc->next = lo;
  rc->end = hi;
  size_t workers = (size_t)S(NNKIT_SEARCH_WORKERS);
  if (workers > hi - lo)
    workers = hi - lo > 0 ? hi - lo : 1;
  pthread_t tid[256];
  size_t started = 0;
  for (size_t w = 1; w < workers; w++) {
    if (pthread_create(&tid[started], NULL, worker, rc) != 0)
      break; /* fewer workers: the same results, later */
    started++;
  }
  worker(rc); /* the caller is a worker too */
  for (size_t w = 0; w < started; w++)
    pthread_join(tid[w], NULL);
  if (rc->err != NNKIT_OK)
    return nnkit__err(rc->err, "%s", rc->errmsg);
  return NNKIT_OK;
}

/* Indices of the NNKIT_TRIAL_OK trials of [lo, hi), best first (ties: lower
 * index first), into idx; returns their count. */
static size_t ranked(const nnkit_search *s, size_t lo, size_t hi, size_t *idx)
{
  size_t n = 0;
  for (size_t i = lo; i < hi; i++) {
    if (!s->trials[i].done || s->trials[i].status != NNKIT_TRIAL_OK)
      continue;
    size_t k = n++; /* insertion: stable, so ties keep index order */
    while (k > 0 && nnkit__search_better(s, s->trials[i].score, s->trials[idx[k - 1]].score)) {
      idx[k] = idx[k - 1];
      k--;
    }
    idx[k] = i;
  }
  return n;
}

/* Plans `count` new trials after the *n planned so far, drawn from sp,
 * `epochs` each, in `phase`; *n grows by count. */
static nnkit_status draw_trials(nnkit_search *s, const nnkit_space *sp, size_t *n,
                                size_t count, size_t phase, size_t epochs)
{
  size_t lo = *n;
  nnkit_status st = nnkit__search_reserve(s, lo + count);
  if (st != NNKIT_OK)
    return st;
  for (size_t i = lo; i < lo + count; i++) {
    nnkit__space_draw(sp, (uint64_t)S(NNKIT_SEARCH_SEED), i, s->trials[i].values);
    plan(s, i, phase, i, epochs);
  }
  *n = lo + count;
  return NNKIT_OK;
}

static nnkit_status random_phase(run_ctx *rc, const nnkit_space *sp, size_t *n,
                                 size_t count, size_t phase, size_t epochs,
                                 const char *what)
{
  size_t lo = *n;
  nnkit_status st = draw_trials(rc->s, sp, n, count, phase, epochs);
  return st != NNKIT_OK ? st : run_phase(rc, lo, *n, what);
}

static nnkit_status grid(run_ctx *rc)
{
  nnkit_search *s = rc->s;
  const nnkit_space *sp = s->space;
  size_t nd = sp->num_dims, points = (size_t)S(NNKIT_SEARCH_GRID_POINTS);
  size_t total = 1, maxn = points;
  for (size_t j = 0; j < nd; j++)
    maxn = sp->dims[j].n > maxn ? sp->dims[j].n : maxn;
  int ovf = 0;
  size_t cells = nnkit__mul_size(nd, maxn, &ovf);
  double *axes = ovf ? NULL : nnkit__calloc(cells, sizeof *axes);
  size_t *len = nnkit__malloc(nd * sizeof *len);
  nnkit_status st = NNKIT_OK;
  if (!axes || !len)
    st = nnkit__err(NNKIT_E_NOMEM, "search: out of memory for the grid");
  for (size_t j = 0; st == NNKIT_OK && j < nd; j++) {
    len[j] = nnkit__space_grid_axis(&sp->dims[j], points, axes + j * maxn);
    if (total > GRID_MAX / len[j])
      st = nnkit__err(NNKIT_E_INVALID,
                      "search: the grid has more than %d trials; use fewer "
                      "GRID_POINTS or dimensions, or random search", GRID_MAX);
    total *= len[j];
  }
  if (st == NNKIT_OK)
    st = nnkit__search_reserve(s, total);
  for (size_t i = 0; st == NNKIT_OK && i < total; i++) {
    size_t rest = i;
    for (size_t j = nd; j-- > 0;) { /* the last dimension varies fastest */
      s->trials[i].values[j] = axes[j * maxn + rest % len[j]];
      rest /= len[j];
    }
    plan(s, i, 0, i, (size_t)S(NNKIT_SEARCH_EPOCHS));
  }
  nnkit__free(axes);
  nnkit__free(len);
  if (st != NNKIT_OK)
    return st;
  return run_phase(rc, 0, total, "grid");
}

/* Copies the values of the top k ranked trials into rows. */
static double *top_rows(const nnkit_search *s, const size_t *idx, size_t k)
{
  size_t nd = s->space->num_dims;
  double *rows = nnkit__malloc((k ? k : 1) * nd * sizeof *rows);
  for (size_t i = 0; rows && i < k; i++)
    memcpy(rows + i * nd, s->trials[idx[i]].values, nd * sizeof *rows);
  return rows;
}

static nnkit_status coarse_fine(run_ctx *rc)
{
  nnkit_search *s = rc->s;
  size_t n = 0, coarse = (size_t)S(NNKIT_SEARCH_TRIALS);
  nnkit_status st = random_phase(rc, s->space, &n, coarse, 0,
                                 (size_t)S(NNKIT_SEARCH_EPOCHS), "coarse phase");
  if (st != NNKIT_OK || rc->stop)
    return st;
  size_t *idx = nnkit__malloc(coarse * sizeof *idx);
  if (!idx)
    return nnkit__err(NNKIT_E_NOMEM, "search: out of memory");
  size_t ok = ranked(s, 0, coarse, idx);
  if (ok == 0) {
    nnkit__free(idx);
    nnkit__search_warn(s, "coarse phase: no trial finished, so the fine phase was "
                          "not run; look at the trials' reasons");
    return NNKIT_OK;
  }
  size_t k = (size_t)S(NNKIT_SEARCH_TOP_K);
  k = k < ok ? k : ok;
  double *rows = top_rows(s, idx, k);
  nnkit__free(idx);
  nnkit_space *fine = rows ? nnkit__space_copy(s->space) : NULL;
  if (!rows || !fine) {
    nnkit__free(rows);
    return nnkit__err(NNKIT_E_NOMEM, "search: out of memory");
  }
  nnkit__space_narrow(fine, rows, k);
  nnkit__free(rows);
  char line[1024];
  size_t at = (size_t)snprintf(line, sizeof line, "narrowed around the best %zu:", k);
  for (size_t j = 0; j < fine->num_dims && at < sizeof line; j++) {
    const nnkit__dim *d = &fine->dims[j];
    char a[48], b[48];
    nnkit__dim_format(d, d->lo, a, sizeof a);
    nnkit__dim_format(d, d->hi, b, sizeof b);
    at += (size_t)snprintf(line + at, sizeof line - at, " %s [%s, %s]", d->name, a, b);
  }
  emit(s, line);
  st = random_phase(rc, fine, &n, (size_t)S(NNKIT_SEARCH_FINE_TRIALS), 1,
                    (size_t)S(NNKIT_SEARCH_FINE_EPOCHS), "fine phase");
  nnkit_space_free(fine);
  return st;
}

/* One successive-halving bracket: `count` new configurations at r epochs,
 * the best 1/eta of each rung going on with eta times the epochs. */
static nnkit_status bracket(run_ctx *rc, size_t *n, size_t *phase, size_t count,
                            size_t r)
{
  nnkit_search *s = rc->s;
  size_t eta = (size_t)S(NNKIT_SEARCH_ETA), rmax = (size_t)S(NNKIT_SEARCH_MAX_EPOCHS);
  r = r < rmax ? r : rmax;
  r = r ? r : 1;
  size_t lo = *n;
  nnkit_status st = draw_trials(s, s->space, n, count, *phase, r);
  if (st != NNKIT_OK)
    return st;
  for (;;) {
    char what[64];
    snprintf(what, sizeof what, "rung %zu (%zu epochs)", *phase, r);
    st = run_phase(rc, lo, *n, what);
    (*phase)++;
    if (st != NNKIT_OK || rc->stop || r >= rmax || *n - lo <= 1)
      return st;
    size_t *idx = nnkit__malloc((*n - lo) * sizeof *idx);
    if (!idx)
      return nnkit__err(NNKIT_E_NOMEM, "search: out of memory");
    size_t ok = ranked(s, lo, *n, idx);
    size_t keep = (*n - lo) / eta;
    keep = keep ? keep : 1;
    keep = keep < ok ? keep : ok;
    r = r * eta < rmax ? r * eta : rmax;
    size_t next = *n;
    st = nnkit__search_reserve(s, next + keep);
    for (size_t k = 0; st == NNKIT_OK && k < keep; k++) {
      const nnkit__trial_rec *from = &s->trials[idx[k]];
      memcpy(s->trials[next + k].values, from->values,
             s->space->num_dims * sizeof(double));
      plan(s, next + k, *phase, from->config, r);
    }
    nnkit__free(idx);
    if (st != NNKIT_OK || keep == 0)
      return st;
    lo = next;
    *n = next + keep;
  }
}

static nnkit_status halving(run_ctx *rc)
{
  nnkit_search *s = rc->s;
  size_t n = 0, phase = 0;
  return bracket(rc, &n, &phase, (size_t)S(NNKIT_SEARCH_TRIALS),
                 (size_t)S(NNKIT_SEARCH_EPOCHS));
}

static nnkit_status hyperband(run_ctx *rc)
{
  nnkit_search *s = rc->s;
  double eta = S(NNKIT_SEARCH_ETA), rmax = S(NNKIT_SEARCH_MAX_EPOCHS);
  double rmin = S(NNKIT_SEARCH_EPOCHS) < rmax ? S(NNKIT_SEARCH_EPOCHS) : rmax;
  int smax = (int)floor(log(rmax / rmin) / log(eta) + 1e-9);
  size_t n = 0, phase = 0;
  for (int b = smax; b >= 0; b--) {
    size_t count = (size_t)ceil((double)(smax + 1) / (b + 1) * pow(eta, b) - 1e-9);
    size_t r = (size_t)floor(rmax / pow(eta, b) + 1e-9);
    nnkit_status st = bracket(rc, &n, &phase, count, r);
    if (st != NNKIT_OK || rc->stop)
      return st;
  }
  return NNKIT_OK;
}

/* Warns when the best trial's value of a range dimension sits in the
 * outer EDGE of the space's range (in log space for log dimensions). */
static void edge_warnings(nnkit_search *s)
{
  size_t best;
  if (nnkit_search_best(&best, s) != NNKIT_OK) {
    nnkit_clear_error();
    return;
  }
  for (size_t j = 0; j < s->space->num_dims; j++) {
    const nnkit__dim *d = &s->space->dims[j];
    if (d->kind == NNKIT_DIM_CHOICE)
      continue;
    int lg = nnkit__dim_log(d->kind);
    double v = s->trials[best].values[j];
    double t = lg ? (log(v) - log(d->lo)) / (log(d->hi) - log(d->lo))
                  : (v - d->lo) / (d->hi - d->lo);
    if (t > EDGE && t < 1 - EDGE)
      continue;
    char a[48], b[48], c[48], line[400];
    nnkit__dim_format(d, v, a, sizeof a);
    nnkit__dim_format(d, d->lo, b, sizeof b);
    nnkit__dim_format(d, d->hi, c, sizeof c);
    snprintf(line, sizeof line,
             "warning: %s: the best value %s sits at the %s edge of its range "
             "[%s, %s]; the optimum may lie outside it: widen the range",
             d->name, a, t <= EDGE ? "lower" : "upper", b, c);
    nnkit__search_warn(s, line);
    emit(s, line);
  }
}

static nnkit_status run(nnkit_search *s, nnkit_objective_fn fn, void *user,
                        int builtin)
{
  nnkit__search_clear(s);
  s->builtin = builtin;
  run_ctx rc;
  memset(&rc, 0, sizeof rc);
  rc.s = s;
  rc.fn = fn;
  rc.user = user;
  nnkit_status st = NNKIT_OK;
  if (s->results_path) {
    st = nnkit__results_read(&rc.file, &rc.file_n, s);
    if (st == NNKIT_OK)
      st = nnkit__results_open(&rc.rf, s->results_path);
  }
  if (st != NNKIT_OK) {
    nnkit__recs_free(rc.file, rc.file_n);
    return st;
  }
  pthread_mutex_init(&rc.mu, NULL);
  pthread_cond_init(&rc.cv, NULL);
  /* every trial at one BLAS thread (nnkit's pool keeps it there too) */
  int blas = nnkit__blas_threads(1);
  switch ((int)S(NNKIT_SEARCH_STRATEGY)) {
  case NNKIT_STRATEGY_GRID: st = grid(&rc); break;
  case NNKIT_STRATEGY_COARSE_FINE: st = coarse_fine(&rc); break;
  case NNKIT_STRATEGY_HALVING: st = halving(&rc); break;
  case NNKIT_STRATEGY_HYPERBAND: st = hyperband(&rc); break;
  default: {
    size_t n = 0;
    st = random_phase(&rc, s->space, &n, (size_t)S(NNKIT_SEARCH_TRIALS), 0,
                      (size_t)S(NNKIT_SEARCH_EPOCHS), "random search");
  }
  }
  nnkit__blas_threads(blas);
  if (st == NNKIT_OK)
    edge_warnings(s);
  /* planned trials that never ran (a stop) are not part of the record */
  while (s->num_trials > 0 && !s->trials[s->num_trials - 1].done)
    s->num_trials--;
  nnkit__results_close(&rc.rf);
  nnkit__recs_free(rc.file, rc.file_n);
  pthread_cond_destroy(&rc.cv);
  pthread_mutex_destroy(&rc.mu);
  return st;
}

NNKIT_API nnkit_status nnkit_search_run(nnkit_search *s, nnkit_objective_fn fn,
                                        void *user)
{
  if (!s || !fn)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_search_run: NULL search or objective");
  return run(s, fn, user, 0);
}

/* ---- the trial ------------------------------------------------------------- */

NNKIT_API double nnkit_trial_value(const nnkit_trial *t, size_t dim)
{
  if (!t || dim >= t->run->s->space->num_dims)
    return 0;
  return t->run->s->trials[t->index].values[dim];
}

NNKIT_API nnkit_status nnkit_trial_get(double *out, const nnkit_trial *t,
                                       const char *name)
{
  if (!t || !out || !name)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trial_get: NULL argument");
  long j = nnkit__space_find(t->run->s->space, name);
  if (j < 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trial_get: the space has no dimension named '%s'", name);
  *out = t->run->s->trials[t->index].values[j];
  return NNKIT_OK;
}

NNKIT_API size_t nnkit_trial_index(const nnkit_trial *t) { return t ? t->index : 0; }

NNKIT_API uint64_t nnkit_trial_seed(const nnkit_trial *t)
{
  return t ? t->run->s->trials[t->index].seed : 0;
}

NNKIT_API size_t nnkit_trial_epochs(const nnkit_trial *t)
{
  return t ? t->run->s->trials[t->index].epochs : 0;
}

NNKIT_API void nnkit_trial_set_reason(nnkit_trial *t, const char *reason)
{
  if (t && reason)
    snprintf(t->reason, sizeof t->reason, "%s", reason);
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

NNKIT_API int nnkit_trial_report(nnkit_trial *t, size_t epoch, double score)
{
  if (!t)
    return 0;
  run_ctx *rc = t->run;
  nnkit_search *s = rc->s;
  nnkit__trial_rec *r = &s->trials[t->index];
  if (epoch >= r->epochs)
    return 0; /* past the budget: not recorded */
  pthread_mutex_lock(&rc->mu);
  r->curve[epoch] = score;
  if (epoch + 1 > r->reached)
    r->reached = epoch + 1;
  pthread_cond_broadcast(&rc->cv);
  int stop = !isfinite(score);
  if (!stop && S(NNKIT_SEARCH_PRUNE) != 0) {
    /* wait for the earlier trials of the phase to pass this epoch (the
     * lowest running trial never waits: no deadlock) */
    for (size_t j = rc->start; j < t->index; j++)
      while (!s->trials[j].ended && s->trials[j].reached <= epoch)
        pthread_cond_wait(&rc->cv, &rc->mu);
    double vals[64];
    size_t n = 0;
    for (size_t j = t->index; j-- > rc->start && n < 64;) {
      const nnkit__trial_rec *q = &s->trials[j];
      if (q->done && q->status == NNKIT_TRIAL_FAILED)
        continue;
      if (q->reached > epoch && isfinite(q->curve[epoch]))
        vals[n++] = q->curve[epoch];
    }
    if (n >= PRUNE_MIN) {
      qsort(vals, n, sizeof vals[0], cmp_double);
      double med = n % 2 ? vals[n / 2] : 0.5 * (vals[n / 2 - 1] + vals[n / 2]);
      if (nnkit__search_better(s, med, score)) {
        stop = 1;
        t->pruned = 1;
      }
    }
  }
  pthread_mutex_unlock(&rc->mu);
  return stop;
}

/* ---- applying a trial's values ---------------------------------------------- */

static nnkit_status apply_err(const nnkit_trial *t, const nnkit__dim *d,
                              nnkit_status st)
{
  char why[700];
  snprintf(why, sizeof why, "%s", nnkit_last_error());
  return nnkit__err(st, "trial %zu, dimension '%s': %s", t->index, d->name, why);
}

NNKIT_API nnkit_status nnkit_trial_apply(const nnkit_trial *t, nnkit_net *net,
                                         nnkit_optimizer *opt, nnkit_trainer *tr,
                                         nnkit_pipeline *p)
{
  if (!t)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trial_apply: the trial is NULL");
  const nnkit_space *sp = t->run->s->space;
  const double *v = t->run->s->trials[t->index].values;
  for (size_t j = 0; j < sp->num_dims; j++) {
    const nnkit__dim *d = &sp->dims[j];
    nnkit_status st = NNKIT_OK;
    switch (d->target) {
    case NNKIT_TARGET_OPTIMIZER:
      if (!opt)
        continue;
      if ((int)nnkit_optimizer_kind(opt) != d->target_kind)
        st = nnkit__err(NNKIT_E_INVALID, "the optimizer is of kind %d, the dimension "
                        "drives kind %d", (int)nnkit_optimizer_kind(opt), d->target_kind);
      else
        st = nnkit_optimizer_set(opt, (nnkit_optim_param)d->key, v[j]);
      break;
    case NNKIT_TARGET_SCHEDULE: {
      if (!opt)
        continue;
      nnkit_schedule *sch = nnkit_optimizer_schedule(opt);
      if (!sch || (int)nnkit_schedule_kind(sch) != d->target_kind)
        st = nnkit__err(NNKIT_E_INVALID, "the optimizer has no schedule of kind %d "
                        "attached", d->target_kind);
      else
        st = nnkit_schedule_set(sch, (nnkit_sched_param)d->key, v[j]);
      break;
    }
    case NNKIT_TARGET_REGULARIZER: {
      if (!opt)
        continue;
      size_t hit = 0;
      for (size_t k = 0; st == NNKIT_OK && k < opt->num_regs; k++)
        if ((int)nnkit_regularizer_kind(opt->regs[k]) == d->target_kind) {
          st = nnkit_regularizer_set(opt->regs[k], (nnkit_reg_param)d->key, v[j]);
          hit++;
        }
      if (st == NNKIT_OK && !hit)
        st = nnkit__err(NNKIT_E_INVALID, "the optimizer has no regularizer of kind "
                        "%d attached", d->target_kind);
      break;
    }
    case NNKIT_TARGET_TRAINER:
      if (!tr)
        continue;
      st = nnkit_trainer_set(tr, (nnkit_train_param)d->key, v[j]);
      break;
    case NNKIT_TARGET_PIPELINE:
      if (!p)
        continue;
      st = nnkit_pipeline_set(p, (nnkit_pipe_param)d->key, v[j]);
      break;
    case NNKIT_TARGET_LAYER:
      if (!net)
        continue;
      st = nnkit_net_layer_set(net, (size_t)d->target_kind, (nnkit_layer_param)d->key,
                               v[j]);
      if (st == NNKIT_E_STATE) { /* fixed once added: the build used it? */
        double have;
        st = nnkit_net_layer_get(&have, net, (size_t)d->target_kind,
                                 (nnkit_layer_param)d->key);
        if (st == NNKIT_OK && have != v[j])
          st = nnkit__err(NNKIT_E_INVALID,
                          "layer %d's setting is fixed once the layer is added and is "
                          "%g, not the trial's %g; pass nnkit_trial_get()'s value to "
                          "the add call", d->target_kind, have, v[j]);
      }
      break;
    default:
      continue;
    }
    if (st != NNKIT_OK)
      return apply_err(t, d, st);
  }
  return NNKIT_OK;
}

/* ---- the built-in objective -------------------------------------------------- */

typedef struct builtin_ctx {
  nnkit_build_fn build;
  void *user;
  const nnkit_dataset *train, *val;
  size_t folds;
  uint64_t seed;
  int maximize, pipe_keys;
} builtin_ctx;

typedef struct epoch_ctx {
  nnkit_trial *t;
  int maximize;
} epoch_ctx;

static int on_epoch(const nnkit_trainer *tr, size_t epoch, void *user)
{
  epoch_ctx *e = user;
  double v = NAN;
  nnkit_trainer_metric(&v, tr, epoch, e->maximize ? NNKIT_METRIC_VAL_ACC
                                                  : NNKIT_METRIC_VAL_LOSS);
  return nnkit_trial_report(e->t, epoch, v);
}

/* Builds, trains on train and scores on val; 0 with *score, or -1 with the
 * trial's reason set. */
static int train_one(double *score, nnkit_trial *t, const builtin_ctx *b,
                     const nnkit_dataset *train, const nnkit_dataset *val, int report)
{
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  nnkit_pipeline *p = NULL, *vp = NULL;
  int rc = b->build(&net, &opt, t, b->user);
  if (rc != 0 || !net || !opt) {
    char why[600];
    snprintf(why, sizeof why, "the build callback failed (returned %d)%s%s", rc,
             nnkit_last_error()[0] ? ": " : "", nnkit_last_error());
    nnkit_trial_set_reason(t, why);
    nnkit_net_free(net);
    nnkit_optimizer_free(opt);
    return -1;
  }
  epoch_ctx ec = {t, b->maximize};
  nnkit_status st = nnkit_trainer_create(&tr, net, opt);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)nnkit_trial_epochs(t));
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, (double)nnkit_trial_seed(t));
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(tr, NNKIT_TRAIN_LAYER_STATS, 0);
  if (st == NNKIT_OK && b->pipe_keys) {
    st = nnkit_pipeline_create(&p, train);
    if (st == NNKIT_OK)
      st = nnkit_pipeline_create(&vp, val);
    if (st == NNKIT_OK)
      st = nnkit_pipeline_set(p, NNKIT_PIPE_SEED, (double)nnkit_trial_seed(t));
  }
  if (st == NNKIT_OK)
    st = nnkit_trial_apply(t, net, opt, tr, p);
  if (st == NNKIT_OK && p) {
    double bs;
    st = nnkit_pipeline_get(&bs, p, NNKIT_PIPE_BATCH_SIZE);
    if (st == NNKIT_OK)
      st = nnkit_pipeline_set(vp, NNKIT_PIPE_BATCH_SIZE, bs);
  }
  if (st == NNKIT_OK && report)
    st = nnkit_trainer_add_epoch_callback(tr, on_epoch, &ec);
  if (st == NNKIT_OK)
    st = p ? nnkit_trainer_fit_pipeline(tr, p, vp) : nnkit_trainer_fit(tr, train, val);
  size_t done = st == NNKIT_OK ? nnkit_trainer_epochs_done(tr) : 0;
  if (st == NNKIT_OK && done == 0)
    st = nnkit__err(NNKIT_E_STATE, "the fit ran no epoch");
  if (st == NNKIT_OK)
    st = nnkit_trainer_metric(score, tr, done - 1,
                              b->maximize ? NNKIT_METRIC_VAL_ACC : NNKIT_METRIC_VAL_LOSS);
  if (st != NNKIT_OK)
    nnkit_trial_set_reason(t, nnkit_last_error());
  nnkit_trainer_free(tr);
  nnkit_pipeline_free(p);
  nnkit_pipeline_free(vp);
  nnkit_net_free(net);
  nnkit_optimizer_free(opt);
  return st == NNKIT_OK ? 0 : -1;
}

static int builtin_objective(double *score_out, nnkit_trial *t, void *user)
{
  const builtin_ctx *b = user;
  if (b->folds < 2)
    return train_one(score_out, t, b, b->train, b->val, 1);
  double sum = 0, sq = 0;
  for (size_t f = 0; f < b->folds; f++) {
    nnkit_dataset *tr = NULL, *va = NULL;
    double sc = NAN;
    nnkit_status st = nnkit_dataset_fold(&tr, &va, b->train, b->folds, f, b->seed);
    if (st != NNKIT_OK) {
      nnkit_trial_set_reason(t, nnkit_last_error());
      return -1;
    }
    int rc = train_one(&sc, t, b, tr, va, 0);
    nnkit_dataset_free(tr);
    nnkit_dataset_free(va);
    if (rc != 0)
      return rc;
    sum += sc;
    sq += sc * sc;
  }
  double k = (double)b->folds, mean = sum / k;
  double var = (sq - k * mean * mean) / (k - 1);
  nnkit__trial_rec *r = &t->run->s->trials[t->index];
  r->score_std = sqrt(var > 0 ? var : 0); /* only this worker writes it */
  *score_out = mean;
  return 0;
}

NNKIT_API nnkit_status nnkit_search_run_training(nnkit_search *s, nnkit_build_fn build,
                                                 void *user,
                                                 const nnkit_dataset *train,
                                                 const nnkit_dataset *val)
{
  if (!s || !build || !train)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_search_run_training: NULL search, build or training set");
  size_t folds = (size_t)S(NNKIT_SEARCH_FOLDS);
  if (folds < 2 && !val)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_search_run_training: no validation set; give one, or set "
                      "NNKIT_SEARCH_FOLDS to k >= 2 for cross-validation");
  if (folds == 1)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_search_run_training: FOLDS 1 is not cross-validation; use "
                      "0 (the validation set) or k >= 2");
  builtin_ctx b = {build, user, train, val, folds, (uint64_t)S(NNKIT_SEARCH_SEED),
                   S(NNKIT_SEARCH_MAXIMIZE) != 0, 0};
  for (size_t j = 0; j < s->space->num_dims; j++)
    b.pipe_keys |= s->space->dims[j].target == NNKIT_TARGET_PIPELINE;
  if (b.pipe_keys && folds >= 2)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_search_run_training: pipeline keys need a validation "
                      "set (FOLDS 0)");
  return run(s, builtin_objective, &b, 1);
}
