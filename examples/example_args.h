/* Command-line options shared by the examples: --data DIR, --epochs N,
 * --seed N, --threads N, --help, and --predictions FILE and --save FILE
 * for the examples that set takes_predictions and takes_save. Header-only,
 * for the examples only. */
#ifndef NNKIT_EXAMPLE_ARGS_H
#define NNKIT_EXAMPLE_ARGS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nnkit.h>

typedef struct example_args {
  const char *data;
  long epochs;
  long seed;
  long threads;
  const char *predictions; /* --predictions FILE, or NULL */
  int takes_predictions;   /* 1: the example accepts --predictions */
  const char *save;        /* --save FILE, or NULL */
  int takes_save;          /* 1: the example accepts --save */
} example_args;

/* The program's name for error lines: argv[0]'s last component, set by
 * example_parse(). */
static const char *example_prog = "example";

/* Prints "<program>: STATUS\n  <nnkit_last_error()>" on stderr. */
static inline void example_report(nnkit_status st)
{
  fprintf(stderr, "%s: %s\n  %s\n", example_prog, nnkit_status_string(st),
          nnkit_last_error());
}

/* TRY(call): runs an nnkit call; on failure reports it (example_report)
 * and jumps to the enclosing function's `out` label. Needs a variable
 * `nnkit_status st` in scope. */
#define TRY(call)                                                            \
  do {                                                                       \
    st = (call);                                                             \
    if (st != NNKIT_OK) {                                                    \
      example_report(st);                                                    \
      goto out;                                                              \
    }                                                                        \
  } while (0)

/* Monotonic seconds, for the examples' timings. */
static inline double example_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out)
{
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < lo || v > hi) {
    fprintf(stderr, "%s: '%s' is not an integer in [%ld, %ld]\n", opt, s, lo, hi);
    return 0;
  }
  *out = v;
  return 1;
}

/* Returns 1 to run, 0 to exit successfully (--help), -1 on a usage error. */
static int example_parse(example_args *a, int argc, char **argv, const char *usage)
{
  if (argc > 0 && argv[0]) {
    const char *slash = strrchr(argv[0], '/');
    example_prog = slash ? slash + 1 : argv[0];
  }
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
      printf("%s", usage);
      printf("options:\n"
             "  --data DIR     directory with the four MNIST-named IDX files "
             "(default %s)\n"
             "  --epochs N     training epochs (default %ld)\n"
             "  --seed N       seed of initialization and data order (default %ld)\n"
             "  --threads N    math threads, 0 = all cores (default %ld)\n"
             "  --help         this text\n",
             a->data, a->epochs, a->seed, a->threads);
      if (a->takes_predictions)
        printf("  --predictions FILE  write the test set's predicted classes, one "
               "per line\n");
      if (a->takes_save)
        printf("  --save FILE    write the trained model and its normalizer to FILE "
               "(safetensors)\n");
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "%s: missing value (see --help)\n", o);
      return -1;
    }
    const char *v = argv[++i];
    if (!strcmp(o, "--data")) {
      a->data = v;
    } else if (!strcmp(o, "--epochs")) {
      if (!parse_long(o, v, 1, 100000, &a->epochs))
        return -1;
    } else if (!strcmp(o, "--seed")) {
      if (!parse_long(o, v, 0, 2147483647L, &a->seed))
        return -1;
    } else if (!strcmp(o, "--threads")) {
      if (!parse_long(o, v, 0, 1024, &a->threads))
        return -1;
    } else if (!strcmp(o, "--predictions") && a->takes_predictions) {
      a->predictions = v;
    } else if (!strcmp(o, "--save") && a->takes_save) {
      a->save = v;
    } else {
      fprintf(stderr, "unknown option %s (see --help)\n", o);
      return -1;
    }
  }
  return 1;
}

#endif
