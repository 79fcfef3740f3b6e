/*
 * Internal declarations shared by the library's modules and its tests.
 * Never installed. Cross-file helpers are named nnkit__*.
 */
#ifndef NNKIT_INTERNAL_H
#define NNKIT_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nnkit.h"

#if defined(__GNUC__)
#  define NNKIT__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define NNKIT__PRINTF(f, a)
#endif

/* ---- errors (lib/core/error.c) ---------------------------------------- */

/* Records a sentence for nnkit_last_error() and returns status. */
nnkit_status nnkit__err(nnkit_status status, const char *fmt, ...)
    NNKIT__PRINTF(2, 3);

/* ---- allocation (lib/core/alloc.c) ------------------------------------ */
/* Every allocation in the library goes through these, so tests can count
 * them (no allocation per training step) and inject failures. */
void *nnkit__malloc(size_t size);
void *nnkit__calloc(size_t n, size_t size);
void *nnkit__realloc(void *p, size_t size);
void nnkit__free(void *p);
/* Duplicates a string with nnkit__malloc. */
char *nnkit__strdup(const char *s);
/* Number of successful malloc/calloc/realloc calls so far (all threads). */
uint64_t nnkit__alloc_count(void);
/* The largest size in bytes asked of malloc/calloc/realloc so far (failed
 * or not); with reset != 0, returns it and starts again from 0. For tests
 * that bound what an input may make the library ask for. */
size_t nnkit__alloc_largest(int reset);
/* Makes the n-th allocation from now on (1 = the next) fail; 0 disables. */
void nnkit__alloc_fail_after(uint64_t n);
/* a * b, or 0 with *overflow = 1 when it does not fit in size_t. */
size_t nnkit__mul_size(size_t a, size_t b, int *overflow);

/* ---- temporary files (lib/core/tmpfile.c) ----------------------------- */
/* Opens path for reading (O_CLOEXEC) without ever blocking on a FIFO or a
 * device: it is opened O_NONBLOCK, anything but a regular file is
 * NNKIT_E_IO naming path and what it is ("is a directory", "is a FIFO"),
 * then O_NONBLOCK is cleared; *size_out (may be NULL) gets the file's size
 * in bytes. `what` names the file in sentences ("model
 * file", "CSV file"). Model files, checkpoints, IDX, CSV and image
 * files open through this. */
nnkit_status nnkit__open_regular(int *fd_out, uint64_t *size_out, const char *path,
                                 const char *what);
/* The whole regular file at path (opened as nnkit__open_regular does) in a
 * new buffer of *len_out bytes plus a NUL after them (freed with
 * nnkit__free); `what` names the file in sentences. NNKIT_E_IO when it
 * cannot be opened or read in full (it got shorter meanwhile),
 * NNKIT_E_FORMAT when it is larger than max_size bytes (0: no limit),
 * NNKIT_E_NOMEM. On failure *buf_out is NULL. */
nnkit_status nnkit__read_file(unsigned char **buf_out, size_t *len_out, const char *path,
                             const char *what, uint64_t max_size);
/* Atomic writes (every save of the library goes through here):
 * - The file replaced is path's final target: a symbolic link (or a chain
 *   of them) is followed, its target replaced and the link kept; a
 *   dangling link's target is created.
 * - The temporary is "<target>.tmp.XXXXXX" (six letters or digits) in the
 *   target's folder, created O_EXCL with mode 0666 narrowed by the umask
 *   as fopen would; when the target exists as a regular file, its
 *   permission bits are copied (an 0600 file stays 0600).
 * - Before creating it, every regular file of that exact form
 *   ("<target base>.tmp." + six letters or digits) in that folder is
 *   removed, whatever its age: only a save killed before its rename
 *   leaves one. Two saves to the same path at the same time (threads or
 *   processes) are not supported: the file ends up as one of them or as
 *   it was, and the other save may fail with NNKIT_E_IO.
 * nnkit__tmpfile_next_to creates the temporary: *fd_out, *tmp_out and
 * *dest_out (the path to rename onto; both owned by the caller,
 * nnkit__free) on success; NNKIT_E_IO naming path, or NNKIT_E_NOMEM, with
 * nothing left on disk otherwise. */
nnkit_status nnkit__tmpfile_next_to(int *fd_out, char **tmp_out, char **dest_out,
                                    const char *path);

/* mkdir -p: creates the folder dir and its missing parents (mode 0777
 * narrowed by the umask); NNKIT_OK also when it exists as a folder.
 * NNKIT_E_IO naming dir (or the component that failed) and why, or
 * NNKIT_E_NOMEM; `fn` starts the sentence. Folders made before a failure
 * stay. */
nnkit_status nnkit__mkdirs(const char *dir, const char *fn);

/* Atomic files on a stream: nnkit__tfile_open creates the temporary file
 * (as above; t->f open for writing); nnkit__tfile_commit flushes,
 * fsyncs and renames it over the destination, or on any failure (or when
 * ok == 0) removes it, leaving path as it was; NNKIT_E_IO with a sentence. */
typedef struct nnkit__tfile {
  FILE *f;
  char *tmp;
  char *dest;
  const char *path;
} nnkit__tfile;
nnkit_status nnkit__tfile_open(nnkit__tfile *t, const char *path);
nnkit_status nnkit__tfile_commit(nnkit__tfile *t, int ok);

/* ---- random numbers (lib/core/rng.c) ---------------------------------- */
/* Counter-based: draw i of (seed, stream) is a pure function of the three,
 * so a draw never depends on the order in which other streams were used. */
typedef struct nnkit__rng {
  uint64_t key;
  uint64_t counter;
} nnkit__rng;

