/* CSV files as datasets, parsed by libcsv (strict RFC 4180 quoting).
 *
 * The first two records are buffered as text until we know whether record
 * 1 is a header (NNKIT_CSV_HEADER_AUTO compares them column by column);
 * from then on each cell goes straight into the feature buffer or the
 * label text buffer. Numbers are converted with strtod under a "C" locale
 * installed for this thread only (uselocale), so neither the process
 * locale nor other threads matter. Label texts become ids at the end:
 * integers as themselves, other strings numbered in byte order. */
#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csv.h>

#include "internal.h"

#define CSV_READ_CHUNK 16384
/* Integer labels at or above this are read as class names instead, so a
 * column of ids like 20231107 cannot ask for millions of classes. */
#define CSV_MAX_INT_LABEL 65536

/* A growable byte buffer of NUL-terminated strings. */
typedef struct text_buf {
  char *p;
  size_t len, cap;
} text_buf;

typedef struct csv_ctx {
  const char *path;
  nnkit_status status; /* first failure; callbacks do nothing after it */
  /* options */
  nnkit_csv_header header;
  const char *label_name;
  int64_t label_index;
  /* progress */
  size_t row; /* 1-based number of the record being read */
  size_t col; /* cells seen so far in it */
  /* the first two records, as text */
  text_buf pend;
  size_t *pend_off; /* offsets of the cells in pend */
  size_t pend_n, pend_cap;
  size_t pend_cols[2];
  size_t pend_rows;
  /* decided layout */
  int decided;
  int has_header;
  size_t ncols;
  size_t label_col; /* SIZE_MAX: no label column */
  /* data */
  float *x;
  size_t x_len, x_cap;
  text_buf lab;     /* label texts */
  size_t *lab_off;  /* per data row */
  size_t nrows, lab_cap;
} csv_ctx;

/* ---- small helpers ---------------------------------------------------- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
  if (need <= *cap)
    return 1;
  size_t n = *cap ? *cap : 64;
  while (n < need) {
    if (n > SIZE_MAX / 2 / elem)
      return 0;
    n *= 2;
  }
  void *q = nnkit__realloc(*p, n * elem);
  if (!q)
    return 0;
  *p = q;
  *cap = n;
  return 1;
}

/* Appends len bytes and a NUL; returns the offset or SIZE_MAX on OOM. */
static size_t text_add(text_buf *t, const char *s, size_t len)
{
  if (len > SIZE_MAX - t->len - 1 ||
      !grow((void **)&t->p, &t->cap, t->len + len + 1, 1))
    return SIZE_MAX;
  size_t at = t->len;
  memcpy(t->p + at, s, len);
  t->p[at + len] = '\0';
  t->len += len + 1;
  return at;
}

static nnkit_status oom(csv_ctx *c)
{
  c->status = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory at row %zu",
                         c->path, c->row);
  return c->status;
}

/* Strips spaces and tabs around s[0..*len) in place of the view. */
static const char *trim(const char *s, size_t *len)
{
  size_t n = *len;
  while (n && (*s == ' ' || *s == '\t')) {
    s++;
    n--;
  }
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  *len = n;
  return s;
}

/* Parses a decimal number (digits, sign, point, exponent only; no hex,
 * "inf" or "nan"). The caller has installed the C locale. Returns 1 and
 * *v on success, 0 when it is not a number, -1 when it overflows float. */
static int parse_number(const char *s, size_t len, float *v)
{
  s = trim(s, &len);
  if (len == 0 || len > 256)
    return 0;
  char buf[260];
  int digits = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch >= '0' && ch <= '9')
      digits = 1;
    else if (!(ch == '+' || ch == '-' || ch == '.' || ch == 'e' || ch == 'E'))
      return 0;
    buf[i] = ch;
  }
  if (!digits)
    return 0;
  buf[len] = '\0';
  char *end;
  errno = 0;
  double d = strtod(buf, &end);
  if (end != buf + len)
    return 0;
  if (!isfinite(d) || fabs(d) > FLT_MAX)
    return -1;
  *v = (float)d; /* underflow to 0 or a subnormal is fine */
  return 1;
}

/* The header name of column col (0-based), or NULL without a header. */
static const char *col_name(const csv_ctx *c, size_t col)
{
  if (!c->has_header || col >= c->pend_cols[0])
    return NULL;
  return c->pend.p + c->pend_off[col];
}

