/*
 * Internal declarations of the hyperparameter search (nnkit/search.h):
 * the space (search_space.c: dimensions, draws, grids, narrowing), the
 * search and its run (search.c: settings, phases, workers, trials, the
 * built-in objective) and the record (search_results.c: trial records,
 * the results file and its resume, CSV and JSON Lines, trial lines).
 * Never installed.
 */
#ifndef NNKIT_SEARCH_INTERNAL_H
#define NNKIT_SEARCH_INTERNAL_H

#include <pthread.h>

#include "internal.h"

#define NNKIT__NAME_MAX 64 /* names: up to 63 characters */

/* ---- the space (search_space.c) ----------------------------------------- */
typedef struct nnkit__dim {
  char name[NNKIT__NAME_MAX];
  nnkit_dim_kind kind;
  double lo, hi;  /* the range (not for CHOICE) */
  double *values; /* CHOICE: n values, owned */
  size_t n;
  nnkit_search_target target;
  int target_kind, key;
} nnkit__dim;

/* A dimension drawn on a log scale (LOG_UNIFORM, INT_LOG); one of whole
 * numbers (INT, INT_LOG). */
static inline int nnkit__dim_log(nnkit_dim_kind k)
{
  return k == NNKIT_DIM_LOG_UNIFORM || k == NNKIT_DIM_INT_LOG;
}

static inline int nnkit__dim_int(nnkit_dim_kind k)
{
  return k == NNKIT_DIM_INT || k == NNKIT_DIM_INT_LOG;
}

struct nnkit_space {
  nnkit__dim *dims;
  size_t num_dims, cap_dims;
};

/* 1 when name is 1..63 letters, digits, '_', '.' or '-'. */
int nnkit__search_name_ok(const char *name);
/* A deep copy of sp (NULL on NOMEM, with the sentence set). */
nnkit_space *nnkit__space_copy(const nnkit_space *sp);
/* Index of the dimension named name, or -1. */
long nnkit__space_find(const nnkit_space *sp, const char *name);
/* One random point of sp into values[num_dims], drawn from stream `stream`
 * of seed only. */
void nnkit__space_draw(const nnkit_space *sp, uint64_t seed, uint64_t stream,
                       double *values);
/* Values of the grid along dimension d with `points` per non-choice
 * dimension: writes up to `points` (or n for a choice) into out (room for
 * max(points, n)) and returns the count (integers deduplicated). */
size_t nnkit__space_grid_axis(const nnkit__dim *d, size_t points, double *out);
/* Narrows every dimension of sp (a copy of the original) around the
 * top[0..k) points (rows of num_dims values): a quarter of the spread of
 * the top values added on each side (log space for log dimensions; a
 * tenth of the range when all agree), clipped to the original range;
 * choices keep the values the top points used. */
void nnkit__space_narrow(nnkit_space *sp, const double *top, size_t k);
/* Formats dimension d's value v for a trial line ("1.405206e-04", "128"). */
void nnkit__dim_format(const nnkit__dim *d, double v, char *buf, size_t len);

/* ---- a trial's record (search_results.c) ------------------------------- */
typedef struct nnkit__trial_rec {
  int done;                /* finished (run now or read from the file) */
  int ended;               /* done, or left unrecorded by a stop */
  nnkit_trial_status status;
  double score, score_std, seconds;
  size_t epochs, phase, config;
  uint64_t seed;
  double *values;          /* num_dims */
  char reason[256];
  double *curve;           /* the reported scores, epochs entries */
  size_t reached;          /* epochs reported so far */
} nnkit__trial_rec;

struct nnkit_search {
  nnkit_space *space; /* owned copy */
  /* settings, one slot per NNKIT_SEARCH_* key (search.c's table) */
  double set[NNKIT_SEARCH_VERBOSE + 1];
  nnkit_log_fn log_fn;
  void *log_user;
  char *score_name;   /* owned, or NULL for the default */
  char *results_path; /* owned, or NULL */
  /* the record of the last run, by trial index */
  nnkit__trial_rec *trials;
  size_t num_trials, cap_trials;
  char *warnings; /* owned, "" when none */
  size_t warn_len;
  int builtin;    /* the run uses the built-in objective (default names) */
};

/* 1 when score a beats score b (NNKIT_SEARCH_MAXIMIZE says which way). */
static inline int nnkit__search_better(const nnkit_search *s, double a, double b)
{
  return s->set[NNKIT_SEARCH_MAXIMIZE] != 0 ? a > b : a < b;
}

/* Makes room for trials [0, n) (zeroed records with value rows). */
nnkit_status nnkit__search_reserve(nnkit_search *s, size_t n);
void nnkit__search_clear(nnkit_search *s);
/* The score's name in lines and files. */
const char *nnkit__search_score_name(const nnkit_search *s);
/* Appends a line to the warnings. */
void nnkit__search_warn(nnkit_search *s, const char *line);
/* The trial line of record i, "(pos / total)" at the end. */
void nnkit__search_line(const nnkit_search *s, size_t i, size_t pos, size_t total,
                        char *buf, size_t len);

/* The results file: read (resume) and append. */
typedef struct nnkit__results_file {
  FILE *f; /* open for appending, or NULL */
} nnkit__results_file;
/* Reads s->results_path into pending records (file order) and rewrites it
 * without a torn last line. *recs_out gets an array of n_out records
 * (values in s->space's order), owned by the caller (nnkit__recs_free).
 * A missing file gives none. NNKIT_E_FORMAT / NNKIT_E_IO / NNKIT_E_NOMEM. */
typedef struct nnkit__file_rec {
  size_t index;
  nnkit__trial_rec rec;
} nnkit__file_rec;
nnkit_status nnkit__results_read(nnkit__file_rec **recs_out, size_t *n_out,
                                 const nnkit_search *s);
void nnkit__recs_free(nnkit__file_rec *recs, size_t n);
nnkit_status nnkit__results_open(nnkit__results_file *rf, const char *path);
/* Appends record i as one line and flushes it to disk. */
nnkit_status nnkit__results_append(nnkit__results_file *rf, const nnkit_search *s,
                                   size_t i);
void nnkit__results_close(nnkit__results_file *rf);

#endif /* NNKIT_SEARCH_INTERNAL_H */