void nnkit__rng_init(nnkit__rng *r, uint64_t seed, uint64_t stream);
uint64_t nnkit__rng_u64(nnkit__rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double nnkit__rng_uniform(nnkit__rng *r);
/* Standard normal (Box-Muller in double). */
double nnkit__rng_normal(nnkit__rng *r);
/* Uniform integer in [0, n), unbiased; n >= 1. */
uint64_t nnkit__rng_below(nnkit__rng *r, uint64_t n);
/* Fisher-Yates shuffle of idx[0..n). */
void nnkit__rng_shuffle(nnkit__rng *r, size_t *idx, size_t n);

/* ---- threads and BLAS (lib/core/threads.c) ---------------------------- */
/* Threads nnkit's math uses on the calling thread: nnkit_get_num_threads(),
 * or less under the calling thread's limit. */
int nnkit__num_threads(void);
/* Caps the calling thread's math at n threads (0 lifts the cap): a
 * hyperparameter search's workers run each trial at one thread, so that
 * trials on several workers never share the pool and give the results of
 * one worker. */
void nnkit__set_thread_limit(int n);
/* Sets OpenBLAS's thread count, returning the previous one. */
int nnkit__blas_threads(int n);

/* Tasks 0..n-1: fn(ctx, t, n) runs once for each t, on whichever of the
 * pool's threads claims it first (the caller runs task 0, then claims
 * like the workers), and nnkit__parallel returns when all n have; n =
 * min(nnkit__max_tasks(), max_tasks). Task t computes the same share
 * whoever runs it, so results depend on n only, and a thread that a busy
 * core keeps off the CPU delays one task, not a fixed share of the work.
 * While another parallel call runs (a second application thread), the n
 * tasks run one after the other in the caller instead: same n, same
 * results. BLAS called inside is single-threaded. A call made inside a
 * task (nested) runs inline as the single task fn(ctx, 0, 1) of the
 * calling thread: the net uses this to let each task own whole slices of
 * a batch. Per-thread scratch memory is indexed by nnkit__task_slot(),
 * per-task results (partial sums) by nnkit__task_part(t). */
/* 1: measured on 2 vCPUs, 2 and 4 tasks per thread were 3-10% slower on
 * a quiet machine (each task packs its own operands, and a dense layer's
 * GEMMs get narrower) and no better beside a busy neighbour; the claims
 * alone let the caller take over a task a descheduled worker has not
 * started. */
#define NNKIT__TASKS_PER_THREAD 1
typedef void (*nnkit__task_fn)(void *ctx, int t, int n);
void nnkit__parallel(nnkit__task_fn fn, void *ctx, int max_tasks);
/* The most tasks a parallel call splits into: 1 at one thread, else
 * NNKIT__TASKS_PER_THREAD per thread. */
int nnkit__max_tasks(void);
/* The scratch slot of the calling thread: 0 for a caller, i for worker i
 * (always < nnkit__num_threads()). */
int nnkit__task_slot(void);
/* The index of task t for per-task results: t itself, or, inside a
 * nested call, the enclosing task's (always < nnkit__max_tasks()). */
int nnkit__task_part(int t);
/* 1 while the calling thread runs a task of nnkit__parallel. */
int nnkit__in_task(void);

/* Tasks worth starting for work of `cost` (multiply-adds or element
 * operations): 1 below about 100k, so small layers pay no thread wake-up. */
static inline int nnkit__tasks_for(double cost)
{
  return cost < 1e5 ? 1 : (int)(cost / 5e4 < 1024 ? cost / 5e4 : 1024);
}

/* Task t's share [*lo, *hi) of total items split over n tasks. */
static inline void nnkit__split(size_t total, int t, int n, size_t *lo, size_t *hi)
{
  *lo = total * (size_t)t / (size_t)n;
  *hi = total * (size_t)(t + 1) / (size_t)n;
}

/* ---- kernels chosen by measurement (lib/model/choose.c) --------------- */
#define NNKIT__MAX_CANDIDATES 4
/* Runs candidate k of a choice once on the real operands. */
typedef void (*nnkit__candidate_fn)(void *ctx, int k);
/* The candidate (0..ncand-1) to run for `key` (a text naming the
 * operation, its shape and the thread count: "dense NT 128x512x784 t2").
 * The first call on a key times every candidate with run (a warm-up run
 * and 3 timed rounds each, in turns) and keeps the fastest; later calls,
 * from any thread, return that verdict (one waits while another measures
 * the same key). Candidate 0 must be nnkit's own kernel and ncand - 1 the
 * BLAS path: NNKIT_KERNELS_OWN and NNKIT_KERNELS_BLAS return those without
 * measuring. run must leave no effect the caller's next real call does
 * not overwrite. Never fails: with no room left it returns 0. */
int nnkit__choose(const char *key, int ncand, const char *const *names,
                  nnkit__candidate_fn run, void *ctx);
/* What nnkit__choose would return for `key` without measuring: the
 * cached verdict or the pinned mode's candidate; -1 when the key has not
 * been measured yet (a caller then prepares a trial and calls
 * nnkit__choose). */
int nnkit__choice_known(const char *key, int ncand);
/* The measured times of `key` ("nnkit 0.41 ms (chosen), cblas 0.45 ms")
 * into buf; returns the text's length (0: not measured). */
size_t nnkit__choice_text(const char *key, char *buf, size_t cap);
/* What runs for `key` and why, into buf: the measured times, or the
 * mode that fixed the choice, or "names[last] (the CPU cannot run
 * names[0])" when available is 0. */
void nnkit__choice_explain(const char *key, int ncand, const char *const *names,
                           int available, char *buf, size_t cap);
/* Every choice so far, one line each ("key: times"); returns the length
 * the whole report has (like snprintf). */
size_t nnkit__kernel_report(char *buf, size_t cap);
/* Tests: forgets every verdict (when no measurement is under way). */
void nnkit__choices_forget(void);

/* ---- time (lib/core/threads.c) ---------------------------------------- */
double nnkit__now(void); /* monotonic seconds */

/* ---- keyed settings (lib/core/settings.c) ---------------------------- */
/* One row of a keyed-settings table: the key's name, range, default and
 * nnkit_bound_flag bits. kind 0 = the row applies to every kind (objects
 * with a single kind use 0 throughout). Every keyed object -- optimizer,
 * schedule, regularizer, trainer, pipeline, normalizer, augmenter, layer --
 * keeps one such table and goes through these calls, so ranges, bounds
 * and error sentences read the same everywhere. */
typedef struct nnkit__spec {
  int kind;
  int key;
  const char *name;
  double lo, hi, def;
  int flags;
} nnkit__spec;

/* The row for (kind, key) in table[0..n), or NULL. */
const nnkit__spec *nnkit__spec_find(const nnkit__spec *table, size_t n,
                                    int kind, int key);
/* NNKIT_OK when value is inside s's range; otherwise NNKIT_E_INVALID with
 * "<owner> <name> <value> is outside its range [lo, hi)" (or "must be 0 or
 * 1", "must be an integer in [lo, hi]"). */
nnkit_status nnkit__spec_check(const nnkit__spec *s, const char *owner,
                               double value);
/* Writes s's range as text: "[0, 1)", "(0, 1]", "0 or 1", ... */
void nnkit__spec_range(const nnkit__spec *s, char *buf, size_t len);
/* As nnkit__spec_find, recording NNKIT_E_INVALID "<owner> has no setting
 * <key>; use one of its <family> keys" when there is no row. */
const nnkit__spec *nnkit__spec_lookup(const nnkit__spec *table, size_t n, int kind,
                                      int key, const char *owner,
                                      const char *family);
/* Writes s's range to the non-NULL outputs (the public *_bounds calls). */
void nnkit__spec_bounds(const nnkit__spec *s, double *lo_out, double *hi_out,
                        int *flags_out);

/* ---- datasets (lib/data/dataset.c) ------------------------------------ */
struct nnkit_dataset {
  size_t count;
  size_t ndim;
  size_t shape[NNKIT_MAX_SAMPLE_DIMS];
  size_t sample_size;
  uint32_t num_classes; /* 0 when unlabelled or regression */
  size_t target_dim;    /* 0 unless regression */
  /* The values, in one of two forms (see the helpers below):
   * - floats: x holds count * sample_size floats and x8 is NULL;
   * - bytes (compact, e.g. an IDX ubyte file): x8 holds one byte per value
   *   and value i is lut[x8[i]]; x is NULL until nnkit__dataset_floats()
   *   builds the float copy once, after which both are kept (equal).
   * Read values only through the helpers: while x8 is set, x may be filled
   * in concurrently by a reader of a const dataset. */
  float *x;
  uint8_t *x8;
  float lut[256];       /* byte -> value, with x8 */
  int32_t *labels;      /* count, or NULL */
  float *targets;       /* count * target_dim, or NULL */
  /* num_classes class names or NULL: one nnkit__malloc block holding the
   * pointer array followed by the strings (lib/data/classes.c). */
  char **class_names;
};

/* Allocates an empty dataset with room for count samples of shape; labels
 * allocated when labelled != 0, targets when target_dim > 0. Checks the
 * size products for overflow. */
nnkit_status nnkit__dataset_alloc(nnkit_dataset **out, size_t count,
                                  const size_t *shape, size_t ndim,
                                  int labelled, size_t target_dim);

/* As nnkit__dataset_alloc(), in the compact form: x8 gets count *
 * sample_size bytes, x stays NULL and lut maps each byte to itself. */
nnkit_status nnkit__dataset_alloc_bytes(nnkit_dataset **out, size_t count,
                                        const size_t *shape, size_t ndim,
                                        int labelled);

/* Value i of ds (0 <= i < count * sample_size), in either form. */
static inline float nnkit__ds_at(const nnkit_dataset *ds, size_t i)
{
  return ds->x8 ? ds->lut[ds->x8[i]] : ds->x[i];
}

/* Writes samples [first, first + n) to out (n * sample_size floats). */
void nnkit__dataset_rows(const nnkit_dataset *ds, size_t first, size_t n,
                         float *out);

/* Writes samples idx[0..n) to out, in that order. Allocates nothing. */
void nnkit__dataset_gather(const nnkit_dataset *ds, const size_t *idx,
                           size_t n, float *out);

/* Samples [first, first + n) as floats: a pointer into the float form when
 * the set has no bytes, else decoded into scratch (n * sample_size floats)
 * and scratch returned. */
const float *nnkit__dataset_block(const nnkit_dataset *ds, size_t first,
                                  size_t n, float *scratch);

/* The whole float array, built from the bytes on first use (safe against
 * concurrent callers; the set then keeps both forms). NULL, with
 * NNKIT_E_NOMEM set in fn's name, when the copy cannot be allocated. */
const float *nnkit__dataset_floats(const nnkit_dataset *ds, const char *fn);

/* Turns ds into the float form for a caller about to modify the values in
 * place (the bytes are dropped). NNKIT_E_NOMEM in fn's name. */
nnkit_status nnkit__dataset_own_floats(nnkit_dataset *ds, const char *fn);

/* ---- data pipelines (lib/data/classes.c, csv.c, imagefolder.c, split.c,
 * normalizer.c, augment.c, pipeline.c) ---------------------------------- */

/* One nnkit__malloc block holding n pointers followed by copies of the
 * strings names[0..n) (all non-NULL) they point to, so copying and freeing
 * a table of names is one call each; NULL on size overflow or OOM. Dataset
 * and net class names both use it. */
char **nnkit__names_block(const char *const *names, size_t n);
/* Replaces ds's class names by copies of names[0..n) (n == num_classes;
 * names non-NULL). On failure the old names stay. */
nnkit_status nnkit__dataset_set_names(nnkit_dataset *ds,
                                      const char *const *names, size_t n);
/* Gives dst (same num_classes) copies of src's class names, if any. */
nnkit_status nnkit__dataset_copy_names(nnkit_dataset *dst,
                                       const nnkit_dataset *src);

/* Normalizers. Transform count samples x -> y (x == y allowed) using
 * caller scratch of nnkit__normalizer_scratch_len(nz) floats, so a fitted
 * normalizer is only read (threads may share it). Processes samples in
 * chunks of NNKIT__NORM_CHUNK. */
#define NNKIT__NORM_CHUNK 256
size_t nnkit__normalizer_scratch_len(const nnkit_normalizer *nz);
void nnkit__normalizer_transform(const nnkit_normalizer *nz, const float *x,
                                 float *y, size_t count, float *scratch);
/* A deep copy of a fitted or unfitted normalizer. */
nnkit_status nnkit__normalizer_clone(nnkit_normalizer **out,
                                     const nnkit_normalizer *nz);
/* The output sample shape: the fitted input shape, or [k] for PCA and
 * PCA_WHITEN. dims holds NNKIT_MAX_SAMPLE_DIMS values. */
void nnkit__normalizer_out_shape(const nnkit_normalizer *nz, size_t *dims,
                                 size_t *ndim);

/* Augmenters. Image geometry [C, H, W] of a sample shape ([H, W] is one
 * channel); NNKIT_E_SHAPE (fn named) for other ranks or SATURATION without
 * 3 channels. */
nnkit_status nnkit__augmenter_geometry(const nnkit_augmenter *aug,
                                       const size_t *shape, size_t ndim,
                                       size_t *c, size_t *h, size_t *w,
                                       const char *fn);
/* Augments one sample: reads src, writes dst (distinct buffers, c*h*w
 * floats). Draws from (seed, epoch, index) only. Never allocates. */
void nnkit__augment_sample(const nnkit_augmenter *aug, const float *src,
                           float *dst, size_t c, size_t h, size_t w,
                           uint64_t seed, uint64_t epoch, uint64_t index);
/* The inverse affine map (output pixel -> source point, in pixel
 * coordinates: src_x = m[0] x + m[1] y + m[2], src_y = m[3] x + m[4] y +
 * m[5]) that nnkit__augment_sample uses for that sample; returns 1 when a
 * geometric transform fired, 0 for the identity (tests). */
int nnkit__augment_matrix(const nnkit_augmenter *aug, size_t h, size_t w,
                          uint64_t seed, uint64_t epoch, uint64_t index,
                          double m[6]);
nnkit_status nnkit__augmenter_clone(nnkit_augmenter **out,
                                    const nnkit_augmenter *aug);

/* Pipelines: the consumer API the trainer uses. begin_epoch as the public
 * nnkit_pipeline_begin_epoch(); next hands out the next batch (borrowed
 * until the following next/begin_epoch/setter/free): *x gets batch *
 * sample_size floats, *labels and *targets NULL when the set has none,
 * *batch 0 at the end of the epoch. Neither allocates after the first
 * epoch with given settings. */
nnkit_status nnkit__pipeline_begin_epoch(nnkit_pipeline *p, uint64_t epoch);
nnkit_status nnkit__pipeline_next(nnkit_pipeline *p, const float **x,
                                  const int32_t **labels,
                                  const float **targets, size_t *batch);
/* The dataset the pipeline reads (borrowed), for shape and label checks:
 * note the output sample shape is nnkit_pipeline_dim()'s, which differs
 * from the dataset's after a PCA normalizer. */
const nnkit_dataset *nnkit__pipeline_dataset(const nnkit_pipeline *p);
/* 1 when a batch from next stays unchanged until the following next (the
 * pipeline does not prefetch), so a consumer may read it in place. */
int nnkit__pipeline_lends(const nnkit_pipeline *p);
/* Points a plain pipeline (no normalizer, augmenter, balancing or
 * prefetching; NNKIT_E_STATE otherwise) at ds with this batch size,
 * shuffle and seed: the trainer's default pipeline, once per
 * nnkit_trainer_fit(). The buffers are kept when ds has the geometry they
 * were made for and the batch size stays, so such a fit allocates
 * nothing. Values are the trainer's, already checked. */
nnkit_status nnkit__pipeline_reuse(nnkit_pipeline *p, const nnkit_dataset *ds,
                                   size_t batch_size, int shuffle, uint64_t seed);

/* ---- initializers (lib/model/init.c) ---------------------------------- */
struct nnkit_init {
  nnkit_init_kind kind;
  double a, b; /* validated by nnkit_init_create; Xavier gain 0 stored as 1 */
};

/* ---- layers (lib/model/) ---------------------------------------------- */
typedef struct nnkit__shape {
  size_t ndim;
  size_t d[NNKIT_MAX_SAMPLE_DIMS];
} nnkit__shape;

size_t nnkit__shape_size(const nnkit__shape *s);

typedef struct nnkit__layer nnkit__layer;

/* A named array a layer owns, for model files, checkpoints, snapshots,
 * regularizers and statistics: data points into the net's parameters
 * (after nnkit__net_build) or into the layer's state. Roles say what the
 * array is, so callers select by role and never by layer kind. */
typedef enum nnkit__role {
  NNKIT__ROLE_WEIGHT = 1,  /* trainable weights (regularized by default) */
  NNKIT__ROLE_BIAS = 2,    /* trainable biases */
  NNKIT__ROLE_NORM = 4,    /* trainable scale and shift of a normalization */
  NNKIT__ROLE_STATE = 8,   /* floats that are not trained but learned from
                              data (running statistics): saved in model
                              files, kept by snapshots */
  NNKIT__ROLE_COUNTER = 16 /* a uint64 position of the layer's random
                              stream (dropout's mask step): checkpoints */
} nnkit__role;
#define NNKIT__ROLE_PARAMS (NNKIT__ROLE_WEIGHT | NNKIT__ROLE_BIAS | NNKIT__ROLE_NORM)

#define NNKIT__MAX_LAYER_ARGS 8
#define NNKIT__MAX_LAYER_TENSORS 4

typedef struct nnkit__tensor {
  const char *name; /* "weight", "bias", "running_mean", ... */
  float *data;      /* floats (every role but COUNTER) */
  size_t ndim;
  size_t dims[4];
  int role;         /* one nnkit__role */
  uint64_t *count;  /* the COUNTER role's value (data is NULL) */
} nnkit__tensor;

/* The number of values of t (the product of its dims). */
static inline size_t nnkit__tensor_floats(const nnkit__tensor *t)
{
  size_t n = 1;
  for (size_t d = 0; d < t->ndim; d++)
    n *= t->dims[d];
  return n;
}

/* A layer kind's descriptor: one file defines one (or a few sharing
 * code) and registry.c lists it. It holds the kind's ops, its options (the
 * add call's arguments, as nnkit_layer_param keys with bounds) and its
 * tensors by name and role. Nothing outside the kind's file knows its
 * fields: the net, model files, snapshots, regularizers, statistics and
 * the keyed layer settings all go through this table. */
typedef struct nnkit__layer_kind {
  /* The kind's name in descriptions and model files ("dense"). */
  const char *name;
  /* Options: rows of the keyed-settings engine (key = nnkit_layer_param,
   * name = the option's name in model files, range, flags) in the add
   * call's argument order; at most NNKIT__MAX_LAYER_ARGS. A whole number
   * option (NNKIT_BOUND_INTEGER) may hold -1 for NNKIT_PAD_SAME. */
  const nnkit__spec *opts;
  size_t num_opts;
  /* Writes the options that rebuild l, in opts order. NULL: no options. */
  void (*get_opts)(const nnkit__layer *l, double *values);
  /* Changes option `key` of an added layer (value already inside the
   * row's range), or returns NNKIT_E_STATE naming the option when it is
   * fixed once added (it changes shapes). NULL: every option is fixed. */
  nnkit_status (*set_opt)(nnkit__layer *l, int key, double value);
  /* Appends a layer of this kind through the public nnkit_net_add_* call
   * (its NNKIT_E_INVALID/NNKIT_E_SHAPE sentence on bad values). */
  nnkit_status (*add)(nnkit_net *net, const double *values);
  /* Fills out[0..n) with the layer's tensors and returns n (at most
   * NNKIT__MAX_LAYER_TENSORS); parameter tensors first, in parameter
   * order. NULL: none. The net must be built. */
  size_t (*tensors)(nnkit__layer *l, nnkit__tensor *out);
  /* The element-wise activation the layer applies (an nnkit_activation),
   * with *slope for leaky ReLU; 0 for layers that are not activations.
   * The net uses it for default initializers (He before a ReLU) and
   * in-place ReLUs, statistics for saturation and dead units. */
  int (*activation)(const nnkit__layer *l, float *slope);
/* One layer kind = one file implementing this table + one registry line. */
  /* Shape inference at add time: sets l->out and l->num_params from l->in,
   * or returns NNKIT_E_SHAPE with a sentence naming the layer and sizes. */
  nnkit_status (*setup)(nnkit__layer *l);
  /* Fan-in and fan-out for initializers. NULL when no parameters. */
  void (*fans)(const nnkit__layer *l, size_t *fan_in, size_t *fan_out,
               size_t *num_weights);
  /* y[batch, out] = f(x[batch, in]). */
  void (*forward)(nnkit__layer *l, const float *x, float *y, size_t batch);
  /* Given dy, accumulates parameter gradients into l->grads (+=; = when
   * grads_overwrite is set) and, when dx is not NULL, writes dx (=). x and y are forward's input and output. */
  void (*backward)(nnkit__layer *l, const float *x, const float *y,
                   const float *dy, float *dx, size_t batch);
  /* Optional: initializes parameters of layers without fans (e.g. batch
   * norm's gamma = 1, beta = 0). NULL for layers with fans or no params. */
  void (*init)(nnkit__layer *l);
  /* Writes a one-line description. */
  void (*describe)(const nnkit__layer *l, char *buf, size_t len);
  /* Frees l->state (may be NULL when there is no state). */
  void (*destroy)(nnkit__layer *l);
  /* Optional: sizes the layer's own working memory for batches of up to
   * `batch` samples. Called by nnkit__net_reserve before the first forward
   * of a larger batch; forward/backward then allocate nothing. NULL when
   * the layer needs no workspace. Returns NNKIT_E_NOMEM with a sentence. */
  nnkit_status (*reserve)(nnkit__layer *l, size_t batch);
  /* 1: a call on samples [a, b) of a batch gives exactly rows [a, b) of a
   * whole-batch call (parameter gradients still accumulate), so the net
   * may run a leading run of such layers slice by slice, each slice's
   * activations still in cache when the next layer reads them
   * (convolutions, activations, pooling, flatten). Layers with per-sample
   * state index it from nnkit__net_slice0(). 0 for layers that need the whole batch
   * (batch norm, dropout's mask draws) or want it (dense: one large GEMM).
   * With several threads each thread owns slices: the layer's calls then
   * run inside a task (nnkit__in_task()), their own parallel calls inline
   * in that thread's slot (nnkit__task_slot()). */
  int slice_ok;
  /* 1: backward writes (=) every one of l->grads instead of adding to them,
   * so the net need not zero them before a backward pass (dense). */
  int grads_overwrite;
  /* 1: backward never reads y (its own output), so during training the
   * net may let a ReLU right after this layer overwrite that output in
   * place (conv, dense, batch norm, pooling, dropout, flatten). */
  int backward_ignores_y;
  /* Optional, for slice_ok layers that keep per-thread gradient partials:
   * when backward runs inside a task it leaves its partial in the
   * thread's slot; after all slices the net calls gather, which adds the
   * slots' partials into l->grads in slot order and zeroes them. */
  void (*gather)(nnkit__layer *l);
  /* Optional, for profiles: forward multiply-adds per sample (backward
   * does as many for the weight gradient and as many again for dx).
   * NULL: the layer does no multiply-adds worth counting. */
  double (*macs)(const nnkit__layer *l);
  /* Optional, for profiles: writes which kernels the layer runs and why
   * (after the first forward); NULL: the layer has no choice to make. */
  void (*kernel)(const nnkit__layer *l, char *buf, size_t len);
} nnkit__layer_kind;

struct nnkit__layer {
  const nnkit__layer_kind *ops; /* the kind's descriptor */
  nnkit__shape in, out;
  size_t num_params;   /* floats in this layer's slice */
  size_t param_offset; /* into net->params */
  float *params;       /* net->params + param_offset (NULL when none) */
  float *grads;        /* net->grads + param_offset */
  int initialized;
  int training;        /* copy of the net's mode, set before forward */
  size_t index;        /* position in the net */
  uint64_t seed;       /* the net's seed; layers draw from stream 2^32 + index */
  int frozen;          /* 1: the optimizer leaves this layer's params alone */
  int out_stale;       /* 1: the last forward let the ReLU after this layer
                          overwrite its output (nnkit__net_forward_fit) */
  float lr_mult;       /* per-layer learning-rate multiplier (default 1) */
  nnkit_init *w_init;  /* owned; NULL = default */
  nnkit_init *b_init;  /* owned; NULL = zeros */
  void *state;         /* kind-specific, owned (the kind's destroy frees it) */
};

/* The registry (lib/model/registry.c): the kinds a model file can name. */
const nnkit__layer_kind *nnkit__layer_kind_named(const char *name);
/* Kind i of the registry (i < n, *n set), in registry order. */
const nnkit__layer_kind *nnkit__layer_kind_at(size_t i, size_t *n);
/* The option row of key in l's kind, or NULL. */
const nnkit__spec *nnkit__layer_opt(const nnkit__layer *l, int key);
/* The layer's activation (0 when it is not one) and leaky slope. */
static inline int nnkit__layer_activation(const nnkit__layer *l, float *slope)
{
  float sl = 0.0f;
  int a = l->ops->activation ? l->ops->activation(l, &sl) : 0;
  if (slope)
    *slope = sl;
  return a;
}

/* Reference twins of BLAS-backed kernels, used by the tests. */
void nnkit__dense_forward_naive(const float *x, const float *w, const float *b,
                                float *y, size_t batch, size_t in, size_t out);
void nnkit__dense_backward_naive(const float *x, const float *w,
                                 const float *dy, float *dx, float *dw,
                                 float *db, size_t batch, size_t in,
                                 size_t out);

/* Geometry of a 2-D convolution or pooling window over NCHW samples:
 * input [c, h, w], output [oc, oh, ow] (oc == c for pooling), kernel
 * kh x kw, stride sh x sw, and pt/pl zero rows/columns before the input
 * (after it: whatever the output size needs). */
typedef struct nnkit__conv_geom {
  size_t c, h, w;
  size_t oc, oh, ow;
  size_t kh, kw, sh, sw;
  size_t pt, pl;
} nnkit__conv_geom;

/* Fills g from the input shape ([C, H, W], or [H, W] as one channel),
 * kernel, stride and padding (NNKIT_PAD_SAME allowed) and sets g->oc = C.
 * `what` names the layer kind in the NNKIT_E_SHAPE sentence, e.g.
 * "conv2d (layer 2): kernel 5x5 does not fit input 3x3 with padding 0". */
nnkit_status nnkit__conv_geom_setup(nnkit__conv_geom *g, const nnkit__shape *in,
                                    size_t kh, size_t kw, size_t sh, size_t sw,
                                    size_t ph, size_t pw, const char *what,
                                    size_t index);

/* Writes a shape as "32x14x14" (truncated to len). */
void nnkit__shape_text(const nnkit__shape *s, char *buf, size_t len);

/* Geometry of a conv2d, max or average pooling layer (tests). */
const nnkit__conv_geom *nnkit__layer_geom(const nnkit__layer *l);

/* Plain-loop twins of the conv2d kernels (b may be NULL: no bias).
 * x [batch, c, h, w], w [oc, c, kh, kw], y [batch, oc, oh, ow].
 * backward writes (=) dx, dw and db (db ignored when NULL; dx may be NULL). */
void nnkit__conv2d_forward_naive(const float *x, const float *w, const float *b,
                                 float *y, size_t batch,
                                 const nnkit__conv_geom *g);
void nnkit__conv2d_backward_naive(const float *x, const float *w,
                                  const float *dy, float *dx, float *dw,
                                  float *db, size_t batch,
                                  const nnkit__conv_geom *g);

/* ---- direct stride-1 convolution kernels (lib/model/conv2d_direct.c) -- */
/* Rows per register block and positions per full block of
 * nnkit__direct_corr (a row's last block may be 8 or 16 positions). */
#define NNKIT__DIRECT_MR 4
#define NNKIT__DIRECT_QB 24

/* Dense-layer GEMMs (lib/model/gemm.c), row-major, C = A.B (beta 0) or
 * C += A.B (beta 1); with bias (N floats, or NULL) C = bias + A.B, bias
 * added to every row (beta is then ignored):
 *   NT  C[M,N] = A[M,K] . B[N,K]^T    (dense forward: X . W^T)
 *   TN  C[M,N] = A[K,M]^T . B[K,N]    (dense dW: dY^T . X)
 *   NN  C[M,N] = A[M,K] . B[K,N]      (dense dX: dY . W)
 * ws: nnkit__gemm_ws_floats(M, K) floats owned by the caller (one per
 * thread), or NULL to call cblas_sgemm. On CPUs without AVX2 + FMA (and in
 * -DNNKIT_NO_DIRECT builds) cblas_sgemm runs either way. */
typedef enum { NNKIT__GEMM_NT, NNKIT__GEMM_TN, NNKIT__GEMM_NN } nnkit__gemm_form;
size_t nnkit__gemm_ws_floats(size_t M, size_t K);
/* 1 when nnkit's GEMM kernel can run here (AVX2 + FMA, not forced off);
 * each product then runs it or cblas_sgemm as nnkit__choose measured. */
int nnkit__gemm_fast(void);
/* Tests and benchmarks: 1 runs nnkit's kernel whenever the CPU can, 0
 * always cblas_sgemm, -1 restores the measured choice. */
void nnkit__gemm_force(int mode);
/* Which kernel runs a product of this shape at the current thread count,
 * and why (nnkit__choice_explain's text), into buf: profiles. */
void nnkit__gemm_explain(char *buf, size_t len, nnkit__gemm_form form, size_t M, size_t N,
                         size_t K);
void nnkit__gemm(nnkit__gemm_form form, size_t M, size_t N, size_t K, const float *A,
                 size_t lda, const float *B, size_t ldb, float beta, float *C,
                 size_t ldc, const float *bias, float *ws);
/* 1 when the CPU runs the AVX2+FMA kernels (and no test forced them off). */
int nnkit__direct_available(void);
/* Tests: 0 makes nnkit__direct_available() return 0, -1 restores it. */
void nnkit__direct_force(int mode);
/* 1 when a conv2d layer ran the direct kernels in its last forward (before
 * any: when the kernel mode lets it); tests. */
int nnkit__conv_is_direct(const nnkit__layer *l);

/* out[r][q] = init[r] (0 when init is NULL) + sum_t W[r][t] in[toff[t] + q]
 * for rows r < m and positions q < qr (a multiple of 8);
 * out has row stride ostride. W comes packed in blocks of 4 rows:
 * wpk[((r / 4) k + t) 4 + r % 4], rows past m zero. in must be readable
 * at every toff[t] + q. */
void nnkit__direct_corr(float *out, size_t ostride, size_t m, const float *in,
                        const int32_t *toff, size_t k, const float *wpk,
                        const float *init, size_t qr);
/* acc[r k + t] += sum_q dy[r dystride + q] in[toff[t] + q], q < qr (a
 * multiple of 8). */
void nnkit__direct_dw(float *acc, const float *dy, size_t dystride, size_t m,
                      const float *in, const int32_t *toff, size_t k, size_t qr);
/* dst[r][0..n) = src[r][0..n) for rows r < rows (row strides in floats). */
void nnkit__direct_copy_rows(float *dst, size_t dstride, const float *src,
                             size_t sstride, size_t rows, size_t n);
/* sum[r] += the sum of x[r n .. r n + n) for r < rows. */
void nnkit__direct_row_sums(float *sum, const float *x, size_t rows, size_t n);

/* Dropout (either kind): frozen != 0 keeps the current mask step, so
 * every training forward of the same batch size draws the same mask
 * (finite-difference checks); 0 resumes a new mask per forward. */
void nnkit__dropout_freeze(nnkit__layer *l, int frozen);

/* Softmax of each row (numerically stable). */
void nnkit__softmax_rows(const float *x, float *y, size_t rows, size_t cols);
/* "relu", "leaky_relu", "tanh", "sigmoid", "softmax" for an
 * nnkit_activation; "?" otherwise. */
const char *nnkit__activation_name(int act);

/* Losses (lib/model/loss.c). Each returns the mean loss and writes the
 * gradient of the mean loss with respect to its input into grad.
 * Softmax cross-entropy takes logits [batch, classes]. */
double nnkit__softmax_ce(const float *logits, const int32_t *labels,
                         float *grad, size_t batch, size_t classes);
/* MSE over [batch, n]: mean of (y - t)^2; targets or one-hot labels. */
double nnkit__mse(const float *y, const float *targets, const int32_t *labels,
                  float *grad, size_t batch, size_t n);
/* The same, also writing each sample's own loss into each[0..batch) (its
 * cross-entropy; its mean squared error over the n outputs) when each is
 * not NULL: the mean of each is the returned loss. */
double nnkit__softmax_ce_each(const float *logits, const int32_t *labels,
                              float *grad, size_t batch, size_t classes, double *each);
double nnkit__mse_each(const float *y, const float *targets, const int32_t *labels,
                       float *grad, size_t batch, size_t n, double *each);

/* A count or padding argument as the add calls take it: -1 is
 * NNKIT_PAD_SAME (which every count check rejects as too large). */
static inline size_t nnkit__arg_size(double v)
{
  return v < 0 ? NNKIT_PAD_SAME : (size_t)v;
}
/* The inverse, for get_args. */
static inline double nnkit__size_arg(size_t v)
{
  return v == NNKIT_PAD_SAME ? -1.0 : (double)v;
}

/* ---- the net (lib/model/net.c) ---------------------------------------- */
struct nnkit_net {
  nnkit__shape in;
  uint64_t seed;
  nnkit_loss loss;
  int training;
  size_t num_layers, cap_layers;
  nnkit__layer *layers;
  /* parameters */
  size_t num_params;
  float *params, *grads;
  int built; /* params allocated for the current layer list */
  /* working memory, sized for batch_cap samples */
  size_t batch_cap;
  int threads_cap;   /* thread count the layers' workspaces were sized for */
  float **acts;      /* acts[i] = output of layer i */
  float *input;      /* copy of the last forward input (for backward) */
  const float *x0;   /* the last forward input: input, or the trainer's
                        batch (nnkit__net_forward_fit) */
  float *dbuf[2];    /* ping-pong gradient buffers */
  size_t slice_layers; /* leading layers run slice by slice (slice_ok) */
  size_t slice;        /* samples per slice */
  size_t slice_threads; /* threads owning slices (1: the caller runs them) */
  float *sbuf;         /* per thread, two ping-pong gradient buffers of a slice */
  size_t slice_force;  /* 0: automatic; SIZE_MAX: whole batch; else samples */
  float *probs;      /* softmax/loss scratch [batch_cap, output] */
  float *dinput;     /* gradient w.r.t. the input */
  size_t max_width;  /* widest layer input/output */
  size_t last_batch; /* batch of the last forward, 0 = none */
  int want_dinput;  /* backward also fills dinput (tests, later saliency) */
  int have_dinput;
  size_t last_correct; /* argmax hits of the last loss computation */
  char describe_buf[256];
  /* Preprocessing (preprocess.c): the input normalizer the net owns, or
   * NULL; predict, predict_proba and evaluate run raw samples through it
   * first, EVAL_CHUNK samples at a time, into nz_buf (NNKIT__NORM_CHUNK x
   * the larger of its input and output size) with nz_scratch (its
   * nnkit__normalizer_scratch_len floats, or NULL): both allocated when
   * the normalizer is attached, so predicting allocates nothing more. */
  nnkit_normalizer *nz;
  float *nz_buf, *nz_scratch;
  /* Class names: num_names strings in one nnkit__malloc block holding the
   * pointer array followed by the strings, or NULL. */
  char **class_names;
  size_t num_names;
  /* Per-layer profile (nnkit__profile_enable), or NULL: prof_n entries. */
  struct nnkit__layer_profile *prof;
  size_t prof_n;
};

/* ---- profiles (lib/model/exec.c; benchmarks: bench/perf --layers 1) -- */
/* A layer's time and work since nnkit__profile_enable. With several
 * threads owning slices, the times are those of the thread that runs
 * the first share (about the wall time) and the FLOPs are the whole
 * batch's (2 per multiply-add). */
typedef struct nnkit__layer_profile {
  const char *kind;    /* the kind's name (static) */
  double fwd_s, bwd_s; /* seconds in forward, backward */
  double fwd_flop, bwd_flop;
  size_t fwd_calls, bwd_calls;
  char kernel[320];    /* the layer's kernel choice ("" when none) */
} nnkit__layer_profile;
/* on: (re)starts the profile of every layer from zero (NNKIT_E_NOMEM when
 * its table cannot be allocated); 0: stops and frees it. */
nnkit_status nnkit__profile_enable(nnkit_net *net, int on);
/* Copies layer `layer`'s profile to *out and returns 1; 0 past the last
 * layer or when profiling is off. */
size_t nnkit__profile_get(const nnkit_net *net, size_t layer,
                          nnkit__layer_profile *out);

/* Appends a layer whose kind-specific fields (ops, state, ...) are in
 * *proto; runs ops->setup with l->in, l->index and l->seed set. The net
 * owns proto->state from this call on, also on failure (ops->destroy). */
nnkit_status nnkit__net_add_layer(nnkit_net *net, const nnkit__layer *proto);

/* Floats in the tensors of the given nnkit__role bits over every layer,
 * and copying them out of the layers into buf (to_net 0) or back (1), in
 * layer and tensor order. The net must be built. Never allocates. */
size_t nnkit__net_role_floats(nnkit_net *net, int roles);
void nnkit__net_role_copy(nnkit_net *net, int roles, float *buf, int to_net);

/* Drops the net's working memory (exec.c); rebuilt at the next use. */
void nnkit__net_free_work(nnkit_net *net);
/* Loss of the last forward batch (loss.c); the gradient w.r.t. the loss
 * input goes to net->probs and net->last_correct counts argmax hits.
 * *first_out gets the index one past the last layer to back-propagate
 * through (num_layers - 1 when a trailing softmax is folded into
 * cross-entropy). NNKIT_E_STATE without a forward batch, NNKIT_E_INVALID
 * for missing or out-of-range labels. */
nnkit_status nnkit__net_loss(nnkit_net *net, const int32_t *labels,
                             const float *targets, double *loss_out,
                             size_t *first_out);
/* As nnkit__net_loss, also writing each sample's loss into each[0..batch)
 * when each is not NULL (nnkit__softmax_ce_each, nnkit__mse_each). */
nnkit_status nnkit__net_loss_each(nnkit_net *net, const int32_t *labels,
                                  const float *targets, double *loss_out,
                                  size_t *first_out, double *each);
/* The backward pass of nnkit_net_backward after its loss: from the loss
 * gradient in net->probs (which a caller may have reweighted per sample,
 * as online hard example mining does) through layers first-1 .. 0, the
 * gradient buffer overwritten (exec.c). */
void nnkit__net_backprop(nnkit_net *net, size_t first);

/* 1 when the loss is softmax cross-entropy and the last layer a softmax,
 * which the loss then folds in (loss.c). */
int nnkit__net_fused_softmax(const nnkit_net *net);

/* Allocates params for all layers (keeping existing values of initialized
 * layers) and initializes layers never initialized. */
nnkit_status nnkit__net_build(nnkit_net *net);
/* Ensures working memory for batch samples. */
nnkit_status nnkit__net_reserve(nnkit_net *net, size_t batch);
/* The trainer's forward. borrow: read x in place instead of copying it
 * (x must stay unchanged until the next forward: the trainer's gathered
 * batch). inplace: each ReLU right after a layer with backward_ignores_y
 * writes over that layer's output (in cache, no second buffer to stream
 * through memory); the buffers are then swapped, so acts[i] is still
 * layer i's output for every layer but those, whose out_stale is set
 * until the next forward (statistics and histograms refuse them). */
nnkit_status nnkit__net_forward_fit(nnkit_net *net, const float *x, size_t batch,
                                    int borrow, int inplace);
/* Copies a borrowed input into the net's own buffer (the trainer calls it
 * when fit returns, before the batch it lent goes away). */
void nnkit__net_keep_input(nnkit_net *net);
/* Tests and benchmarks: samples per slice for the leading slice-wise
 * layers (0 automatic, SIZE_MAX whole batch); takes effect at the next
 * forward. */
void nnkit__net_force_slice(nnkit_net *net, size_t samples);
/* First sample, within the net's batch, of the slice the calling thread
 * runs a layer on (0 outside slice-wise runs). */
size_t nnkit__net_slice0(void);
/* Output of the last layer of the last forward. */
const float *nnkit__net_output(const nnkit_net *net);
/* Mean loss of the last forward and the number of correct argmax
 * predictions (labels only), without backward. */
nnkit_status nnkit__net_batch_loss(nnkit_net *net, const int32_t *labels,
                                   const float *targets, double *loss_out,
                                   size_t *correct_out);

/* Preprocessing (preprocess.c). Floats of one raw sample: the attached
 * normalizer's input size, or the net's input size without one. */
size_t nnkit__net_raw_input_size(const nnkit_net *net);
/* Runs n <= NNKIT__NORM_CHUNK raw samples x through the attached
 * normalizer into net->nz_buf and returns it (x itself without one).
 * Never allocates. */
const float *nnkit__net_preprocess(nnkit_net *net, const float *x, size_t n);
/* Frees the normalizer, its buffers and the class names (nnkit_net_free). */
void nnkit__net_free_preprocess(nnkit_net *net);
/* nnkit_net_evaluate on samples that are already normalized: the attached
 * normalizer, if any, is not applied (the trainer's validation set and
 * sanity checks, whose data come normalized like its training set).
 * Identical to nnkit_net_evaluate for a net without a normalizer. */
nnkit_status nnkit__net_evaluate_normalized(double *loss_out, double *acc_out,
                                            nnkit_net *net,
                                            const nnkit_dataset *ds);
/* nnkit_net_evaluate, also writing each sample's loss into each[0..count)
 * (the per-sample losses of hard-sample mining, lib/train/mining.c). */
nnkit_status nnkit__net_evaluate_each(double *loss_out, double *acc_out, nnkit_net *net,
                                      const nnkit_dataset *ds, double *each);

/* A copy of src (built first if it was not): the same layers, options,
 * trainable flags and learning-rate multipliers, every tensor (parameters,
 * running statistics, random stream positions), the attached normalizer,
 * the class names and the mode; a fresh working memory (ensemble.c). */
nnkit_status nnkit__net_clone(nnkit_net **out, const nnkit_net *src);

/* ---- ensembles (lib/model/ensemble.c) ---------------------------------- */
struct nnkit_ensemble {
  nnkit_ensemble_kind kind;
  nnkit_net **nets; /* owned */
  double *w;
  size_t n, cap;
  /* working memory of predict and evaluate (grown, kept) */
  float *member, *comb, *scratch;
  size_t member_cap, comb_cap, scratch_cap;
};
/* Appends net, taken (freed by the ensemble, also on failure), after the
 * checks of nnkit_ensemble_add(). */
nnkit_status nnkit__ensemble_take(nnkit_ensemble *ens, nnkit_net *net, double weight);

/* ---- optimizers, schedules, regularizers (lib/optim/) ------------------ */

/* One more than the largest nnkit_optim_param: the size of the keyed
 * hyperparameter array (bump it when a key is appended). */
#define NNKIT__OPT_KEYS 12
/* Most per-parameter state buffers a kind may have. */
#define NNKIT__OPT_MAX_BUFS 4

typedef struct nnkit__optim_kind_desc nnkit__optim_kind_desc;

struct nnkit_optimizer {
  const nnkit__optim_kind_desc *desc; /* the algorithm */
  /* Hyperparameters by key: lr is NNKIT_OPT_LR, the current rate (an
   * attached schedule sets it; the trainer reads it), hp[key] every other
   * key (hp[NNKIT_OPT_LR] unused; keys the kind lacks stay 0). */
  double lr;
  double hp[NNKIT__OPT_KEYS];
  uint64_t steps;
  /* state, sized at the first step for one net */
  size_t sized_params; /* parameter count the state is for; 0 = not sized */
  size_t state_bufs;   /* buffers of sized_params floats in state */
  float *state;
  size_t num_counts;     /* layers with an update counter */
  uint64_t *layer_steps; /* updates each layer has received */
  double *layer_scalars; /* num_counts x desc->num_scalars, layer by layer
                            (NULL when the kind has none) */
  nnkit_schedule *sched; /* owned, or NULL */
  nnkit_regularizer **regs; /* owned */
  size_t num_regs, cap_regs;
  double last_reg_loss;  /* penalty added at the last step */
  double last_grad_norm; /* global gradient norm before clipping (NaN unless
                            CLIP_NORM was on at the last step) */
};

/* A hyperparameter's value (keys the kind lacks read 0). */
static inline double nnkit__opt_hp(const nnkit_optimizer *o, nnkit_optim_param key)
{
  return key == NNKIT_OPT_LR ? o->lr : o->hp[key];
}

/* What an update rule gets: one layer's share of the parameters, the
 * gradients and each state buffer, for one task of the parallel step. */
typedef struct nnkit__optim_slice {
  float *p;
  const float *g;
  float *s[NNKIT__OPT_MAX_BUFS]; /* state buffer b's part; NULL from
                                    opt->state_bufs on */
  size_t n;
  double lr;  /* the layer's rate: LR times its multiplier */
  uint64_t t; /* updates this layer has received, this one included */
  const double *scalars; /* the layer's scalar state (after layer_begin) */
} nnkit__optim_slice;

/* One optimizer kind = one file defining this + one line in
 * lib/optim/registry.c. The generic machinery (optimizer.c) does keys,
 * bounds, state sizing, checkpoints, clipping, frozen layers, learning-rate
 * multipliers, schedules and regularizers from it. */
struct nnkit__optim_kind_desc {
  nnkit_optim_kind kind;
  const char *name; /* in sentences: "SGD", "Adam" */
  /* The kind's keys with range and default (rows of kind 0; the clipping
   * keys every kind has are added by optimizer.c). */
  const nnkit__spec *keys;
  size_t num_keys;
  /* Per-parameter state buffers (each sized_params floats), named as in
   * torch's optimizer state_dict ("momentum_buffer", "exp_avg", ...), in
   * the order nnkit_optimizer_get_state() writes them; max_state of them. */
  const char *const *state_names;
  size_t max_state;
  /* Buffers the current settings need (<= max_state): the first that many
   * are allocated, so optional ones go last. */
  size_t (*state_needed)(const nnkit_optimizer *opt);
  /* Per-layer scalar state (NAdam's mu_product): name, valid range and
   * initial value of each, as spec rows (key = index); 0 of them for most. */
  const nnkit__spec *scalars;
  size_t num_scalars;
  /* Called once per trainable layer and step, before the update, with the
   * layer's scalars and its new step count t (NULL: nothing to do). */
  void (*layer_begin)(const nnkit_optimizer *opt, double *scalars, uint64_t t);
  /* The update rule on one slice: a flat, branch-free loop. */
  void (*update)(const nnkit_optimizer *opt, const nnkit__optim_slice *x);
};

extern const nnkit__optim_kind_desc nnkit__optim_sgd;     /* sgd.c */
extern const nnkit__optim_kind_desc nnkit__optim_rmsprop; /* rmsprop.c */
extern const nnkit__optim_kind_desc nnkit__optim_adagrad; /* adagrad.c */
extern const nnkit__optim_kind_desc nnkit__optim_adam;    /* adam.c */
extern const nnkit__optim_kind_desc nnkit__optim_adamw;   /* adam.c */
extern const nnkit__optim_kind_desc nnkit__optim_nadam;   /* nadam.c */

/* The registry (lib/optim/registry.c): the descriptor of a kind, or NULL;
 * and the i-th registered kind (i < nnkit__optim_num_kinds()). */
const nnkit__optim_kind_desc *nnkit__optim_kind_of(nnkit_optim_kind kind);
size_t nnkit__optim_num_kinds(void);
const nnkit__optim_kind_desc *nnkit__optim_kind_at(size_t i);

/* Names of opt's state, for checkpoints: per-parameter buffer buf (as
 * nnkit_optimizer_get_state() orders them; NULL from max_state on) and
 * per-layer scalar i (NULL from num_scalars on). */
const char *nnkit__optimizer_state_name(const nnkit_optimizer *opt, size_t buf);
const char *nnkit__optimizer_scalar_name(const nnkit_optimizer *opt, size_t i);

/* Hooks for the fit loop: after every optimizer step, and at the end of
 * every epoch with the monitored value (validation loss, or training cost
 * without a validation set). They advance an attached schedule when it is
 * stepped per batch / per epoch, and do nothing otherwise. */
nnkit_status nnkit__optimizer_batch_end(nnkit_optimizer *opt);
nnkit_status nnkit__optimizer_epoch_end(nnkit_optimizer *opt, double monitored);

/* A fresh optimizer of opt's kind with opt's hyperparameters and copies of
 * its regularizers; no state and no schedule. Leaves the caller's
 * last-error sentence as it was on success. */
nnkit_status nnkit__optimizer_clone(nnkit_optimizer **out,
                                    const nnkit_optimizer *opt);

/* Schedules (schedule.c). */
/* Starts the schedule at step 0 with base learning rate base. */
void nnkit__schedule_start(nnkit_schedule *s, double base);
/* The base rate, and setting it while keeping the step. */
double nnkit__schedule_base(const nnkit_schedule *s);
void nnkit__schedule_set_base(nnkit_schedule *s, double base);
/* The learning rate for the schedule's current step. */
double nnkit__schedule_lr(const nnkit_schedule *s);
/* s->t (the steps taken) when the last step ended a cosine cycle -- SGDR
 * at the end of each period, COSINE at each of its minima (T_MAX, 3 T_MAX,
 * ...) -- else 0 (also for other kinds): snapshot ensembles. */
uint64_t nnkit__schedule_cycle_end(const nnkit_schedule *s);
/* Advances one step; monitored feeds reduce-on-plateau. */
void nnkit__schedule_advance(nnkit_schedule *s, double monitored);
int nnkit__schedule_per_batch(const nnkit_schedule *s);
/* 0 when free, 1 when an optimizer owns it. */
int nnkit__schedule_attached(const nnkit_schedule *s);
void nnkit__schedule_set_attached(nnkit_schedule *s, int attached);
/* Position of the schedule: NNKIT__SCHED_STATE doubles. */
#define NNKIT__SCHED_STATE 7
void nnkit__schedule_save(const nnkit_schedule *s, double *out);
/* Validates and restores a saved position (NNKIT_E_INVALID with a sentence). */
nnkit_status nnkit__schedule_restore(nnkit_schedule *s, const double *in);
/* Frees a schedule regardless of its owner. */
void nnkit__schedule_destroy(nnkit_schedule *s);

/* Regularizers (regularizer.c). */
/* NNKIT_E_INVALID when a selected layer is out of net's range. */
nnkit_status nnkit__regularizer_check(const nnkit_regularizer *r,
                                      const nnkit_net *net);
/* The penalty over the selected trainable layers of a built net; when
 * add_grad != 0 its gradient is added to net->grads. */
double nnkit__regularizer_apply(const nnkit_regularizer *r, nnkit_net *net,
                                int add_grad);
/* Max-norm: scales rows longer than the bound back (no-op for the other
 * kinds). */
void nnkit__regularizer_constrain(const nnkit_regularizer *r, nnkit_net *net);
int nnkit__regularizer_attached(const nnkit_regularizer *r);
void nnkit__regularizer_set_attached(nnkit_regularizer *r, int attached);
/* A copy with the same settings and layers, not attached. */
nnkit_status nnkit__regularizer_copy(nnkit_regularizer **out,
                                     const nnkit_regularizer *r);
/* Frees a regularizer regardless of its owner. */
void nnkit__regularizer_destroy(nnkit_regularizer *r);

#endif /* NNKIT_INTERNAL_H */