/* "column 3 ('price')" or "column 3" into buf. */
static const char *col_text(const csv_ctx *c, size_t col, char *buf,
                            size_t len)
{
  const char *name = col_name(c, col);
  if (name)
    snprintf(buf, len, "column %zu ('%.60s')", col + 1, name);
  else
    snprintf(buf, len, "column %zu", col + 1);
  return buf;
}

/* ---- data rows -------------------------------------------------------- */

static void data_cell(csv_ctx *c, const char *s, size_t len, size_t row,
                      size_t col)
{
  char ct[96];
  if (col >= c->ncols) {
    c->status = nnkit__err(NNKIT_E_FORMAT, "%s: row %zu has more than the "
                           "%zu columns of row 1 (a ragged row); give every "
                           "row the same number of fields or quote fields "
                           "that contain the delimiter", c->path, row,
                           c->ncols);
    return;
  }
  if (col == c->label_col) {
    size_t n = len;
    const char *t = trim(s, &n);
    if (n == 0) {
      c->status = nnkit__err(NNKIT_E_FORMAT, "%s: row %zu, %s: the label "
                             "is empty; every row needs a class label",
                             c->path, row, col_text(c, col, ct, sizeof ct));
      return;
    }
    size_t at = text_add(&c->lab, t, n);
    if (at == SIZE_MAX ||
        !grow((void **)&c->lab_off, &c->lab_cap, c->nrows + 1, sizeof(size_t))) {
      oom(c);
      return;
    }
    c->lab_off[c->nrows] = at;
    return;
  }
  float v;
  int r = parse_number(s, len, &v);
  if (r <= 0) {
    size_t n = len;
    const char *t = trim(s, &n);
    if (n == 0)
      c->status = nnkit__err(NNKIT_E_FORMAT, "%s: row %zu, %s is empty; fill "
                             "in or drop rows with missing values before "
                             "loading", c->path, row,
                             col_text(c, col, ct, sizeof ct));
    else if (r < 0)
      c->status = nnkit__err(NNKIT_E_FORMAT, "%s: row %zu, %s: %.*s is too "
                             "large for a float; rescale the column", c->path,
                             row, col_text(c, col, ct, sizeof ct),
                             (int)(n < 40 ? n : 40), t);
    else
      c->status = nnkit__err(NNKIT_E_FORMAT, "%s: row %zu, %s: '%.*s' is "
                             "not a number; features must be numeric (write "
                             "decimals with a '.', or make this the label "
                             "column)", c->path, row,
                             col_text(c, col, ct, sizeof ct),
                             (int)(n < 40 ? n : 40), t);
    return;
  }
  if (c->x_len == SIZE_MAX ||
      !grow((void **)&c->x, &c->x_cap, c->x_len + 1, sizeof(float))) {
    oom(c);
    return;
  }
  c->x[c->x_len++] = v;
}

static void data_row_end(csv_ctx *c, size_t row, size_t cols)
{
  if (cols != c->ncols) {
    c->status = nnkit__err(NNKIT_E_FORMAT, "%s: row %zu has %zu columns but "
                           "row 1 has %zu (a ragged row); give every row the "
                           "same number of fields", c->path, row, cols,
                           c->ncols);
    return;
  }
  c->nrows++;
}

/* ---- the first records and the header decision ------------------------ */

static int is_number_text(const char *s)
{
  float v;
  return parse_number(s, strlen(s), &v) != 0;
}

static const char *pend_cell(const csv_ctx *c, size_t rec, size_t col)
{
  size_t first = rec == 0 ? 0 : c->pend_cols[0];
  return c->pend.p + c->pend_off[first + col];
}

/* Decides header and label column from the buffered records, then feeds
 * the buffered data records through data_cell. */
static void decide(csv_ctx *c)
{
  c->decided = 1;
  c->ncols = c->pend_cols[0];
  if (c->header == NNKIT_CSV_HEADER_YES || c->label_name) {
    c->has_header = 1;
  } else if (c->header == NNKIT_CSV_HEADER_NO) {
    c->has_header = 0;
  } else if (c->pend_rows >= 2) {
    size_t n = c->pend_cols[0] < c->pend_cols[1] ? c->pend_cols[0]
                                                 : c->pend_cols[1];
    c->has_header = 0;
    for (size_t j = 0; j < n && !c->has_header; j++)
      c->has_header = !is_number_text(pend_cell(c, 0, j)) &&
                      is_number_text(pend_cell(c, 1, j));
  } else {
    c->has_header = 0;
    for (size_t j = 0; j < c->ncols && !c->has_header; j++)
      c->has_header = !is_number_text(pend_cell(c, 0, j));
  }
  /* The label column. */
  c->label_col = SIZE_MAX;
  if (c->label_name) {
    for (size_t j = 0; j < c->ncols; j++)
      if (strcmp(pend_cell(c, 0, j), c->label_name) == 0) {
        c->label_col = j;
        break;
      }
    if (c->label_col == SIZE_MAX) {
      char list[400];
      size_t used = 0;
      list[0] = '\0';
      for (size_t j = 0; j < c->ncols && used < sizeof list; j++) {
        int k = snprintf(list + used, sizeof list - used, "%s'%s'",
                         j ? ", " : "", pend_cell(c, 0, j));
        if (k < 0)
          break;
        used += (size_t)k;
      }
      if (used >= sizeof list)
        memcpy(list + sizeof list - 4, "...", 4);
      c->status = nnkit__err(NNKIT_E_FORMAT, "%s: row 1 has no column named "
                             "'%s' for the label; the header's columns are %s",
                             c->path, c->label_name, list);
      return;
    }
  } else if (c->label_index != NNKIT_CSV_NO_LABEL) {
    int64_t k = c->label_index;
    int64_t n = (int64_t)c->ncols;
    if (k < -n || k >= n) {
      c->status = nnkit__err(NNKIT_E_FORMAT, "%s: label column index %lld "
                             "does not exist: row 1 has %zu columns, so use "
                             "0 to %zu (or -1 to -%zu from the end)", c->path,
                             (long long)k, c->ncols, c->ncols - 1, c->ncols);
      return;
    }
    c->label_col = (size_t)(k < 0 ? n + k : k);
  }
  if (c->ncols - (c->label_col != SIZE_MAX) == 0) {
    c->status = nnkit__err(NNKIT_E_FORMAT, "%s: rows have no feature column "
                           "besides the label; a dataset needs at least one "
                           "numeric column", c->path);
    return;
  }
  for (size_t r = c->has_header; r < c->pend_rows && !c->status; r++) {
    size_t cols = c->pend_cols[r];
    for (size_t j = 0; j < cols && !c->status; j++)
      data_cell(c, pend_cell(c, r, j), strlen(pend_cell(c, r, j)), r + 1, j);
    if (!c->status)
      data_row_end(c, r + 1, cols);
  }
}

/* ---- libcsv callbacks ------------------------------------------------- */

static void on_field(void *s, size_t len, void *data)
{
  csv_ctx *c = data;
  if (c->status)
    return;
  if (c->col == SIZE_MAX) {
    oom(c);
    return;
  }
  if (c->decided) {
    data_cell(c, s, len, c->row, c->col++);
    return;
  }
  size_t at = text_add(&c->pend, s, len);
  if (at == SIZE_MAX ||
      !grow((void **)&c->pend_off, &c->pend_cap, c->pend_n + 1, sizeof(size_t))) {
    oom(c);
    return;
  }
  c->pend_off[c->pend_n++] = at;
  c->col++;
}

static void on_row(int term, void *data)
{
  (void)term;
  csv_ctx *c = data;
  if (c->status)
    return;
  if (c->decided) {
    data_row_end(c, c->row, c->col);
  } else {
    c->pend_cols[c->pend_rows++] = c->col;
    int need_two = c->header == NNKIT_CSV_HEADER_AUTO && !c->label_name;
    if (!need_two || c->pend_rows == 2)
      decide(c);
  }
  c->row++;
  c->col = 0;
}

/* Tab-delimited files keep tabs as delimiters, not as spaces to trim. */
static int space_only(unsigned char ch) { return ch == ' '; }

/* ---- labels to ids ---------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Parses an integer label in [0, CSV_MAX_INT_LABEL); -1 otherwise. */
static long int_label(const char *s)
{
  if (!*s)
    return -1;
  long v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9')
      return -1;
    v = v * 10 + (*s - '0');
    if (v >= CSV_MAX_INT_LABEL)
      return -1;
  }
  return v;
}

/* Fills ds->labels, num_classes and class names from the label texts. */
static nnkit_status map_labels(csv_ctx *c, nnkit_dataset *ds)
{
  size_t n = c->nrows;
  long max = -1;
  int all_int = 1;
  for (size_t i = 0; i < n && all_int; i++) {
    long v = int_label(c->lab.p + c->lab_off[i]);
    if (v < 0)
      all_int = 0;
    else if (v > max)
      max = v;
  }
  if (all_int) {
    size_t k = (size_t)max + 1;
    char (*digits)[24] = nnkit__malloc(k * sizeof *digits);
    const char **names = nnkit__malloc(k * sizeof *names);
    if (!digits || !names) {
      nnkit__free(digits);
      nnkit__free(names);
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for class names",
                        c->path);
    }
    for (size_t i = 0; i < k; i++) {
      snprintf(digits[i], sizeof digits[i], "%zu", i);
      names[i] = digits[i];
    }
    for (size_t i = 0; i < n; i++)
      ds->labels[i] = (int32_t)int_label(c->lab.p + c->lab_off[i]);
    ds->num_classes = (uint32_t)k;
    nnkit_status st = nnkit__dataset_set_names(ds, names, k);
    nnkit__free(digits);
    nnkit__free(names);
    return st;
  }
  const char **sorted = nnkit__malloc(n * sizeof *sorted);
  if (!sorted)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory mapping labels",
                      c->path);
  for (size_t i = 0; i < n; i++)
    sorted[i] = c->lab.p + c->lab_off[i];
  qsort(sorted, n, sizeof *sorted, cmp_str);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (k == 0 || strcmp(sorted[k - 1], sorted[i]) != 0)
      sorted[k++] = sorted[i];
  if (k > (size_t)INT32_MAX) {
    nnkit__free(sorted);
    return nnkit__err(NNKIT_E_FORMAT, "%s: %zu distinct labels are too many "
                      "classes", c->path, k);
  }
  for (size_t i = 0; i < n; i++) {
    const char *key = c->lab.p + c->lab_off[i];
    const char **hit = bsearch(&key, sorted, k, sizeof *sorted, cmp_str);
    ds->labels[i] = (int32_t)(hit - sorted);
  }
  ds->num_classes = (uint32_t)k;
  nnkit_status st = nnkit__dataset_set_names(ds, sorted, k);
  nnkit__free(sorted);
  return st;
}

/* ---- the loader ------------------------------------------------------- */

static void ctx_free(csv_ctx *c)
{
  nnkit__free(c->pend.p);
  nnkit__free(c->pend_off);
  nnkit__free(c->x);
  nnkit__free(c->lab.p);
  nnkit__free(c->lab_off);
}

/* Reads the whole file through libcsv; c->status holds the outcome. */
static void parse_file(csv_ctx *c, FILE *f, unsigned char delim)
{
  struct csv_parser p;
  if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
    c->status = nnkit__err(NNKIT_E_NOMEM, "%s: cannot start the CSV parser",
                           c->path);
    return;
  }
  csv_set_realloc_func(&p, nnkit__realloc);
  csv_set_free_func(&p, nnkit__free);
  csv_set_delim(&p, delim);
  if (delim == '\t')
    csv_set_space_func(&p, space_only);
  char buf[CSV_READ_CHUNK];
  int bad_parse = 0, first = 1;
  for (;;) {
    size_t got = fread(buf, 1, sizeof buf, f);
    const char *at = buf;
    if (first && got >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
      at += 3; /* a UTF-8 byte order mark (spreadsheet exports) */
      got -= 3;
    }
    first = 0;
    if (got > 0 && csv_parse(&p, at, got, on_field, on_row, c) != got) {
      bad_parse = 1;
      break;
    }
    if (c->status)
      break;
    if (at + got < buf + sizeof buf) {
      if (ferror(f))
        c->status = nnkit__err(NNKIT_E_IO, "%s: read failed: %s; check the "
                               "file and the disk", c->path, strerror(errno));
      break;
    }
  }
  if (!bad_parse && !c->status &&
      csv_fini(&p, on_field, on_row, c) != 0)
    bad_parse = 1;
  if (bad_parse && !c->status) {
    int e = csv_error(&p);
    if (e == CSV_ENOMEM || e == CSV_ETOOBIG)
      c->status = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for a field "
                             "of row %zu (%s)", c->path, c->row,
                             csv_strerror(e));
    else
      c->status = nnkit__err(NNKIT_E_FORMAT, "%s: row %zu: malformed quoting "
                             "(a quote inside an unquoted field, text after a "
                             "closing quote, or a quote never closed); quote "
                             "whole fields and double quotes inside them",
                             c->path, c->row);
  }
  csv_free(&p);
}

NNKIT_API nnkit_status nnkit_dataset_load_csv(nnkit_dataset **out,
                                              const char *path, char delimiter,
                                              nnkit_csv_header header,
                                              const char *label_name,
                                              int64_t label_index)
{
  static const char fn[] = "nnkit_dataset_load_csv";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL; pass the address "
                      "of a nnkit_dataset pointer", fn);
  *out = NULL;
  if (!path)
    return nnkit__err(NNKIT_E_INVALID, "%s: path is NULL", fn);
  unsigned char delim = delimiter ? (unsigned char)delimiter : ',';
  if (delim == '"' || delim == '\r' || delim == '\n' || delim == ' ')
    return nnkit__err(NNKIT_E_INVALID, "%s: delimiter 0x%02x cannot separate "
                      "fields (it is a quote, line end or space); use e.g. "
                      "',', ';' or '\\t'", fn, delim);
  if (header != NNKIT_CSV_HEADER_AUTO && header != NNKIT_CSV_HEADER_YES &&
      header != NNKIT_CSV_HEADER_NO)
    return nnkit__err(NNKIT_E_INVALID, "%s: header is %d; use an "
                      "NNKIT_CSV_HEADER_* value", fn, (int)header);
  if (label_name && header == NNKIT_CSV_HEADER_NO)
    return nnkit__err(NNKIT_E_INVALID, "%s: label column '%s' is given by "
                      "name but header is NNKIT_CSV_HEADER_NO; name needs a "
                      "header row, or give the column's index", fn,
                      label_name);

  int fd;
  nnkit_status ost = nnkit__open_regular(&fd, NULL, path, "CSV file");
  if (ost != NNKIT_OK)
    return ost;
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    int e = errno;
    close(fd);
    return nnkit__err(e == ENOMEM ? NNKIT_E_NOMEM : NNKIT_E_IO,
                      "%s: cannot open a stream: %s", path, strerror(e));
  }
  locale_t c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  if (c_loc == (locale_t)0) {
    fclose(f);
    return nnkit__err(NNKIT_E_NOMEM, "%s: cannot create the C locale for "
                      "number parsing", path);
  }
  locale_t old_loc = uselocale(c_loc);

  csv_ctx c;
  memset(&c, 0, sizeof c);
  c.path = path;
  c.header = header;
  c.label_name = label_name;
  c.label_index = label_index;
  c.row = 1;
  parse_file(&c, f, delim);
  fclose(f);
  if (!c.status && !c.decided && c.pend_rows > 0)
    decide(&c); /* a one-record file in AUTO mode */

  uselocale(old_loc);
  freelocale(c_loc);

  nnkit_status st = c.status;
  if (!st && c.pend_rows == 0)
    st = nnkit__err(NNKIT_E_FORMAT, "%s: the file is empty (no rows); a CSV "
                    "dataset needs at least one data row", path);
  else if (!st && c.nrows == 0)
    st = nnkit__err(NNKIT_E_FORMAT, "%s: row 1 is a header and no data rows "
                    "follow; add data (or pass NNKIT_CSV_HEADER_NO if row 1 "
                    "is data)", path);
  nnkit_dataset *ds = NULL;
  if (!st) {
    size_t nfeat = c.ncols - (c.label_col != SIZE_MAX);
    st = nnkit__dataset_alloc(&ds, c.nrows, &nfeat, 1,
                              c.label_col != SIZE_MAX, 0);
  }
  if (!st) {
    memcpy(ds->x, c.x, c.x_len * sizeof(float));
    if (c.label_col != SIZE_MAX)
      st = map_labels(&c, ds);
  }
  ctx_free(&c);
  if (st) {
    nnkit_dataset_free(ds);
    return st;
  }
  *out = ds;
  return NNKIT_OK;
}
