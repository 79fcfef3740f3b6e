/* Data pipelines: CSV and image-folder loaders, concatenation and class
 * names, stratified splits, normalizers (against scikit-learn fixtures from
 * tests/fixtures/gen_normalizers.py, and ZCA against its formula computed
 * here), augmentation (checked geometrically), batch pipelines
 * (determinism across prefetch depths and timing, no steady-state
 * allocation) and allocation-failure sweeps over every constructor. */
#define _GNU_SOURCE /* nftw's FTW_DEPTH | FTW_PHYS */
#include <ftw.h>
#include <locale.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lapacke.h>
#include <stb_image_write.h>

#include "testutil.h"

static char sentinel_byte;
#define SENTINEL ((nnkit_dataset *)(void *)&sentinel_byte)

/* ---- temporary files ---------------------------------------------------- */

static char tmp_root[512];

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void remove_tmp_root(void)
{
  if (tmp_root[0])
    nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  tmp_root[0] = '\0';
}

/* A fresh directory for this test process, removed at exit. */
static const char *tmp_dir(void)
{
  if (!tmp_root[0]) {
    snprintf(tmp_root, sizeof tmp_root, "%s/pipeline_%ld_XXXXXX",
             NNKIT_TEST_TMPDIR, (long)getpid());
    ck_assert_ptr_nonnull(mkdtemp(tmp_root));
    atexit(remove_tmp_root);
  }
  return tmp_root;
}

/* path = tmp_dir()/name */
static void tmp_file(char *path, size_t len, const char *name)
{
  int k = snprintf(path, len, "%s/%s", tmp_dir(), name);
  ck_assert(k > 0 && (size_t)k < len);
}

static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "cannot create %s", path);
  ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
  ck_assert_int_eq(fclose(f), 0);
}

/* Writes text to a fresh temporary CSV file; path receives its name. */
static void csv_file(char *path, size_t len, const char *name, const char *text)
{
  tmp_file(path, len, name);
  write_text(path, text);
}

static void make_dir(const char *path)
{
  ck_assert_msg(mkdir(path, 0755) == 0, "mkdir %s", path);
}

/* ---- fixtures ----------------------------------------------------------- */

/* Reads line `name` of fixture file tests/fixtures/normalizers/<file>:
 * "name count v1 v2 ..." -> malloc'ed doubles (the test's own memory). */
static double *fixture(const char *file, const char *name, size_t *count)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/normalizers/%s", NNKIT_FIXTURES, file);
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "cannot open fixture %s", path);
  char key[64];
  size_t n;
  while (fscanf(f, "%63s %zu", key, &n) == 2) {
    double *v = malloc((n ? n : 1) * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++)
      ck_assert_int_eq(fscanf(f, "%lf", &v[i]), 1);
    if (strcmp(key, name) == 0) {
      fclose(f);
      *count = n;
      return v;
    }
    free(v);
  }
  fclose(f);
  ck_abort_msg("fixture %s has no '%s'", path, name);
  return NULL;
}

static float *to_float(const double *v, size_t n)
{
  float *f = malloc(n * sizeof *f);
  ck_assert_ptr_nonnull(f);
  for (size_t i = 0; i < n; i++)
    f[i] = (float)v[i];
  return f;
}

/* The fixture's training and test sets as datasets. */
static void fixture_sets(nnkit_dataset **train, nnkit_dataset **test,
                         size_t *d_out)
{
  size_t n;
  double *cfg = fixture("data.txt", "config", &n);
  size_t d = (size_t)cfg[1];
  double *xt = fixture("data.txt", "x_train", &n);
  float *ft = to_float(xt, n);
  ck_ok(nnkit_dataset_from_buffers(train, ft, NULL, n / d, &d, 1, 0));
  double *xs = fixture("data.txt", "x_test", &n);
  float *fs = to_float(xs, n);
  ck_ok(nnkit_dataset_from_buffers(test, fs, NULL, n / d, &d, 1, 0));
  *d_out = d;
  free(cfg);
  free(xt);
  free(ft);
  free(xs);
  free(fs);
}

/* Compares got (rows x cols) with want column by column up to the sign of
 * each column (PCA components are defined up to sign). */
static void assert_cols_up_to_sign(const float *got, const double *want,
                                   size_t rows, size_t cols, double tol,
                                   const char *what)
{
  for (size_t j = 0; j < cols; j++) {
    double dot = 0;
    for (size_t i = 0; i < rows; i++)
      dot += got[i * cols + j] * want[i * cols + j];
    double s = dot < 0 ? -1 : 1;
    for (size_t i = 0; i < rows; i++)
      ck_assert_msg(fabs(s * got[i * cols + j] - want[i * cols + j]) <= tol,
                    "%s[%zu][%zu]: %.7g vs %.7g", what, i, j,
                    s * got[i * cols + j], want[i * cols + j]);
  }
}

/* Sample covariance (divisor n - 1) of rows x cols floats into cov. */
static void covariance_of(const float *x, size_t rows, size_t cols,
                          double *cov)
{
  double *mean = calloc(cols, sizeof *mean);
  ck_assert_ptr_nonnull(mean);
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < cols; j++)
      mean[j] += x[i * cols + j];
  for (size_t j = 0; j < cols; j++)
    mean[j] /= (double)rows;
  for (size_t a = 0; a < cols; a++)
    for (size_t b = 0; b < cols; b++) {
      double s = 0;
      for (size_t i = 0; i < rows; i++)
        s += (x[i * cols + a] - mean[a]) * (x[i * cols + b] - mean[b]);
      cov[a * cols + b] = s / (double)(rows - 1);
    }
  free(mean);
}

static void assert_identity_cov(const float *x, size_t rows, size_t cols,
                                double tol)
{
  double *cov = malloc(cols * cols * sizeof *cov);
  ck_assert_ptr_nonnull(cov);
  covariance_of(x, rows, cols, cov);
  for (size_t a = 0; a < cols; a++)
    for (size_t b = 0; b < cols; b++)
      ck_assert_msg(fabs(cov[a * cols + b] - (a == b)) <= tol,
                    "covariance[%zu][%zu] = %.6g", a, b, cov[a * cols + b]);
  free(cov);
}

/* A labelled set whose value i of sample s is 1000 s + i, so every sample
 * can be recognised; labels given. */
static nnkit_dataset *tagged_set(const int32_t *labels, size_t n, size_t d)
{
  float *x = malloc(n * d * sizeof *x);
  ck_assert_ptr_nonnull(x);
  for (size_t s = 0; s < n; s++)
    for (size_t i = 0; i < d; i++)
      x[s * d + i] = (float)(1000 * s + i);
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, labels, n, &d, 1, 0));
  free(x);
  return ds;
}

/* ---- CSV ---------------------------------------------------------------- */

START_TEST(csv_header_string_labels_and_names)
{
  char path[512];
  csv_file(path, sizeof path, "iris.csv",
           "sepal_length,sepal_width,species\n"
           "5.1,3.5,setosa\n"
           "7.0,3.2,versicolor\n"
           "6.3,3.3,\"virginica, large\"\n"
           "4.9,3.0,setosa\n");
  nnkit_dataset *ds = SENTINEL;
  ck_ok(nnkit_dataset_load_csv(&ds, path, ',', NNKIT_CSV_HEADER_AUTO,
                               "species", 0));
  ck_assert_uint_eq(nnkit_dataset_count(ds), 4);
  ck_assert_uint_eq(nnkit_dataset_ndim(ds), 1);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 2);
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 3);
  const float want[8] = {5.1f, 3.5f, 7.0f, 3.2f, 6.3f, 3.3f, 4.9f, 3.0f};
  for (int i = 0; i < 8; i++)
    ck_assert_float_eq(nnkit_dataset_data(ds)[i], want[i]);
  /* Classes in byte order of their names. */
  ck_assert_str_eq(nnkit_dataset_class_name(ds, 0), "setosa");
  ck_assert_str_eq(nnkit_dataset_class_name(ds, 1), "versicolor");
  ck_assert_str_eq(nnkit_dataset_class_name(ds, 2), "virginica, large");
  ck_assert_ptr_null(nnkit_dataset_class_name(ds, 3));
  const int32_t want_l[4] = {0, 1, 2, 0};
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(nnkit_dataset_labels(ds)[i], want_l[i]);
  int32_t id = -1;
  ck_ok(nnkit_dataset_class_id(&id, ds, "versicolor"));
  ck_assert_int_eq(id, 1);
  ck_fails(nnkit_dataset_class_id(&id, ds, "rose"), NNKIT_E_INVALID,
           "'setosa', 'versicolor', 'virginica, large'");
  nnkit_dataset_free(ds);
  /* The same column by index, counted from the end. */
  ck_ok(nnkit_dataset_load_csv(&ds, path, 0, NNKIT_CSV_HEADER_AUTO, NULL, -1));
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 3);
  ck_assert_int_eq(nnkit_dataset_labels(ds)[2], 2);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(csv_integer_labels_by_index_without_header)
{
  char path[512];
  csv_file(path, sizeof path, "ints.csv",
           "3,0.5,1\n"
           "0,1.5,2\n"
           "3,2.5,3\n");
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_load_csv(&ds, path, ',', NNKIT_CSV_HEADER_AUTO, NULL, 0));
  ck_assert_uint_eq(nnkit_dataset_count(ds), 3);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 2);
  /* Integer labels are their own ids; names are the numbers. */
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 4);
  ck_assert_int_eq(nnkit_dataset_labels(ds)[0], 3);
  ck_assert_int_eq(nnkit_dataset_labels(ds)[1], 0);
  ck_assert_str_eq(nnkit_dataset_class_name(ds, 3), "3");
  ck_assert_str_eq(nnkit_dataset_class_name(ds, 1), "1");
  ck_assert_float_eq(nnkit_dataset_data(ds)[0], 0.5f);
  ck_assert_float_eq(nnkit_dataset_data(ds)[5], 3.0f);
  nnkit_dataset_free(ds);
  /* Header forced off: row 1 is data even with NNKIT_CSV_HEADER_NO. */
  ck_ok(nnkit_dataset_load_csv(&ds, path, ',', NNKIT_CSV_HEADER_NO, NULL, 2));
  ck_assert_uint_eq(nnkit_dataset_count(ds), 3);
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 4); /* labels 1, 2, 3 */
  nnkit_dataset_free(ds);
  /* Forced on: row 1 becomes the header. */
  ck_ok(nnkit_dataset_load_csv(&ds, path, ',', NNKIT_CSV_HEADER_YES, NULL,
                               NNKIT_CSV_NO_LABEL));
  ck_assert_uint_eq(nnkit_dataset_count(ds), 2);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 3);
  ck_assert_ptr_null(nnkit_dataset_labels(ds));
  ck_assert_ptr_null(nnkit_dataset_class_name(ds, 0));
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(csv_delimiters_spaces_blank_lines_crlf)
{
  char path[512];
  csv_file(path, sizeof path, "semi.csv",
           "a;b;c\r\n"
           " 1.25 ; -2e-1 ;+3\r\n"
           "\r\n"
           "4;5.;.5\r\n");
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_load_csv(&ds, path, ';', NNKIT_CSV_HEADER_AUTO, NULL,
                               NNKIT_CSV_NO_LABEL));
  ck_assert_uint_eq(nnkit_dataset_count(ds), 2);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 3);
  const float want[6] = {1.25f, -0.2f, 3.0f, 4.0f, 5.0f, 0.5f};
  for (int i = 0; i < 6; i++)
    ck_assert_float_eq(nnkit_dataset_data(ds)[i], want[i]);
  nnkit_dataset_free(ds);
  csv_file(path, sizeof path, "tabs.tsv",
           "\xEF\xBB\xBFx\ty\tlabel\n1\t2\tb\n3\t4\ta\n"); /* with a BOM */
  ck_ok(nnkit_dataset_load_csv(&ds, path, '\t', NNKIT_CSV_HEADER_AUTO,
                               "label", 0));
  ck_assert_uint_eq(nnkit_dataset_count(ds), 2);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 2);
  ck_assert_float_eq(nnkit_dataset_data(ds)[3], 4.0f);
  ck_assert_int_eq(nnkit_dataset_labels(ds)[0], 1); /* "b" after "a" */
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(csv_numbers_ignore_the_process_locale)
{
  char path[512];
  csv_file(path, sizeof path, "loc.csv", "1.5,2.25\n-0.125,1e3\n");
  /* A locale with a decimal comma, when one is installed. */
  const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
                         "fr_FR.utf8", "ru_RU.UTF-8", NULL};
  const char *got = NULL;
  for (int i = 0; names[i] && !got; i++)
    got = setlocale(LC_ALL, names[i]);
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_load_csv(&ds, path, ',', NNKIT_CSV_HEADER_NO, NULL,
                               NNKIT_CSV_NO_LABEL));
  ck_assert_float_eq(nnkit_dataset_data(ds)[0], 1.5f);
  ck_assert_float_eq(nnkit_dataset_data(ds)[1], 2.25f);
  ck_assert_float_eq(nnkit_dataset_data(ds)[2], -0.125f);
  ck_assert_float_eq(nnkit_dataset_data(ds)[3], 1000.0f);
  nnkit_dataset_free(ds);
  if (got) {
    /* The caller's locale is untouched afterwards. */
    ck_assert_str_eq(localeconv()->decimal_point, ",");
    setlocale(LC_ALL, "C");
  }
}
END_TEST

/* Asserts that loading text fails with status and a sentence holding both
 * needles, leaving *out NULL. */
static void csv_fails(const char *text, const char *label_name,
                      int64_t label_index, nnkit_status status,
                      const char *needle, const char *needle2)
{
  char path[512];
  csv_file(path, sizeof path, "bad.csv", text);
  nnkit_dataset *ds = SENTINEL;
  nnkit_clear_error();
  nnkit_status st = nnkit_dataset_load_csv(&ds, path, ',',
                                           NNKIT_CSV_HEADER_AUTO, label_name,
                                           label_index);
  const char *e = nnkit_last_error();
  ck_assert_msg(st == status, "'%s': got %d, expected %d (%s)", text,
                (int)st, (int)status, e);
  ck_assert_ptr_null(ds);
  ck_assert_msg(strstr(e, needle) != NULL, "'%s' lacks '%s'", e, needle);
  ck_assert_msg(strstr(e, needle2) != NULL, "'%s' lacks '%s'", e, needle2);
  ck_assert_msg(strstr(e, path) != NULL, "'%s' does not name the file", e);
}

START_TEST(csv_rejects_bad_files_naming_row_and_column)
{
  csv_fails("a,b,c\n1,2,3\n4,5\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT,
            "row 3 has 2 columns", "row 1 has 3");
  csv_fails("a,b\n1,2\n3,4,5\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT,
            "row 3 has more than the 2 columns", "ragged");
  csv_fails("price,weight,kind\n1,2,x\n3,heavy,y\n", "kind", 0,
            NNKIT_E_FORMAT, "row 3, column 2 ('weight')", "'heavy' is not a number");
  csv_fails("1,2\n3,abc\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT,
            "row 2, column 2", "'abc'");
  csv_fails("a,b\n1,\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT,
            "row 2, column 2 ('b') is empty", "missing");
  csv_fails("a,b\n1,nan\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT,
            "row 2, column 2", "'nan' is not a number");
  csv_fails("a,b\n1,1e39\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT,
            "row 2, column 2", "too large for a float");
  csv_fails("a,b\n1,0x10\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT,
            "row 2, column 2", "not a number");
  csv_fails("", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT, "empty", "no rows");
  csv_fails("\n\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT, "empty",
            "at least one data row");
  csv_fails("a,b,c\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT,
            "row 1 is a header", "no data rows");
  csv_fails("a,b,c\n1,2,3\n", "label", 0, NNKIT_E_FORMAT,
            "no column named 'label'", "'a', 'b', 'c'");
  csv_fails("1,2,3\n", NULL, 5, NNKIT_E_FORMAT, "label column index 5",
            "row 1 has 3 columns");
  csv_fails("1,2,3\n", NULL, -4, NNKIT_E_FORMAT, "label column index -4",
            "-1 to -3");
  csv_fails("y\n1\n2\n", "y", 0, NNKIT_E_FORMAT, "no feature column",
            "besides the label");
  csv_fails("a,y\n1,x\n2,\n", "y", 0, NNKIT_E_FORMAT,
            "row 3, column 2 ('y')", "label is empty");
  csv_fails("a,b\n1,\"2\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT,
            "malformed quoting", "row 2");
  csv_fails("a,b\n1,2\"x\"\n", NULL, NNKIT_CSV_NO_LABEL, NNKIT_E_FORMAT,
            "malformed quoting", "row 2");
}
END_TEST

START_TEST(csv_rejects_bad_arguments_and_paths)
{
  char path[512];
  csv_file(path, sizeof path, "ok.csv", "1,2\n");
  nnkit_dataset *ds = SENTINEL;
  ck_fails(nnkit_dataset_load_csv(NULL, path, ',', 0, NULL, 0),
           NNKIT_E_INVALID, "out is NULL");
  ck_fails(nnkit_dataset_load_csv(&ds, NULL, ',', 0, NULL, 0),
           NNKIT_E_INVALID, "path is NULL");
  ck_assert_ptr_null(ds);
  ck_fails(nnkit_dataset_load_csv(&ds, path, '"', 0, NULL, 0),
           NNKIT_E_INVALID, "delimiter 0x22");
  ck_fails(nnkit_dataset_load_csv(&ds, path, ',', (nnkit_csv_header)7, NULL, 0),
           NNKIT_E_INVALID, "header is 7");
  ck_fails(nnkit_dataset_load_csv(&ds, path, ',', NNKIT_CSV_HEADER_NO, "x", 0),
           NNKIT_E_INVALID, "needs a header row");
  char missing[512];
  tmp_file(missing, sizeof missing, "missing.csv");
  ck_fails(nnkit_dataset_load_csv(&ds, missing, ',', 0, NULL, 0), NNKIT_E_IO,
           "missing.csv: cannot open");
  ck_fails(nnkit_dataset_load_csv(&ds, tmp_dir(), ',', 0, NULL, 0), NNKIT_E_IO,
           "is a directory");
  ck_assert_ptr_null(ds);
}
END_TEST

START_TEST(csv_reads_large_files_in_chunks)
{
  /* 3000 rows of 4 features and a label: more than one read chunk, and
   * fields straddling chunk boundaries. */
  char path[512];
  tmp_file(path, sizeof path, "big.csv");
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fprintf(f, "f0,f1,f2,f3,cls\n");
  for (int r = 0; r < 3000; r++)
    fprintf(f, "%d.25,%d,%d.5,-%d,c%d\n", r, 2 * r, r % 7, r, r % 3);
  ck_assert_int_eq(fclose(f), 0);
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_load_csv(&ds, path, ',', NNKIT_CSV_HEADER_AUTO, "cls", 0));
  ck_assert_uint_eq(nnkit_dataset_count(ds), 3000);
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 3);
  for (int r = 0; r < 3000; r += 123) {
    const float *x = nnkit_dataset_data(ds) + 4 * r;
    ck_assert_float_eq(x[0], (float)r + 0.25f);
    ck_assert_float_eq(x[1], (float)(2 * r));
    ck_assert_float_eq(x[2], (float)(r % 7) + 0.5f);
    ck_assert_float_eq(x[3], (float)-r);
    ck_assert_int_eq(nnkit_dataset_labels(ds)[r], r % 3);
  }
  nnkit_dataset_free(ds);
}
END_TEST

/* ---- image folders ------------------------------------------------------ */

/* Writes a PNG of w x h pixels with comp channels, value(x, y, c) =
 * base + 10 y + 3 x + 50 c (mod 256). */
static void png_file(const char *path, int w, int h, int comp, int base)
{
  unsigned char *px = malloc((size_t)(w * h * comp));
  ck_assert_ptr_nonnull(px);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < comp; c++)
        px[(y * w + x) * comp + c] = (unsigned char)((base + 10 * y + 3 * x +
                                                      50 * c) & 255);
  ck_assert_msg(stbi_write_png(path, w, h, comp, px, w * comp) != 0,
                "cannot write %s", path);
  free(px);
}

/* root/<cls>/<file> as a path. */
static void img_path(char *buf, size_t len, const char *root, const char *cls,
                     const char *file)
{
  snprintf(buf, len, "%s/%s/%s", root, cls, file);
}

/* A tree with classes "cat" (2 RGB images) and "dog" (1), plus files that
 * must be ignored. */
static void image_tree(char *root, size_t len, const char *name)
{
  tmp_file(root, len, name);
  make_dir(root);
  char p[1024];
  snprintf(p, sizeof p, "%s/dog", root);
  make_dir(p);
  snprintf(p, sizeof p, "%s/cat", root);
  make_dir(p);
  snprintf(p, sizeof p, "%s/.hidden", root);
  make_dir(p);
  img_path(p, sizeof p, root, "cat", "b.png");
  png_file(p, 4, 3, 3, 100);
  img_path(p, sizeof p, root, "cat", "a.PNG");
  png_file(p, 4, 3, 3, 0);
  img_path(p, sizeof p, root, "dog", "z.png");
  png_file(p, 4, 3, 3, 7);
  img_path(p, sizeof p, root, "dog", "notes.txt");
  write_text(p, "not an image");
  img_path(p, sizeof p, root, "dog", ".x.png");
  write_text(p, "hidden, ignored");
  snprintf(p, sizeof p, "%s/README", root);
  write_text(p, "a file at the root is not a class");
}

START_TEST(images_load_rgb_and_gray_in_sorted_order)
{
  char root[512];
  image_tree(root, sizeof root, "tree");
  nnkit_dataset *ds = SENTINEL;
  ck_ok(nnkit_dataset_load_image_folder(&ds, root, 3, 0, 0, 0));
  ck_assert_uint_eq(nnkit_dataset_count(ds), 3);
  ck_assert_uint_eq(nnkit_dataset_ndim(ds), 3);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 3);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 1), 3);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 2), 4);
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 2);
  ck_assert_str_eq(nnkit_dataset_class_name(ds, 0), "cat");
  ck_assert_str_eq(nnkit_dataset_class_name(ds, 1), "dog");
  ck_assert_ptr_nonnull(ds->x8); /* without resizing, kept as bytes */
  ck_assert_ptr_null(ds->x);
  /* cat/a.PNG (base 0), cat/b.png (100), dog/z.png (7): byte order. */
  const int bases[3] = {0, 100, 7};
  const int32_t labels[3] = {0, 0, 1};
  for (int s = 0; s < 3; s++) {
    ck_assert_int_eq(nnkit_dataset_labels(ds)[s], labels[s]);
    const float *x = nnkit_dataset_data(ds) + s * 36;
    for (int c = 0; c < 3; c++)
      for (int y = 0; y < 3; y++)
        for (int xx = 0; xx < 4; xx++)
          ck_assert_float_eq(x[(c * 3 + y) * 4 + xx],
                             (float)((bases[s] + 10 * y + 3 * xx + 50 * c) & 255));
  }
  nnkit_dataset_free(ds);
  /* Grayscale: stb_image's luma of each pixel. */
  ck_ok(nnkit_dataset_load_image_folder(&ds, root, 1, 3, 4, 0));
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 1);
  int r = 0, g = 50, b = 100; /* pixel (0, 0) of cat/a.PNG */
  ck_assert_float_eq(nnkit_dataset_data(ds)[0],
                     (float)((r * 77 + g * 150 + 29 * b) >> 8));
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(images_resize_bilinear_or_reject_other_sizes)
{
  char root[512], p[1024];
  tmp_file(root, sizeof root, "sizes");
  make_dir(root);
  snprintf(p, sizeof p, "%s/a", root);
  make_dir(p);
  img_path(p, sizeof p, root, "a", "1.png");
  png_file(p, 2, 2, 1, 0); /* values 0 3 / 10 13 */
  img_path(p, sizeof p, root, "a", "2.png");
  png_file(p, 4, 4, 1, 0);
  nnkit_dataset *ds = SENTINEL;
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 1, 0, 0, 0),
           NNKIT_E_FORMAT, "2.png: the image is 4x4");
  ck_assert_ptr_null(ds);
  /* Upscaling 2x2 -> 4x4 with aligned pixel centres: source coordinate of
   * output i is (i + 0.5) / 2 - 0.5, clamped: 0, 0.25, 0.75, 1. */
  ck_ok(nnkit_dataset_load_image_folder(&ds, root, 1, 4, 4, 1));
  ck_assert_ptr_null(ds->x8); /* resized values are not bytes: floats */
  const double t[4] = {0, 0.25, 0.75, 1};
  const float *x = nnkit_dataset_data(ds);
  for (int y = 0; y < 4; y++)
    for (int xx = 0; xx < 4; xx++) {
      double v = 10 * t[y] + 3 * t[xx]; /* bilinear of a linear image */
      ck_assert_msg(fabs(x[y * 4 + xx] - v) < 1e-5, "(%d,%d) %g vs %g", y, xx,
                    x[y * 4 + xx], v);
    }
  /* The 4x4 image is already the size: copied unchanged. */
  for (int y = 0; y < 4; y++)
    for (int xx = 0; xx < 4; xx++)
      ck_assert_float_eq(x[16 + y * 4 + xx], (float)(10 * y + 3 * xx));
  nnkit_dataset_free(ds);
  /* Downscaling 4x4 -> 2x2: source coordinates 0.5 and 2.5. */
  ck_ok(nnkit_dataset_load_image_folder(&ds, root, 1, 2, 2, 1));
  x = nnkit_dataset_data(ds) + 4;
  ck_assert_float_eq_tol(x[0], 10 * 0.5 + 3 * 0.5, 1e-5);
  ck_assert_float_eq_tol(x[3], 10 * 2.5 + 3 * 2.5, 1e-5);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(images_reject_bad_trees_naming_paths)
{
  char root[512], p[1024];
  nnkit_dataset *ds = SENTINEL;
  tmp_file(root, sizeof root, "empty_root");
  make_dir(root);
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 1, 0, 0, 0),
           NNKIT_E_FORMAT, "holds no class folders");
  ck_assert_ptr_null(ds);
  snprintf(p, sizeof p, "%s/bird", root);
  make_dir(p);
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 1, 0, 0, 0),
           NNKIT_E_FORMAT, "class folder 'bird' holds no .png");
  img_path(p, sizeof p, root, "bird", "ok.png");
  png_file(p, 3, 3, 1, 0);
  img_path(p, sizeof p, root, "bird", "zz_broken.png");
  write_text(p, "\x89PNG but then garbage");
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 1, 0, 0, 0),
           NNKIT_E_FORMAT, "zz_broken.png: cannot decode the image");
  ck_assert_ptr_null(ds);
  ck_assert_ptr_nonnull(strstr(nnkit_last_error(), root));
  ck_assert_int_eq(unlink(p), 0);
  /* A file that cannot be opened: a dangling link. */
  img_path(p, sizeof p, root, "bird", "zz_gone.jpg");
  ck_assert_int_eq(symlink("/nonexistent/nnkit.jpg", p), 0);
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 1, 0, 0, 0), NNKIT_E_IO,
           "zz_gone.jpg: cannot open");
  ck_assert_ptr_null(ds);
  ck_assert_int_eq(unlink(p), 0);
  ck_ok(nnkit_dataset_load_image_folder(&ds, root, 1, 0, 0, 0));
  nnkit_dataset_free(ds);
  /* Arguments and a missing root. */
  char missing[512];
  tmp_file(missing, sizeof missing, "no_such_root");
  ck_fails(nnkit_dataset_load_image_folder(&ds, missing, 1, 0, 0, 0),
           NNKIT_E_IO, "no_such_root: cannot list");
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 2, 0, 0, 0),
           NNKIT_E_INVALID, "channels is 2");
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 1, 4, 0, 0),
           NNKIT_E_INVALID, "give both");
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 1, 70000, 4, 1),
           NNKIT_E_INVALID, "larger than");
  ck_fails(nnkit_dataset_load_image_folder(&ds, NULL, 1, 0, 0, 0),
           NNKIT_E_INVALID, "root is NULL");
  ck_fails(nnkit_dataset_load_image_folder(NULL, root, 1, 0, 0, 0),
           NNKIT_E_INVALID, "out is NULL");
  ck_assert_ptr_null(ds);
}
END_TEST

/* A Radiance HDR image of height 0 named x.png (stb_image decodes it to a
 * non-NULL buffer of 0 pixels): NNKIT_E_FORMAT naming the file, with
 * resizing (it used to crash in the resize) and as the first image that
 * sets the size. */
START_TEST(images_reject_empty_images)
{
  static const char hdr[] = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 0 +X 1\n";
  char root[512], p[1024];
  tmp_file(root, sizeof root, "empty_img");
  make_dir(root);
  snprintf(p, sizeof p, "%s/a", root);
  make_dir(p);
  img_path(p, sizeof p, root, "a", "1.png");
  png_file(p, 2, 2, 1, 0);
  img_path(p, sizeof p, root, "a", "x.png");
  write_text(p, hdr);
  nnkit_dataset *ds = SENTINEL;
  for (int channels = 1; channels <= 3; channels += 2) {
    ck_fails(nnkit_dataset_load_image_folder(&ds, root, (size_t)channels, 4, 4, 1),
             NNKIT_E_FORMAT, "x.png");
    ck_assert_ptr_null(ds);
    ck_fails(nnkit_dataset_load_image_folder(&ds, root, (size_t)channels, 2, 2, 0),
             NNKIT_E_FORMAT, "x.png");
    ck_assert_ptr_null(ds);
  }
  img_path(p, sizeof p, root, "a", "1.png");
  ck_assert_int_eq(unlink(p), 0); /* x.png is now the first image */
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 1, 0, 0, 1), NNKIT_E_FORMAT,
           "x.png");
  ck_assert_ptr_null(ds);
}
END_TEST

/* Writes n bytes to path. */
static void write_bytes(const char *path, const void *b, size_t n)
{
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "cannot create %s", path);
  ck_assert_uint_eq(fwrite(b, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

/* A PNG of only its signature and an IHDR chunk declaring w x h (8-bit
 * gray; stb_image reads the size without checking the CRC). */
static void png_header_file(const char *path, uint32_t w, uint32_t h)
{
  unsigned char b[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                         'I',  'H', 'D', 'R'};
  for (int i = 0; i < 4; i++) {
    b[16 + i] = (unsigned char)(w >> (24 - 8 * i));
    b[20 + i] = (unsigned char)(h >> (24 - 8 * i));
  }
  b[24] = 8; /* bit depth; colour type, compression, filter, interlace 0 */
  write_bytes(path, b, sizeof b);
}

/* Image bombs: a few bytes whose header claims a huge image, or a file of
 * another format under a .png/.jpg name, are refused before decoding
 * (a 19-byte PNM named .png used to cost a 3.6-12.7 GB allocation, an
 * 18-byte TGA named .png decoded to 17731 x 8970), naming the file and the
 * size; with and without resizing, and as the first image. */
START_TEST(images_refuse_bombs_before_decoding)
{
  static const char pnm[] = "P5 60000 60000 255\n";
  const unsigned char tga[18] = {0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                 17731 & 255, 17731 >> 8, 8970 & 255, 8970 >> 8,
                                 24, 0};
  char root[512], p[1024];
  tmp_file(root, sizeof root, "bombs");
  make_dir(root);
  snprintf(p, sizeof p, "%s/a", root);
  make_dir(p);
  char good[1024];
  img_path(good, sizeof good, root, "a", "1.png");
  png_file(good, 2, 2, 1, 0);
  img_path(p, sizeof p, root, "a", "2.png");
  struct {
    const char *file, *needle;
  } cases[] = {
      {"pnm", "not a PNG image"},      {"tga", "not a PNG image"},
      {"budget", "10000x10000"},       {"side", "1x70000 is larger than 65536"},
      {"png_as_jpg", "not a JPEG image"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const char *name = k == 4 ? "2.jpg" : "2.png";
    img_path(p, sizeof p, root, "a", name);
    if (k == 0)
      write_text(p, pnm);
    else if (k == 1)
      write_bytes(p, tga, sizeof tga);
    else if (k == 2)
      png_header_file(p, 10000, 10000);
    else if (k == 3)
      png_header_file(p, 70000, 1);
    else
      png_file(p, 2, 2, 1, 0);
    for (int pass = 0; pass < 3; pass++) {
      nnkit_dataset *ds = SENTINEL;
      if (pass == 2)
        ck_assert_int_eq(unlink(good), 0);
      /* pass 0: resize to 4x4; 1: no resize, the size of 1.png; 2: the
       * bomb is the only and so the first image */
      ck_fails(nnkit_dataset_load_image_folder(&ds, root, 1, pass == 0 ? 4 : pass == 1 ? 2 : 0,
                                               pass == 0 ? 4 : pass == 1 ? 2 : 0,
                                               pass == 0),
               NNKIT_E_FORMAT, cases[k].needle);
      ck_assert_ptr_null(ds);
      ck_assert_msg(strstr(nnkit_last_error(), name) != NULL, "'%s' lacks %s",
                    nnkit_last_error(), name);
    }
    if (k == 2)
      ck_assert_ptr_nonnull(strstr(nnkit_last_error(), "NNKIT_MAX_IMAGE_PIXELS"));
    ck_assert_int_eq(unlink(p), 0);
    png_file(good, 2, 2, 1, 0);
  }
  /* Within the budget, at the side limit: 8192 x 8192 declared is accepted
   * by the checks (it then fails decoding: the header has no pixels). */
  img_path(p, sizeof p, root, "a", "2.png");
  png_header_file(p, 8192, 8192);
  nnkit_dataset *ds = SENTINEL;
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 1, 4, 4, 1), NNKIT_E_FORMAT,
           "2.png: cannot decode the image");
  ck_assert_int_eq(unlink(p), 0);
  ck_ok(nnkit_dataset_load_image_folder(&ds, root, 1, 0, 0, 0));
  nnkit_dataset_free(ds);
}
END_TEST

/* JPEG is decoded by libjpeg-turbo (stb_image 2.27's JPEG decoder writes
 * past its Huffman tables: #21 item 9): a written JPEG round-trips within
 * the codec's loss, RGB to gray is stb_image's luma as for PNG, and the
 * regression input (a DHT of 4080 codes, tests/corpus/image) and a
 * truncated file are NNKIT_E_FORMAT naming the file; a PNG with an empty
 * IDAT chunk decodes as without it; image files open through
 * nnkit__open_regular (a FIFO is NNKIT_E_IO at once). */
START_TEST(images_decode_jpeg_with_libjpeg)
{
  enum { W = 16, H = 8 };
  unsigned char px[H * W * 3];
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      for (int c = 0; c < 3; c++)
        px[(y * W + x) * 3 + c] = (unsigned char)(40 + 8 * x + 4 * y + 30 * c);
  char root[512], p[1024];
  tmp_file(root, sizeof root, "jpeg");
  make_dir(root);
  snprintf(p, sizeof p, "%s/a", root);
  make_dir(p);
  img_path(p, sizeof p, root, "a", "1.jpg");
  ck_assert_int_ne(stbi_write_jpg(p, W, H, 3, px, 100), 0);
  nnkit_dataset *ds = SENTINEL;
  ck_ok(nnkit_dataset_load_image_folder(&ds, root, 3, 0, 0, 0));
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 1), H);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 2), W);
  double worst = 0;
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < H * W; i++)
      worst = fmax(worst, fabs(nnkit_dataset_data(ds)[c * H * W + i] - px[i * 3 + c]));
  ck_assert_msg(worst <= 8, "JPEG at quality 100 is off by %g", worst);
  nnkit_dataset_free(ds);
  ck_ok(nnkit_dataset_load_image_folder(&ds, root, 1, 0, 0, 0));
  for (int i = 0; i < H * W; i++) {
    int luma = (px[3 * i] * 77 + px[3 * i + 1] * 150 + px[3 * i + 2] * 29) >> 8;
    ck_assert_msg(fabs(nnkit_dataset_data(ds)[i] - luma) <= 8, "pixel %d: %g vs %d", i,
                  nnkit_dataset_data(ds)[i], luma);
  }
  nnkit_dataset_free(ds);
  /* Truncated: libjpeg would paint the rest gray and warn. */
  FILE *f = fopen(p, "rb");
  ck_assert_ptr_nonnull(f);
  unsigned char buf[4096];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  ck_assert_uint_gt(n, 400);
  img_path(p, sizeof p, root, "a", "2.jpg");
  write_bytes(p, buf, n - 200);
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 3, 0, 0, 0), NNKIT_E_FORMAT,
           "2.jpg: cannot decode the JPEG image");
  ck_assert_ptr_null(ds);
  /* stb_image's Huffman overflow. */
  f = fopen(NNKIT_CORPUS "/image/stb-huffman-overflow", "rb");
  ck_assert_ptr_nonnull(f);
  n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  write_bytes(p, buf + 1, n - 1); /* byte 0 is the fuzz harness's options */
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 3, 0, 0, 0), NNKIT_E_FORMAT,
           "2.jpg: cannot decode the JPEG image");
  ck_assert_ptr_null(ds);
  ck_assert_int_eq(unlink(p), 0);
  /* A PNG with an empty IDAT chunk before its data (stb_image 2.27 does
   * NULL + 0 on it; nnkit drops empty IDATs first) decodes as without. */
  img_path(p, sizeof p, root, "a", "1.jpg");
  ck_assert_int_eq(unlink(p), 0);
  img_path(p, sizeof p, root, "a", "1.png");
  png_file(p, W, H, 1, 5);
  f = fopen(p, "rb");
  ck_assert_ptr_nonnull(f);
  n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  nnkit_dataset *want = NULL;
  ck_ok(nnkit_dataset_load_image_folder(&want, root, 1, 0, 0, 0));
  static const unsigned char empty_idat[12] = {0, 0, 0, 0, 'I', 'D', 'A', 'T',
                                               0x35, 0xaf, 0x06, 0x1e};
  ck_assert_uint_lt(n + 12, sizeof buf);
  memmove(buf + 33 + 12, buf + 33, n - 33); /* after the signature and IHDR */
  memcpy(buf + 33, empty_idat, 12);
  write_bytes(p, buf, n + 12);
  ck_ok(nnkit_dataset_load_image_folder(&ds, root, 1, 0, 0, 0));
  ck_assert_mem_eq(nnkit_dataset_data(ds), nnkit_dataset_data(want), H * W * sizeof(float));
  nnkit_dataset_free(ds);
  nnkit_dataset_free(want);
  /* A FIFO named like an image is refused at once, not waited on. */
  img_path(p, sizeof p, root, "a", "3.png");
  ck_assert_int_eq(mkfifo(p, 0600), 0);
  ck_fails(nnkit_dataset_load_image_folder(&ds, root, 3, 0, 0, 0), NNKIT_E_IO,
           "3.png: is a FIFO");
  ck_assert_ptr_null(ds);
  ck_assert_int_eq(unlink(p), 0);
}
END_TEST

/* ---- concatenation and class names -------------------------------------- */

START_TEST(concat_joins_parts_and_keeps_names)
{
  const int32_t la[2] = {0, 1}, lb[3] = {2, 0, 2};
  nnkit_dataset *a = tagged_set(la, 2, 3), *b = tagged_set(lb, 3, 3);
  const char *names[3] = {"ant", "bee", "cow"};
  ck_ok(nnkit_dataset_set_class_names(b, names, 3));
  const nnkit_dataset *parts[3] = {a, b, a};
  nnkit_dataset *c = SENTINEL;
  ck_ok(nnkit_dataset_concat(&c, parts, 3));
  ck_assert_uint_eq(nnkit_dataset_count(c), 7);
  ck_assert_uint_eq(nnkit_dataset_num_classes(c), 3);
  ck_assert_str_eq(nnkit_dataset_class_name(c, 2), "cow");
  const int32_t want[7] = {0, 1, 2, 0, 2, 0, 1};
  for (int i = 0; i < 7; i++)
    ck_assert_int_eq(nnkit_dataset_labels(c)[i], want[i]);
  ck_assert_float_eq(nnkit_dataset_data(c)[2 * 3 + 1], 1.0f);     /* b[0] */
  ck_assert_float_eq(nnkit_dataset_data(c)[6 * 3 + 2], 1002.0f);  /* a[1] */
  nnkit_dataset_free(c);
  /* Regression parts carry their targets. */
  float x[4] = {1, 2, 3, 4}, t[2] = {10, 20};
  size_t one = 1;
  nnkit_dataset *r1 = NULL, *r2 = NULL;
  ck_ok(nnkit_dataset_from_targets(&r1, x, t, 2, (size_t[]){2}, 1, 1));
  ck_ok(nnkit_dataset_from_targets(&r2, x, t, 2, (size_t[]){2}, 1, 1));
  const nnkit_dataset *rp[2] = {r1, r2};
  ck_ok(nnkit_dataset_concat(&c, rp, 2));
  ck_assert_uint_eq(nnkit_dataset_count(c), 4);
  ck_assert_float_eq(nnkit_dataset_targets(c)[3], 20.0f);
  ck_assert_uint_eq(nnkit_dataset_target_dim(c), one);
  nnkit_dataset_free(c);
  nnkit_dataset_free(r1);
  nnkit_dataset_free(r2);
  nnkit_dataset_free(a);
  nnkit_dataset_free(b);
}
END_TEST

START_TEST(concat_rejects_mismatched_parts)
{
  const int32_t la[2] = {0, 1};
  nnkit_dataset *a = tagged_set(la, 2, 3), *b = tagged_set(la, 2, 4);
  nnkit_dataset *u = NULL, *c = SENTINEL;
  float x[3] = {0, 0, 0};
  ck_ok(nnkit_dataset_from_buffers(&u, x, NULL, 1, (size_t[]){3}, 1, 0));
  const nnkit_dataset *p1[2] = {a, b};
  ck_fails(nnkit_dataset_concat(&c, p1, 2), NNKIT_E_INVALID,
           "parts[1] has samples of shape 4 but parts[0] has 3");
  ck_assert_ptr_null(c);
  const nnkit_dataset *p2[2] = {a, u};
  ck_fails(nnkit_dataset_concat(&c, p2, 2), NNKIT_E_INVALID,
           "parts[1] is unlabelled but parts[0] is labelled");
  nnkit_dataset *a2 = tagged_set(la, 2, 3);
  const char *n1[2] = {"x", "y"}, *n2[2] = {"y", "x"};
  ck_ok(nnkit_dataset_set_class_names(a, n1, 2));
  ck_ok(nnkit_dataset_set_class_names(a2, n2, 2));
  const nnkit_dataset *p3[2] = {a, a2};
  ck_fails(nnkit_dataset_concat(&c, p3, 2), NNKIT_E_INVALID,
           "class 0 is 'x' in one part but 'y' in parts[1]");
  const nnkit_dataset *p4[2] = {a, NULL};
  ck_fails(nnkit_dataset_concat(&c, p4, 2), NNKIT_E_INVALID, "parts[1] is NULL");
  ck_fails(nnkit_dataset_concat(&c, p4, 0), NNKIT_E_INVALID, "num_parts is 0");
  ck_fails(nnkit_dataset_concat(&c, NULL, 1), NNKIT_E_INVALID, "parts is NULL");
  ck_fails(nnkit_dataset_concat(NULL, p4, 1), NNKIT_E_INVALID, "out is NULL");
  ck_assert_ptr_null(c);
  nnkit_dataset_free(a);
  nnkit_dataset_free(a2);
  nnkit_dataset_free(b);
  nnkit_dataset_free(u);
}
END_TEST

START_TEST(class_names_set_get_and_survive_subsets)
{
  const int32_t la[4] = {0, 1, 2, 1};
  nnkit_dataset *a = tagged_set(la, 4, 2);
  ck_assert_ptr_null(nnkit_dataset_class_name(a, 0));
  int32_t id;
  ck_fails(nnkit_dataset_class_id(&id, a, "x"), NNKIT_E_INVALID,
           "no class names");
  const char *names[3] = {"zero", "one", "two"};
  ck_fails(nnkit_dataset_set_class_names(a, names, 2), NNKIT_E_INVALID,
           "2 names for 3 classes");
  const char *dup[3] = {"a", "b", "a"};
  ck_fails(nnkit_dataset_set_class_names(a, dup, 3), NNKIT_E_INVALID,
           "names[0] and names[2] are both 'a'");
  const char *nul[3] = {"a", NULL, "c"};
  ck_fails(nnkit_dataset_set_class_names(a, nul, 3), NNKIT_E_INVALID,
           "names[1] is NULL");
  ck_ok(nnkit_dataset_set_class_names(a, names, 3));
  ck_ok(nnkit_dataset_set_class_names(a, names, 3)); /* replaces */
  ck_assert_str_eq(nnkit_dataset_class_name(a, 1), "one");
  ck_ok(nnkit_dataset_class_id(&id, a, "two"));
  ck_assert_int_eq(id, 2);
  ck_fails(nnkit_dataset_class_id(NULL, a, "two"), NNKIT_E_INVALID, "NULL");
  nnkit_dataset *sub = NULL;
  size_t idx[1] = {3};
  ck_ok(nnkit_dataset_subset(&sub, a, idx, 1));
  ck_assert_str_eq(nnkit_dataset_class_name(sub, 2), "two");
  nnkit_dataset_free(sub);
  float x[2] = {1, 2};
  nnkit_dataset *u = NULL;
  ck_ok(nnkit_dataset_from_buffers(&u, x, NULL, 1, (size_t[]){2}, 1, 0));
  ck_fails(nnkit_dataset_set_class_names(u, names, 0), NNKIT_E_INVALID,
           "no labels");
  ck_assert_ptr_null(nnkit_dataset_class_name(NULL, 0));
  nnkit_dataset_free(u);
  nnkit_dataset_free(a);
}
END_TEST

/* ---- splits ------------------------------------------------------------- */

/* Labels with class c repeated sizes[c] times (interleaved). */
static nnkit_dataset *classes_set(const size_t *sizes, size_t k, size_t *n_out)
{
  size_t n = 0;
  for (size_t c = 0; c < k; c++)
    n += sizes[c];
  int32_t *l = malloc(n * sizeof *l);
  ck_assert_ptr_nonnull(l);
  size_t left[16];
  memcpy(left, sizes, k * sizeof *sizes);
  for (size_t i = 0, c = 0; i < n; c = (c + 1) % k)
    if (left[c]) {
      l[i++] = (int32_t)c;
      left[c]--;
    }
  nnkit_dataset *ds = tagged_set(l, n, 1);
  free(l);
  *n_out = n;
  return ds;
}

START_TEST(holdout_is_stratified_and_deterministic)
{
  const size_t sizes[3] = {50, 30, 20};
  size_t n;
  nnkit_dataset *ds = classes_set(sizes, 3, &n);
  uint32_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  ck_ok(nnkit_split_holdout(a, n, ds, 0.2, 7));
  size_t held[3] = {0, 0, 0};
  for (size_t i = 0; i < n; i++) {
    ck_assert_uint_le(a[i], 1);
    held[nnkit_dataset_labels(ds)[i]] += a[i];
  }
  ck_assert_uint_eq(held[0], 10);
  ck_assert_uint_eq(held[1], 6);
  ck_assert_uint_eq(held[2], 4);
  ck_ok(nnkit_split_holdout(b, n, ds, 0.2, 7));
  ck_assert_int_eq(memcmp(a, b, n * sizeof *a), 0);
  ck_ok(nnkit_split_holdout(b, n, ds, 0.2, 8));
  ck_assert_int_ne(memcmp(a, b, n * sizeof *a), 0);
  /* Uneven classes: largest remainders, exact total round(0.3 * 23) = 7. */
  const size_t odd[3] = {11, 7, 5};
  nnkit_dataset *o = classes_set(odd, 3, &n);
  ck_ok(nnkit_split_holdout(a, n, o, 0.3, 1));
  size_t h[3] = {0, 0, 0}, total = 0;
  for (size_t i = 0; i < n; i++) {
    h[nnkit_dataset_labels(o)[i]] += a[i];
    total += a[i];
  }
  ck_assert_uint_eq(total, 7);
  for (int c = 0; c < 3; c++) {
    double exact = 7.0 * (double)odd[c] / 23.0;
    ck_assert(h[c] == (size_t)floor(exact) || h[c] == (size_t)ceil(exact));
  }
  /* As datasets: disjoint and covering (every tag appears once). */
  nnkit_dataset *tr = NULL, *te = NULL;
  ck_ok(nnkit_dataset_split(&tr, &te, ds, 0.2, 7));
  ck_assert_uint_eq(nnkit_dataset_count(tr), 80);
  ck_assert_uint_eq(nnkit_dataset_count(te), 20);
  int seen[100] = {0};
  for (size_t i = 0; i < 80; i++)
    seen[(int)nnkit_dataset_data(tr)[i] / 1000]++;
  for (size_t i = 0; i < 20; i++) {
    int s = (int)nnkit_dataset_data(te)[i] / 1000;
    seen[s]++;
  }
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(seen[i], 1);
  ck_ok(nnkit_split_holdout(a, 100, ds, 0.2, 7));
  for (size_t i = 0; i < 20; i++)
    ck_assert_uint_eq(a[(size_t)nnkit_dataset_data(te)[i] / 1000], 1);
  nnkit_dataset_free(tr);
  nnkit_dataset_free(te);
  free(a);
  free(b);
  nnkit_dataset_free(ds);
  nnkit_dataset_free(o);
}
END_TEST

START_TEST(kfold_folds_are_disjoint_covering_and_stratified)
{
  const size_t sizes[4] = {23, 17, 10, 5};
  size_t n;
  nnkit_dataset *ds = classes_set(sizes, 4, &n);
  const size_t k = 5;
  uint32_t *f = malloc(n * sizeof *f), *g = malloc(n * sizeof *g);
  ck_ok(nnkit_split_kfold(f, n, ds, k, 3));
  size_t per[5][4] = {{0}}, fold_size[5] = {0};
  for (size_t i = 0; i < n; i++) {
    ck_assert_uint_lt(f[i], k); /* every sample in exactly one fold */
    per[f[i]][nnkit_dataset_labels(ds)[i]]++;
    fold_size[f[i]]++;
  }
  size_t lo = SIZE_MAX, hi = 0;
  for (size_t j = 0; j < k; j++) {
    lo = fold_size[j] < lo ? fold_size[j] : lo;
    hi = fold_size[j] > hi ? fold_size[j] : hi;
    for (int c = 0; c < 4; c++) {
      ck_assert(per[j][c] == sizes[c] / k ||
                per[j][c] == (sizes[c] + k - 1) / k);
      ck_assert_uint_ge(per[j][c], 1);
    }
  }
  ck_assert_uint_le(hi - lo, 1);
  ck_ok(nnkit_split_kfold(g, n, ds, k, 3));
  ck_assert_int_eq(memcmp(f, g, n * sizeof *f), 0);
  /* Fold datasets: val = the fold, train = the rest; they partition the set
   * and across folds each sample validates exactly once. */
  int val_count[64] = {0};
  for (size_t j = 0; j < k; j++) {
    nnkit_dataset *tr = NULL, *va = NULL;
    ck_ok(nnkit_dataset_fold(&tr, &va, ds, k, j, 3));
    ck_assert_uint_eq(nnkit_dataset_count(tr) + nnkit_dataset_count(va), n);
    ck_assert_uint_eq(nnkit_dataset_count(va), fold_size[j]);
    int in_tr[64] = {0};
    for (size_t i = 0; i < nnkit_dataset_count(tr); i++)
      in_tr[(int)nnkit_dataset_data(tr)[i] / 1000] = 1;
    for (size_t i = 0; i < nnkit_dataset_count(va); i++) {
      int s = (int)nnkit_dataset_data(va)[i] / 1000;
      ck_assert_int_eq(in_tr[s], 0);
      ck_assert_uint_eq(f[s], j);
      val_count[s]++;
    }
    ck_assert_uint_eq(nnkit_dataset_num_classes(va), 4);
    nnkit_dataset_free(tr);
    nnkit_dataset_free(va);
  }
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(val_count[i], 1);
  /* Unlabelled sets: plain k-fold. */
  float x[7] = {0, 1, 2, 3, 4, 5, 6};
  nnkit_dataset *u = NULL;
  ck_ok(nnkit_dataset_from_buffers(&u, x, NULL, 7, (size_t[]){1}, 1, 0));
  ck_ok(nnkit_split_kfold(f, 7, u, 3, 0));
  size_t cnt[3] = {0};
  for (int i = 0; i < 7; i++)
    cnt[f[i]]++;
  ck_assert(cnt[0] + cnt[1] + cnt[2] == 7 && cnt[0] >= 2 && cnt[1] >= 2 &&
            cnt[2] >= 2);
  nnkit_dataset_free(u);
  free(f);
  free(g);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(splits_reject_bad_requests)
{
  const size_t sizes[3] = {9, 4, 6};
  size_t n;
  nnkit_dataset *ds = classes_set(sizes, 3, &n);
  const char *names[3] = {"common", "rare", "mid"};
  ck_ok(nnkit_dataset_set_class_names(ds, names, 3));
  uint32_t f[19];
  ck_fails(nnkit_split_kfold(f, n, ds, 5, 0), NNKIT_E_INVALID,
           "k = 5 folds but class 1 ('rare') has only 4 samples");
  ck_assert_ptr_nonnull(strstr(nnkit_last_error(), "use k <= 4"));
  ck_ok(nnkit_split_kfold(f, n, ds, 4, 0));
  ck_fails(nnkit_split_kfold(f, n, ds, 1, 0), NNKIT_E_INVALID, "k = 1");
  ck_fails(nnkit_split_kfold(f, n - 1, ds, 2, 0), NNKIT_E_INVALID,
           "holds 18 values but the set has 19");
  ck_fails(nnkit_split_kfold(NULL, n, ds, 2, 0), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_split_holdout(f, n, ds, 0, 0), NNKIT_E_INVALID,
           "fraction 0 must lie in (0, 1)");
  ck_fails(nnkit_split_holdout(f, n, ds, 1.5, 0), NNKIT_E_INVALID, "(0, 1)");
  ck_fails(nnkit_split_holdout(f, n, ds, 0.01, 0), NNKIT_E_INVALID,
           "held-out part empty");
  ck_fails(nnkit_split_holdout(f, n, ds, 0.99, 0), NNKIT_E_INVALID,
           "training part empty");
  nnkit_dataset *a = SENTINEL, *b = SENTINEL;
  ck_fails(nnkit_dataset_fold(&a, &b, ds, 4, 4, 0), NNKIT_E_INVALID,
           "fold 4 does not exist");
  ck_assert_ptr_null(a);
  ck_assert_ptr_null(b);
  ck_fails(nnkit_dataset_fold(&a, &b, ds, 5, 0, 0), NNKIT_E_INVALID, "'rare'");
  ck_fails(nnkit_dataset_split(&a, &b, ds, 2.0, 0), NNKIT_E_INVALID, "(0, 1)");
  ck_assert_ptr_null(a);
  ck_assert_ptr_null(b);
  ck_fails(nnkit_dataset_split(NULL, &b, ds, 0.5, 0), NNKIT_E_INVALID,
           "train_out is NULL");
  ck_fails(nnkit_dataset_fold(&a, NULL, ds, 2, 0, 0), NNKIT_E_INVALID,
           "val_out is NULL");
  /* Unlabelled: k above the sample count. */
  float x[3] = {1, 2, 3};
  nnkit_dataset *u = NULL;
  ck_ok(nnkit_dataset_from_buffers(&u, x, NULL, 3, (size_t[]){1}, 1, 0));
  ck_fails(nnkit_split_kfold(f, 3, u, 4, 0), NNKIT_E_INVALID,
           "only 3 samples");
  nnkit_dataset_free(u);
  nnkit_dataset_free(ds);
}
END_TEST

/* ---- normalizers -------------------------------------------------------- */

START_TEST(standardize_matches_scikit_learn)
{
  nnkit_dataset *train = NULL, *test = NULL;
  size_t d, n;
  fixture_sets(&train, &test, &d);
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_STANDARDIZE));
  ck_assert_int_eq(nnkit_normalizer_kind(nz), NNKIT_NORM_STANDARDIZE);
  ck_assert_int_eq(nnkit_normalizer_is_fitted(nz), 0);
  ck_ok(nnkit_normalizer_fit(nz, train));
  ck_assert_int_eq(nnkit_normalizer_is_fitted(nz), 1);
  ck_assert_uint_eq(nnkit_normalizer_in_size(nz), d);
  ck_assert_uint_eq(nnkit_normalizer_out_size(nz), d);
  ck_assert_uint_eq(nnkit_normalizer_fit_count(nz), nnkit_dataset_count(train));
  double *mean = fixture("standard.txt", "mean", &n);
  double *scale = fixture("standard.txt", "scale", &n);
  float got[16];
  ck_assert_uint_eq(nnkit_normalizer_array_len(nz, NNKIT_NORM_ARRAY_MEAN), d);
  ck_ok(nnkit_normalizer_get_array(got, 16, nz, NNKIT_NORM_ARRAY_MEAN));
  for (size_t j = 0; j < d; j++)
    ck_assert_double_eq_tol(got[j], mean[j], 1e-4);
  /* SCALE is the multiplier 1 / std; scikit-learn's scale_ is the std. */
  ck_ok(nnkit_normalizer_get_array(got, 16, nz, NNKIT_NORM_ARRAY_SCALE));
  for (size_t j = 0; j < d; j++)
    ck_assert_double_eq_tol(1.0 / got[j], scale[j], 1e-4);
  double *yt = fixture("standard.txt", "y_test", &n);
  ck_ok(nnkit_normalizer_apply(nz, test));
  for (size_t i = 0; i < n; i++)
    ck_assert_double_eq_tol(nnkit_dataset_data(test)[i], yt[i], 1e-4);
  /* Raw buffers, in place and out of place. */
  double *ytr = fixture("standard.txt", "y_train", &n);
  size_t m = nnkit_dataset_count(train);
  float *buf = malloc(m * d * sizeof *buf);
  ck_ok(nnkit_normalizer_transform(nz, nnkit_dataset_data(train), buf, m));
  for (size_t i = 0; i < n; i++)
    ck_assert_double_eq_tol(buf[i], ytr[i], 1e-4);
  memcpy(buf, nnkit_dataset_data(train), m * d * sizeof *buf);
  ck_ok(nnkit_normalizer_transform(nz, buf, buf, m));
  for (size_t i = 0; i < n; i++)
    ck_assert_double_eq_tol(buf[i], ytr[i], 1e-4);
  /* Without the division: only centred, = the mean image. */
  nnkit_normalizer *c = NULL, *mi = NULL;
  ck_ok(nnkit_normalizer_create(&c, NNKIT_NORM_STANDARDIZE));
  ck_ok(nnkit_normalizer_set(c, NNKIT_NORM_WITH_STD, 0));
  ck_ok(nnkit_normalizer_fit(c, train));
  ck_assert_uint_eq(nnkit_normalizer_array_len(c, NNKIT_NORM_ARRAY_SCALE), 0);
  ck_ok(nnkit_normalizer_create(&mi, NNKIT_NORM_MEAN_IMAGE));
  ck_ok(nnkit_normalizer_fit(mi, train));
  float *b2 = malloc(m * d * sizeof *b2);
  ck_ok(nnkit_normalizer_transform(c, nnkit_dataset_data(train), buf, m));
  ck_ok(nnkit_normalizer_transform(mi, nnkit_dataset_data(train), b2, m));
  for (size_t i = 0; i < m * d; i++) {
    ck_assert_float_eq(buf[i], b2[i]);
    ck_assert_double_eq_tol(buf[i], nnkit_dataset_data(train)[i] - mean[i % d],
                            1e-4);
  }
  free(b2);
  free(buf);
  free(mean);
  free(scale);
  free(yt);
  free(ytr);
  nnkit_normalizer_free(c);
  nnkit_normalizer_free(mi);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(train);
  nnkit_dataset_free(test);
}
END_TEST

START_TEST(pca_matches_scikit_learn_up_to_sign)
{
  nnkit_dataset *train = NULL, *test = NULL;
  size_t d, n;
  fixture_sets(&train, &test, &d);
  double *cfg = fixture("pca.txt", "config", &n);
  size_t k = (size_t)cfg[0];
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_PCA));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, (double)k));
  ck_ok(nnkit_normalizer_fit(nz, train));
  ck_assert_uint_eq(nnkit_normalizer_out_size(nz), k);
  /* Components: scikit-learn's rows are our projection's columns. */
  double *comp = fixture("pca.txt", "components", &n);
  float proj[64];
  ck_assert_uint_eq(nnkit_normalizer_array_len(nz, NNKIT_NORM_ARRAY_PROJECTION),
                    d * k);
  ck_ok(nnkit_normalizer_get_array(proj, 64, nz, NNKIT_NORM_ARRAY_PROJECTION));
  double *ct = malloc(d * k * sizeof *ct);
  for (size_t i = 0; i < d; i++)
    for (size_t j = 0; j < k; j++)
      ct[i * k + j] = comp[j * d + i];
  assert_cols_up_to_sign(proj, ct, d, k, 1e-4, "component");
  double *var = fixture("pca.txt", "variance", &n);
  float v[8];
  ck_assert_uint_eq(nnkit_normalizer_array_len(nz, NNKIT_NORM_ARRAY_VARIANCES), k);
  ck_ok(nnkit_normalizer_get_array(v, 8, nz, NNKIT_NORM_ARRAY_VARIANCES));
  for (size_t j = 0; j < k; j++)
    ck_assert_double_eq_tol(v[j], var[j], 1e-4 * var[j]);
  /* Applied in place: samples become [k]. */
  double *yt = fixture("pca.txt", "y_test", &n);
  size_t m = nnkit_dataset_count(test);
  ck_ok(nnkit_normalizer_apply(nz, test));
  ck_assert_uint_eq(nnkit_dataset_ndim(test), 1);
  ck_assert_uint_eq(nnkit_dataset_dim(test, 0), k);
  ck_assert_uint_eq(nnkit_dataset_sample_size(test), k);
  assert_cols_up_to_sign(nnkit_dataset_data(test), yt, m, k, 1e-4, "y_test");
  /* Applying again: the shape no longer matches. */
  ck_fails(nnkit_normalizer_apply(nz, test), NNKIT_E_SHAPE,
           "samples are 3 but the normalizer was fitted on 6 samples");
  free(cfg);
  free(comp);
  free(ct);
  free(var);
  free(yt);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(train);
  nnkit_dataset_free(test);
}
END_TEST

START_TEST(pca_whitening_matches_scikit_learn)
{
  nnkit_dataset *train = NULL, *test = NULL;
  size_t d, n;
  fixture_sets(&train, &test, &d);
  double *cfg = fixture("pca_whiten.txt", "config", &n);
  size_t k = (size_t)cfg[0];
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_PCA_WHITEN));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, (double)k));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_EPSILON, 0));
  ck_ok(nnkit_normalizer_fit(nz, train));
  size_t m = nnkit_dataset_count(train), mt = nnkit_dataset_count(test);
  double *ytr = fixture("pca_whiten.txt", "y_train", &n);
  double *yte = fixture("pca_whiten.txt", "y_test", &n);
  float *y = malloc(m * k * sizeof *y);
  ck_ok(nnkit_normalizer_transform(nz, nnkit_dataset_data(train), y, m));
  assert_cols_up_to_sign(y, ytr, m, k, 1e-4, "y_train");
  /* Whitened training data: identity covariance. */
  assert_identity_cov(y, m, k, 1e-3);
  ck_ok(nnkit_normalizer_transform(nz, nnkit_dataset_data(test), y, mt));
  assert_cols_up_to_sign(y, yte, mt, k, 1e-4, "y_test");
  /* A variance fraction chooses k as scikit-learn does. */
  double *fc = fixture("pca_fraction.txt", "config", &n);
  double *yf = fixture("pca_fraction.txt", "y_test", &n);
  nnkit_normalizer *pf = NULL;
  ck_ok(nnkit_normalizer_create(&pf, NNKIT_NORM_PCA));
  ck_ok(nnkit_normalizer_set(pf, NNKIT_NORM_VARIANCE, fc[0]));
  ck_ok(nnkit_normalizer_fit(pf, train));
  ck_assert_uint_eq(nnkit_normalizer_out_size(pf), (size_t)fc[1]);
  ck_ok(nnkit_normalizer_transform(pf, nnkit_dataset_data(test), y, mt));
  assert_cols_up_to_sign(y, yf, mt, (size_t)fc[1], 1e-4, "y_fraction");
  /* All components (variance 1): out_size = d. */
  ck_ok(nnkit_normalizer_set(pf, NNKIT_NORM_VARIANCE, 1));
  ck_ok(nnkit_normalizer_fit(pf, train));
  ck_assert_uint_eq(nnkit_normalizer_out_size(pf), d);
  free(fc);
  free(yf);
  free(cfg);
  free(ytr);
  free(yte);
  free(y);
  nnkit_normalizer_free(pf);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(train);
  nnkit_dataset_free(test);
}
END_TEST

START_TEST(zca_equals_its_formula)
{
  nnkit_dataset *train = NULL, *test = NULL;
  size_t d;
  fixture_sets(&train, &test, &d);
  size_t m = nnkit_dataset_count(train);
  const double eps = 0.1;
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_ZCA_WHITEN));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_EPSILON, eps));
  ck_ok(nnkit_normalizer_fit(nz, train));
  ck_assert_uint_eq(nnkit_normalizer_out_size(nz), d);
  /* W = U diag(1 / sqrt(lambda + eps)) U^T, computed here with LAPACK's
   * dsyev (not the dsyevd the library uses) from our own covariance. */
  double *cov = malloc(d * d * sizeof *cov), w[16];
  covariance_of(nnkit_dataset_data(train), m, d, cov);
  ck_assert_int_eq(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)d,
                                 cov, (lapack_int)d, w), 0);
  float proj[64];
  ck_ok(nnkit_normalizer_get_array(proj, 64, nz, NNKIT_NORM_ARRAY_PROJECTION));
  for (size_t a = 0; a < d; a++)
    for (size_t b = 0; b < d; b++) {
      double s = 0;
      for (size_t j = 0; j < d; j++)
        s += cov[a * d + j] * cov[b * d + j] / sqrt(w[j] + eps);
      ck_assert_msg(fabs(proj[a * d + b] - s) <= 1e-4, "W[%zu][%zu] %g vs %g",
                    a, b, proj[a * d + b], s);
    }
  float mean[16];
  ck_ok(nnkit_normalizer_get_array(mean, 16, nz, NNKIT_NORM_ARRAY_MEAN));
  /* Output keeps the shape; with eps = 0 the covariance is the identity. */
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_EPSILON, 0));
  ck_ok(nnkit_normalizer_fit(nz, train));
  nnkit_dataset *copy = NULL;
  size_t all[200];
  for (size_t i = 0; i < m; i++)
    all[i] = i;
  ck_ok(nnkit_dataset_subset(&copy, train, all, m));
  ck_ok(nnkit_normalizer_apply(nz, copy));
  ck_assert_uint_eq(nnkit_dataset_sample_size(copy), d);
  assert_identity_cov(nnkit_dataset_data(copy), m, d, 1e-3);
  /* ZCA is a rotation of PCA whitening: it stays closest to the input, so
   * W is symmetric. */
  ck_ok(nnkit_normalizer_get_array(proj, 64, nz, NNKIT_NORM_ARRAY_PROJECTION));
  for (size_t a = 0; a < d; a++)
    for (size_t b = 0; b < d; b++)
      ck_assert_float_eq_tol(proj[a * d + b], proj[b * d + a], 1e-4);
  free(cov);
  nnkit_dataset_free(copy);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(train);
  nnkit_dataset_free(test);
}
END_TEST

START_TEST(channel_mean_and_mean_image_on_images)
{
  /* 2 samples of [2 channels, 1, 3]. */
  const float x[12] = {1, 2, 3, 10, 20, 30, 3, 4, 5, 30, 40, 50};
  size_t shape[3] = {2, 1, 3};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, 2, shape, 3, 0));
  nnkit_normalizer *cm = NULL;
  ck_ok(nnkit_normalizer_create(&cm, NNKIT_NORM_CHANNEL_MEAN));
  double v;
  ck_ok(nnkit_normalizer_get(&v, cm, NNKIT_NORM_WITH_STD));
  ck_assert_double_eq(v, 0);
  ck_ok(nnkit_normalizer_fit(cm, ds));
  float mean[2];
  ck_assert_uint_eq(nnkit_normalizer_array_len(cm, NNKIT_NORM_ARRAY_MEAN), 2);
  ck_ok(nnkit_normalizer_get_array(mean, 2, cm, NNKIT_NORM_ARRAY_MEAN));
  ck_assert_float_eq(mean[0], 3.0f);  /* (1+2+3+3+4+5)/6 */
  ck_assert_float_eq(mean[1], 30.0f);
  float y[12];
  ck_ok(nnkit_normalizer_transform(cm, x, y, 2));
  ck_assert_float_eq(y[0], -2.0f);
  ck_assert_float_eq(y[5], 0.0f);
  ck_assert_float_eq(y[11], 20.0f);
  /* With the channel std: every channel has unit population variance. */
  ck_ok(nnkit_normalizer_set(cm, NNKIT_NORM_WITH_STD, 1));
  ck_ok(nnkit_normalizer_fit(cm, ds));
  ck_ok(nnkit_normalizer_transform(cm, x, y, 2));
  for (int c = 0; c < 2; c++) {
    double s = 0, q = 0;
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 3; j++) {
        s += y[i * 6 + c * 3 + j];
        q += y[i * 6 + c * 3 + j] * y[i * 6 + c * 3 + j];
      }
    ck_assert_double_eq_tol(s / 6, 0, 1e-6);
    ck_assert_double_eq_tol(q / 6, 1, 1e-5);
  }
  /* Mean image: one mean per value of C x H x W. */
  nnkit_normalizer *mi = NULL;
  ck_ok(nnkit_normalizer_create(&mi, NNKIT_NORM_MEAN_IMAGE));
  ck_ok(nnkit_normalizer_fit(mi, ds));
  float mimg[6];
  ck_ok(nnkit_normalizer_get_array(mimg, 6, mi, NNKIT_NORM_ARRAY_MEAN));
  const float want[6] = {2, 3, 4, 20, 30, 40};
  for (int i = 0; i < 6; i++)
    ck_assert_float_eq(mimg[i], want[i]);
  size_t dims[3], nd;
  ck_ok(nnkit_normalizer_shape(dims, 3, &nd, mi));
  ck_assert_uint_eq(nd, 3);
  ck_assert_uint_eq(dims[0], 2);
  ck_assert_uint_eq(dims[2], 3);
  ck_fails(nnkit_normalizer_shape(dims, 2, &nd, mi), NNKIT_E_INVALID,
           "holds 2 values");
  ck_ok(nnkit_normalizer_apply(mi, ds));
  ck_assert_uint_eq(nnkit_dataset_ndim(ds), 3);
  ck_assert_float_eq(nnkit_dataset_data(ds)[0], -1.0f);
  nnkit_normalizer_free(cm);
  nnkit_normalizer_free(mi);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(normalizer_settings_bounds_and_errors)
{
  nnkit_normalizer *nz = NULL;
  double lo, hi, v;
  ck_fails(nnkit_normalizer_create(&nz, (nnkit_norm_kind)9), NNKIT_E_INVALID,
           "unknown kind 9");
  ck_assert_ptr_null(nz);
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_PCA_WHITEN));
  int flags = -1;
  ck_ok(nnkit_normalizer_bounds(&lo, &hi, &flags, NNKIT_NORM_PCA_WHITEN,
                                NNKIT_NORM_EPSILON));
  ck_assert_double_eq(lo, 0);
  ck_assert_double_eq(hi, 1e6);
  ck_assert_int_eq(flags, 0);
  ck_ok(nnkit_normalizer_bounds(NULL, NULL, &flags, NNKIT_NORM_PCA,
                                NNKIT_NORM_COMPONENTS));
  ck_assert_int_eq(flags, NNKIT_BOUND_INTEGER);
  ck_fails(nnkit_normalizer_bounds(&lo, &hi, NULL, (nnkit_norm_kind)9,
                                   NNKIT_NORM_SEED), NNKIT_E_INVALID, "unknown kind 9");
  ck_ok(nnkit_normalizer_get(&v, nz, NNKIT_NORM_EPSILON));
  ck_assert_double_eq(v, 1e-5);
  ck_fails(nnkit_normalizer_bounds(&lo, &hi, NULL, NNKIT_NORM_PCA, NNKIT_NORM_EPSILON),
           NNKIT_E_INVALID, "a PCA normalizer has no epsilon setting");
  ck_fails(nnkit_normalizer_set(nz, NNKIT_NORM_WITH_STD, 1), NNKIT_E_INVALID,
           "PCA whitening normalizer has no with_std");
  ck_fails(nnkit_normalizer_set(nz, NNKIT_NORM_EPSILON, -1), NNKIT_E_INVALID,
           "PCA whitening normalizer epsilon -1 is outside its range [0, 1e+06]");
  ck_fails(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 2.5),
           NNKIT_E_INVALID, "components 2.5 must be an integer in [0, 1.67772e+07]");
  ck_fails(nnkit_normalizer_set(nz, (nnkit_norm_param)99, 1), NNKIT_E_INVALID,
           "unknown setting 99");
  ck_fails(nnkit_normalizer_get(&v, nz, (nnkit_norm_param)99), NNKIT_E_INVALID,
           "unknown setting");
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_FIT_SAMPLES, 5));
  ck_ok(nnkit_normalizer_get(&v, nz, NNKIT_NORM_FIT_SAMPLES));
  ck_assert_double_eq(v, 5);
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_SEED, 9));
  ck_ok(nnkit_normalizer_get(&v, nz, NNKIT_NORM_SEED));
  ck_assert_double_eq(v, 9);
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_VARIANCE, 0.5));
  ck_ok(nnkit_normalizer_get(&v, nz, NNKIT_NORM_VARIANCE));
  ck_assert_double_eq(v, 0.5);
  /* Unfitted. */
  float x[4] = {1, 2, 3, 4}, y[4];
  ck_fails(nnkit_normalizer_transform(nz, x, y, 1), NNKIT_E_STATE,
           "not fitted");
  size_t dims[3], nd;
  ck_fails(nnkit_normalizer_shape(dims, 3, &nd, nz), NNKIT_E_STATE,
           "not fitted");
  ck_fails(nnkit_normalizer_get_array(y, 4, nz, NNKIT_NORM_ARRAY_MEAN),
           NNKIT_E_STATE, "not fitted");
  ck_assert_uint_eq(nnkit_normalizer_array_len(nz, NNKIT_NORM_ARRAY_MEAN), 0);
  ck_assert_uint_eq(nnkit_normalizer_in_size(nz), 0);
  /* Too few samples, too many components, zero variance with eps 0. */
  nnkit_dataset *one = NULL, *flat = NULL;
  ck_ok(nnkit_dataset_from_buffers(&one, x, NULL, 1, (size_t[]){4}, 1, 0));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_FIT_SAMPLES, 0));
  ck_fails(nnkit_normalizer_fit(nz, one), NNKIT_E_INVALID,
           "at least 2 samples");
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 5));
  ck_fails(nnkit_normalizer_fit(nz, one), NNKIT_E_INVALID,
           "5 components asked for but samples have only 4 features");
  /* Points on a line in 2-D: the second component has zero variance. */
  const float line[8] = {0, 0, 1, 2, 2, 4, 3, 6};
  ck_ok(nnkit_dataset_from_buffers(&flat, line, NULL, 4, (size_t[]){2}, 1, 0));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 0));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_VARIANCE, 1));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_EPSILON, 0));
  ck_fails(nnkit_normalizer_fit(nz, flat), NNKIT_E_INVALID,
           "component 2 of 2 has zero variance");
  ck_assert_int_eq(nnkit_normalizer_is_fitted(nz), 0); /* nothing half-built */
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 1));
  ck_ok(nnkit_normalizer_fit(nz, flat));
  ck_assert_uint_eq(nnkit_normalizer_out_size(nz), 1);
  /* A failed refit keeps the earlier fit. */
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 2));
  ck_fails(nnkit_normalizer_fit(nz, flat), NNKIT_E_INVALID, "zero variance");
  ck_assert_uint_eq(nnkit_normalizer_out_size(nz), 1);
  ck_fails(nnkit_normalizer_apply(nz, one), NNKIT_E_SHAPE, "fitted on 2");
  ck_fails(nnkit_normalizer_transform(nz, NULL, y, 1), NNKIT_E_INVALID,
           "x is NULL");
  ck_fails(nnkit_normalizer_transform(nz, x, y, 0), NNKIT_E_INVALID,
           "count is 0");
  ck_fails(nnkit_normalizer_fit(nz, NULL), NNKIT_E_INVALID, "train is NULL");
  ck_fails(nnkit_normalizer_get_array(y, 4, nz, NNKIT_NORM_ARRAY_SCALE),
           NNKIT_E_INVALID, "no such array");
  ck_fails(nnkit_normalizer_get_array(y, 1, nz, NNKIT_NORM_ARRAY_MEAN),
           NNKIT_E_INVALID, "too short");
  /* A constant feature is only centred (scikit-learn's rule). */
  nnkit_normalizer *st = NULL;
  const float cst[6] = {5, 1, 5, 2, 5, 3};
  nnkit_dataset *c = NULL;
  ck_ok(nnkit_dataset_from_buffers(&c, cst, NULL, 3, (size_t[]){2}, 1, 0));
  ck_ok(nnkit_normalizer_create(&st, NNKIT_NORM_STANDARDIZE));
  ck_ok(nnkit_normalizer_fit(st, c));
  float sc[2];
  ck_ok(nnkit_normalizer_get_array(sc, 2, st, NNKIT_NORM_ARRAY_SCALE));
  ck_assert_float_eq(sc[0], 1.0f);
  ck_assert_double_eq_tol(sc[1], 1 / sqrt(2.0 / 3.0), 1e-6);
  nnkit_normalizer_free(st);
  nnkit_normalizer_free(NULL);
  ck_assert_int_eq(nnkit_normalizer_is_fitted(NULL), 0);
  nnkit_dataset_free(c);
  nnkit_dataset_free(one);
  nnkit_dataset_free(flat);
  nnkit_normalizer_free(nz);
}
END_TEST

START_TEST(normalizer_fits_on_a_subset_and_reports_the_gap)
{
  /* 20000 samples of 3 features: N(mu_j, sigma_j) from the test's own
   * generator. */
  const size_t n = 20000, d = 3;
  float *x = malloc(n * d * sizeof *x);
  nnkit__rng r;
  nnkit__rng_init(&r, 5, 0);
  const double mu[3] = {1, -2, 50}, sg[3] = {1, 3, 10};
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < d; j++)
      x[i * d + j] = (float)(mu[j] + sg[j] * nnkit__rng_normal(&r));
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, n, &d, 1, 0));
  nnkit_normalizer *full = NULL, *sub = NULL, *sub2 = NULL;
  ck_ok(nnkit_normalizer_create(&full, NNKIT_NORM_STANDARDIZE));
  ck_ok(nnkit_normalizer_fit(full, ds));
  double dm, ds_;
  ck_ok(nnkit_normalizer_compare(&dm, &ds_, full, ds));
  ck_assert_double_le(dm, 1e-5 * 50);
  ck_assert_double_le(ds_, 1e-5 * 10);
  ck_ok(nnkit_normalizer_create(&sub, NNKIT_NORM_STANDARDIZE));
  ck_ok(nnkit_normalizer_set(sub, NNKIT_NORM_FIT_SAMPLES, 2000));
  ck_ok(nnkit_normalizer_set(sub, NNKIT_NORM_SEED, 11));
  ck_ok(nnkit_normalizer_fit(sub, ds));
  ck_assert_uint_eq(nnkit_normalizer_fit_count(sub), 2000);
  ck_ok(nnkit_normalizer_compare(&dm, &ds_, sub, ds));
  /* Law of large numbers: off by about sigma / sqrt(2000) = 0.22 for the
   * widest feature, and certainly not exactly equal. */
  ck_assert_double_gt(dm, 0);
  ck_assert_double_lt(dm, 1.0);
  ck_assert_double_lt(ds_, 1.0);
  ck_ok(nnkit_normalizer_compare(NULL, &ds_, sub, ds));
  /* Same seed, same subset. */
  ck_ok(nnkit_normalizer_create(&sub2, NNKIT_NORM_STANDARDIZE));
  ck_ok(nnkit_normalizer_set(sub2, NNKIT_NORM_FIT_SAMPLES, 2000));
  ck_ok(nnkit_normalizer_set(sub2, NNKIT_NORM_SEED, 11));
  ck_ok(nnkit_normalizer_fit(sub2, ds));
  float a[3], b[3];
  ck_ok(nnkit_normalizer_get_array(a, 3, sub, NNKIT_NORM_ARRAY_MEAN));
  ck_ok(nnkit_normalizer_get_array(b, 3, sub2, NNKIT_NORM_ARRAY_MEAN));
  ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
  ck_ok(nnkit_normalizer_set(sub2, NNKIT_NORM_SEED, 12));
  ck_ok(nnkit_normalizer_fit(sub2, ds));
  ck_ok(nnkit_normalizer_get_array(b, 3, sub2, NNKIT_NORM_ARRAY_MEAN));
  ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
  /* PCA on a subset, too. */
  nnkit_normalizer *p = NULL;
  ck_ok(nnkit_normalizer_create(&p, NNKIT_NORM_PCA_WHITEN));
  ck_ok(nnkit_normalizer_set(p, NNKIT_NORM_FIT_SAMPLES, 500));
  ck_ok(nnkit_normalizer_fit(p, ds));
  ck_assert_uint_eq(nnkit_normalizer_fit_count(p), 500);
  ck_ok(nnkit_normalizer_compare(&dm, NULL, p, ds));
  ck_assert_double_lt(dm, 2.0);
  nnkit_dataset *two = NULL;
  ck_ok(nnkit_dataset_from_buffers(&two, x, NULL, 1, (size_t[]){3, 1}, 2, 0));
  ck_fails(nnkit_normalizer_compare(&dm, NULL, p, two), NNKIT_E_SHAPE,
           "fitted on 3");
  nnkit_dataset_free(two);
  nnkit_normalizer_free(p);
  nnkit_normalizer_free(full);
  nnkit_normalizer_free(sub);
  nnkit_normalizer_free(sub2);
  nnkit_dataset_free(ds);
  free(x);
}
END_TEST

/* Rebuilds nz from its arrays and checks the copy transforms x exactly as
 * nz does. */
static void roundtrip(const nnkit_normalizer *nz, const float *x, size_t count)
{
  size_t dims[3], nd;
  ck_ok(nnkit_normalizer_shape(dims, 3, &nd, nz));
  size_t lm = nnkit_normalizer_array_len(nz, NNKIT_NORM_ARRAY_MEAN);
  size_t ls = nnkit_normalizer_array_len(nz, NNKIT_NORM_ARRAY_SCALE);
  size_t lp = nnkit_normalizer_array_len(nz, NNKIT_NORM_ARRAY_PROJECTION);
  float *m = malloc((lm + 1) * sizeof *m), *s = malloc((ls + 1) * sizeof *s);
  float *p = malloc((lp + 1) * sizeof *p);
  ck_ok(nnkit_normalizer_get_array(m, lm, nz, NNKIT_NORM_ARRAY_MEAN));
  if (ls)
    ck_ok(nnkit_normalizer_get_array(s, ls, nz, NNKIT_NORM_ARRAY_SCALE));
  if (lp)
    ck_ok(nnkit_normalizer_get_array(p, lp, nz, NNKIT_NORM_ARRAY_PROJECTION));
  nnkit_normalizer *back = NULL;
  ck_ok(nnkit_normalizer_from_arrays(&back, nnkit_normalizer_kind(nz), dims,
                                     nd, nnkit_normalizer_out_size(nz), m, lm,
                                     ls ? s : NULL, ls, lp ? p : NULL, lp));
  ck_assert_int_eq(nnkit_normalizer_is_fitted(back), 1);
  ck_assert_uint_eq(nnkit_normalizer_fit_count(back), 0);
  size_t in = nnkit_normalizer_in_size(nz), out = nnkit_normalizer_out_size(nz);
  float *y1 = malloc(count * out * sizeof *y1), *y2 = malloc(count * out * sizeof *y2);
  ck_ok(nnkit_normalizer_transform(nz, x, y1, count));
  ck_ok(nnkit_normalizer_transform(back, x, y2, count));
  ck_assert_int_eq(memcmp(y1, y2, count * out * sizeof *y1), 0);
  (void)in;
  double dm, dsd;
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, count, dims, nd, 0));
  ck_ok(nnkit_normalizer_compare(&dm, &dsd, back, ds));
  ck_assert(isnan(dsd));
  nnkit_dataset_free(ds);
  free(y1);
  free(y2);
  free(m);
  free(s);
  free(p);
  nnkit_normalizer_free(back);
}

START_TEST(normalizer_round_trips_through_its_arrays)
{
  nnkit_dataset *train = NULL, *test = NULL;
  size_t d;
  fixture_sets(&train, &test, &d);
  const float *x = nnkit_dataset_data(test);
  size_t m = nnkit_dataset_count(test);
  const nnkit_norm_kind kinds[6] = {
    NNKIT_NORM_MEAN_IMAGE, NNKIT_NORM_CHANNEL_MEAN, NNKIT_NORM_STANDARDIZE,
    NNKIT_NORM_PCA, NNKIT_NORM_PCA_WHITEN, NNKIT_NORM_ZCA_WHITEN};
  for (int i = 0; i < 6; i++) {
    nnkit_normalizer *nz = NULL;
    ck_ok(nnkit_normalizer_create(&nz, kinds[i]));
    if (kinds[i] == NNKIT_NORM_CHANNEL_MEAN)
      ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_WITH_STD, 1));
    if (kinds[i] == NNKIT_NORM_PCA || kinds[i] == NNKIT_NORM_PCA_WHITEN)
      ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 4));
    ck_ok(nnkit_normalizer_fit(nz, train));
    roundtrip(nz, x, m);
    nnkit_normalizer_free(nz);
  }
  /* Bad arrays. */
  nnkit_normalizer *b = NULL;
  float mean[6] = {0}, scale[6] = {1, 1, 1, 1, 1, 1}, proj[36] = {0};
  size_t shape[1] = {6};
  ck_fails(nnkit_normalizer_from_arrays(&b, NNKIT_NORM_STANDARDIZE, shape, 1, 6,
                                        mean, 5, NULL, 0, NULL, 0),
           NNKIT_E_INVALID, "mean has 5 values but standardize of this shape "
           "needs 6");
  ck_fails(nnkit_normalizer_from_arrays(&b, NNKIT_NORM_MEAN_IMAGE, shape, 1, 6,
                                        mean, 6, scale, 6, NULL, 0),
           NNKIT_E_INVALID, "scale has 6 values");
  ck_fails(nnkit_normalizer_from_arrays(&b, NNKIT_NORM_PCA, shape, 1, 7, mean,
                                        6, NULL, 0, proj, 36),
           NNKIT_E_INVALID, "out_size 7 must be in [1, 6]");
  ck_fails(nnkit_normalizer_from_arrays(&b, NNKIT_NORM_PCA, shape, 1, 3, mean,
                                        6, NULL, 0, proj, 36),
           NNKIT_E_INVALID, "projection has 36 values but PCA needs 18");
  ck_fails(nnkit_normalizer_from_arrays(&b, NNKIT_NORM_ZCA_WHITEN, shape, 1, 5,
                                        mean, 6, NULL, 0, proj, 36),
           NNKIT_E_INVALID, "must equal the input size 6");
  mean[2] = NAN;
  ck_fails(nnkit_normalizer_from_arrays(&b, NNKIT_NORM_MEAN_IMAGE, shape, 1, 6,
                                        mean, 6, NULL, 0, NULL, 0),
           NNKIT_E_INVALID, "NaN or infinite");
  ck_fails(nnkit_normalizer_from_arrays(&b, NNKIT_NORM_MEAN_IMAGE, shape, 0, 6,
                                        mean, 6, NULL, 0, NULL, 0),
           NNKIT_E_INVALID, "1 to 3 dimensions");
  ck_assert_ptr_null(b);
  nnkit_dataset_free(train);
  nnkit_dataset_free(test);
}
END_TEST

/* ---- augmentation ------------------------------------------------------- */

/* An image of c x h x w with value(k, y, x) = 0.5 x + 0.25 y + 7 k + 1: a
 * linear function, which bilinear interpolation reproduces exactly. */
static float ramp(size_t k, double y, double x)
{
  return (float)(0.5 * x + 0.25 * y + 7.0 * (double)k + 1.0);
}

static float *ramp_image(size_t c, size_t h, size_t w)
{
  float *img = malloc(c * h * w * sizeof *img);
  ck_assert_ptr_nonnull(img);
  for (size_t k = 0; k < c; k++)
    for (size_t y = 0; y < h; y++)
      for (size_t x = 0; x < w; x++)
        img[(k * h + y) * w + x] = ramp(k, (double)y, (double)x);
  return img;
}

/* Checks that out is the ramp image warped by inverse map m (output pixel
 * -> source point): pixels whose source lies inside the image equal the
 * ramp there, pixels whose source is a full pixel outside are 0. Returns
 * how many pixels were inside. */
static size_t check_warp(const float *out, size_t c, size_t h, size_t w,
                         const double m[6])
{
  size_t inside = 0;
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++) {
      double sx = m[0] * x + m[1] * y + m[2], sy = m[3] * x + m[4] * y + m[5];
      for (size_t k = 0; k < c; k++) {
        float v = out[(k * h + y) * w + x];
        if (sx >= -1e-9 && sx <= w - 1 + 1e-9 && sy >= -1e-9 &&
            sy <= h - 1 + 1e-9) {
          ck_assert_msg(fabs(v - ramp(k, sy, sx)) < 1e-4,
                        "(%zu,%zu,%zu) from (%.3f,%.3f): %g vs %g", k, y, x,
                        sy, sx, v, ramp(k, sy, sx));
          inside += k == 0;
        } else if (sx <= -1 || sx >= w || sy <= -1 || sy >= h) {
          ck_assert_msg(v == 0, "(%zu,%zu,%zu) outside but %g", k, y, x, v);
        }
      }
    }
  return inside;
}

/* Inverse map for a forward map given in centred coordinates (u = x - cx,
 * v = y - cy): u' = f0 u + f1 v + f2, v' = f3 u + f4 v + f5. */
static void inverse_pixel_map(const double f[6], size_t h, size_t w,
                              double m[6])
{
  double det = f[0] * f[4] - f[1] * f[3];
  double a = f[4] / det, b = -f[1] / det, c = -f[3] / det, d = f[0] / det;
  double tu = -(a * f[2] + b * f[5]), tv = -(c * f[2] + d * f[5]);
  double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
  m[0] = a;
  m[1] = b;
  m[2] = tu + cx - a * cx - b * cy;
  m[3] = c;
  m[4] = d;
  m[5] = tv + cy - c * cx - d * cy;
}

/* Runs a one-op chain (p = 1) on the ramp image. */
static float *augment_once(nnkit_aug_kind kind, double a, double b, size_t c,
                           size_t h, size_t w)
{
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, kind, 1.0, a, b));
  float *img = ramp_image(c, h, w);
  size_t shape[3] = {c, h, w};
  ck_ok(nnkit_augmenter_apply(aug, img, 1, shape, 3, 1, 0, 0));
  nnkit_augmenter_free(aug);
  return img;
}

START_TEST(identity_parameters_change_nothing)
{
  const size_t c = 3, h = 7, w = 9;
  const struct { nnkit_aug_kind k; double a, b; } ops[] = {
    {NNKIT_AUG_ROTATE, 0, 0},      {NNKIT_AUG_SCALE, 1, 1},
    {NNKIT_AUG_STRETCH, 1, 1},     {NNKIT_AUG_SHEAR_X, 0, 0},
    {NNKIT_AUG_SHEAR_Y, 0, 0},     {NNKIT_AUG_TRANSLATE, 0, 0},
    {NNKIT_AUG_BRIGHTNESS, 0, 0},  {NNKIT_AUG_CONTRAST, 1, 1},
    {NNKIT_AUG_SATURATION, 1, 1},  {NNKIT_AUG_NOISE, 0, 0},
    {NNKIT_AUG_ROTATE, 360, 360},
  };
  float *ref = ramp_image(c, h, w);
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    float *img = augment_once(ops[i].k, ops[i].a, ops[i].b, c, h, w);
    for (size_t j = 0; j < c * h * w; j++)
      ck_assert_msg(fabs(img[j] - ref[j]) <= 1e-5 * fabs(ref[j]),
                    "op %zu value %zu: %g vs %g", i, j, img[j], ref[j]);
    free(img);
  }
  /* An empty chain and a chain whose ops never fire are exact copies. */
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_assert_uint_eq(nnkit_augmenter_count(aug), 0);
  float *img = ramp_image(c, h, w);
  size_t shape[3] = {c, h, w};
  ck_ok(nnkit_augmenter_apply(aug, img, 1, shape, 3, 0, 0, 0));
  ck_assert_int_eq(memcmp(img, ref, c * h * w * sizeof *img), 0);
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 0.0, -30, 30));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_NOISE, 0.0, 1, 1));
  ck_assert_uint_eq(nnkit_augmenter_count(aug), 2);
  ck_ok(nnkit_augmenter_apply(aug, img, 1, shape, 3, 0, 0, 0));
  ck_assert_int_eq(memcmp(img, ref, c * h * w * sizeof *img), 0);
  nnkit_augmenter_free(aug);
  free(img);
  free(ref);
}
END_TEST

START_TEST(flips_mirror_pixels_exactly)
{
  const size_t c = 2, h = 4, w = 5;
  float *ref = ramp_image(c, h, w);
  float *hf = augment_once(NNKIT_AUG_HFLIP, 0, 0, c, h, w);
  float *vf = augment_once(NNKIT_AUG_VFLIP, 0, 0, c, h, w);
  for (size_t k = 0; k < c; k++)
    for (size_t y = 0; y < h; y++)
      for (size_t x = 0; x < w; x++) {
        ck_assert_float_eq(hf[(k * h + y) * w + x],
                           ref[(k * h + y) * w + (w - 1 - x)]);
        ck_assert_float_eq(vf[(k * h + y) * w + x],
                           ref[(k * h + (h - 1 - y)) * w + x]);
      }
  free(ref);
  free(hf);
  free(vf);
}
END_TEST

START_TEST(rotation_lands_where_the_transform_says)
{
  /* 90 degrees counter-clockwise on screen: the pixel right of the centre
   * moves above it; a square image maps onto itself exactly. */
  const size_t n = 5;
  float *ref = ramp_image(1, n, n);
  float *r90 = augment_once(NNKIT_AUG_ROTATE, 90, 90, 1, n, n);
  for (size_t y = 0; y < n; y++)
    for (size_t x = 0; x < n; x++) {
      /* forward: u' = v, v' = -u, so out(x, y) = in(cx - (y - cy), ...) */
      size_t sx = n - 1 - y, sy = x;
      ck_assert_float_eq_tol(r90[y * n + x], ref[sy * n + sx], 1e-5);
    }
  ck_assert_float_eq_tol(r90[1 * n + 2], ref[2 * n + 3], 1e-5);
  /* 30 degrees on a 3-channel image: checked through the ramp. */
  const size_t h = 9, w = 11;
  float *r30 = augment_once(NNKIT_AUG_ROTATE, 30, 30, 3, h, w);
  double t = 30 * 3.14159265358979323846 / 180;
  double f[6] = {cos(t), sin(t), 0, -sin(t), cos(t), 0}, m[6];
  inverse_pixel_map(f, h, w, m);
  ck_assert_uint_gt(check_warp(r30, 3, h, w, m), 40);
  free(ref);
  free(r90);
  free(r30);
}
END_TEST

START_TEST(shear_scale_and_stretch_land_where_they_say)
{
  const size_t h = 9, w = 12;
  double m[6];
  double tx = tan(20 * 3.14159265358979323846 / 180);
  float *sx = augment_once(NNKIT_AUG_SHEAR_X, 20, 20, 1, h, w);
  double fx[6] = {1, tx, 0, 0, 1, 0};
  inverse_pixel_map(fx, h, w, m);
  ck_assert_uint_gt(check_warp(sx, 1, h, w, m), 40);
  float *sy = augment_once(NNKIT_AUG_SHEAR_Y, -15, -15, 2, h, w);
  double ty = tan(-15 * 3.14159265358979323846 / 180);
  double fy[6] = {1, 0, 0, ty, 1, 0};
  inverse_pixel_map(fy, h, w, m);
  ck_assert_uint_gt(check_warp(sy, 2, h, w, m), 40);
  float *sc = augment_once(NNKIT_AUG_SCALE, 0.5, 0.5, 1, h, w);
  double fs[6] = {0.5, 0, 0, 0, 0.5, 0};
  inverse_pixel_map(fs, h, w, m);
  check_warp(sc, 1, h, w, m); /* zoom out: the border reads 0 */
  ck_assert_float_eq(sc[0], 0.0f);
  float *st = augment_once(NNKIT_AUG_STRETCH, 2, 2, 1, h, w);
  double ft[6] = {2, 0, 0, 0, 2, 0};
  inverse_pixel_map(ft, h, w, m);
  ck_assert_uint_eq(check_warp(st, 1, h, w, m), h * w); /* zoom in: all inside */
  free(sx);
  free(sy);
  free(sc);
  free(st);
}
END_TEST

START_TEST(random_geometry_is_one_composed_warp)
{
  /* Random ranges: read the drawn map back and check the pixels follow it,
   * and that the draws stay in their ranges. */
  const size_t c = 2, h = 10, w = 10;
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_TRANSLATE, 1.0, 2.5, 1.5));
  size_t shape[3] = {c, h, w};
  for (uint64_t i = 0; i < 20; i++) {
    double m[6];
    ck_assert_int_eq(nnkit__augment_matrix(aug, h, w, 3, 1, i, m), 1);
    ck_assert(m[0] == 1 && m[1] == 0 && m[3] == 0 && m[4] == 1);
    ck_assert(fabs(m[2]) <= 2.5 && fabs(m[5]) <= 1.5);
    float *img = ramp_image(c, h, w);
    ck_ok(nnkit_augmenter_apply(aug, img, 1, shape, 3, 3, 1, i));
    check_warp(img, c, h, w, m);
    free(img);
  }
  nnkit_augmenter_free(aug);
  /* Crop with padding 3: whole-pixel shifts in [-3, 3], all of them. */
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_CROP, 1.0, 3, 0));
  int seen[7] = {0};
  for (uint64_t i = 0; i < 200; i++) {
    double m[6];
    nnkit__augment_matrix(aug, h, w, 3, 0, i, m);
    ck_assert(m[2] == floor(m[2]) && fabs(m[2]) <= 3 && fabs(m[5]) <= 3);
    seen[(int)m[2] + 3] = 1;
  }
  for (int i = 0; i < 7; i++)
    ck_assert_int_eq(seen[i], 1);
  nnkit_augmenter_free(aug);
  /* A chain rotate 30 -> scale 1.5 -> shear_x 10 -> hflip is ONE warp with
   * the composed map (composed here independently). */
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 1.0, 30, 30));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_BRIGHTNESS, 0.0, 1, 1));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_SCALE, 1.0, 1.5, 1.5));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_SHEAR_X, 1.0, 10, 10));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_HFLIP, 1.0, 0, 0));
  double t = 30 * 3.14159265358979323846 / 180;
  double s = tan(10 * 3.14159265358979323846 / 180);
  /* forward = hflip * shear * scale * rotate */
  double R[4] = {cos(t), sin(t), -sin(t), cos(t)};
  double S[4] = {1.5 * R[0], 1.5 * R[1], 1.5 * R[2], 1.5 * R[3]};
  double Sh[4] = {S[0] + s * S[2], S[1] + s * S[3], S[2], S[3]};
  double f[6] = {-Sh[0], -Sh[1], 0, Sh[2], Sh[3], 0}, m[6], got[6];
  inverse_pixel_map(f, h, w, m);
  ck_assert_int_eq(nnkit__augment_matrix(aug, h, w, 0, 0, 0, got), 1);
  for (int i = 0; i < 6; i++)
    ck_assert_double_eq_tol(got[i], m[i], 1e-9);
  float *img = ramp_image(c, h, w);
  ck_ok(nnkit_augmenter_apply(aug, img, 1, shape, 3, 0, 0, 0));
  ck_assert_uint_gt(check_warp(img, c, h, w, m), 20);
  free(img);
  nnkit_augmenter_free(aug);
}
END_TEST

/* Plain bilinear sampling with zero outside, one point at a time. */
static float ref_sample(const float *img, size_t h, size_t w, double sx,
                        double sy)
{
  double fx = floor(sx), fy = floor(sy), ax = sx - fx, ay = sy - fy;
  double v = 0;
  for (int dy = 0; dy < 2; dy++)
    for (int dx = 0; dx < 2; dx++) {
      double xx = fx + dx, yy = fy + dy;
      double wt = (dx ? ax : 1 - ax) * (dy ? ay : 1 - ay);
      if (xx >= 0 && xx < (double)w && yy >= 0 && yy < (double)h)
        v += wt * img[(size_t)yy * w + (size_t)xx];
    }
  return (float)v;
}

START_TEST(warp_matches_a_reference_bilinear_sampler)
{
  /* Random maps (every geometric kind, wide ranges) on odd-sized
   * multi-channel images: every output pixel equals plain bilinear
   * sampling of the drawn map, interior, border and outside alike. */
  const size_t c = 3, h = 17, w = 13, per = c * h * w;
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_HFLIP, 0.5, 0, 0));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 0.9, -180, 180));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_STRETCH, 0.7, 0.5, 2));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_SHEAR_Y, 0.5, -30, 30));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_TRANSLATE, 0.7, 6, 6));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_CROP, 0.3, 2, 0));
  float *img = malloc(per * sizeof *img), *out = malloc(per * sizeof *out);
  nnkit__rng r;
  nnkit__rng_init(&r, 99, 0);
  for (size_t i = 0; i < per; i++)
    img[i] = (float)(nnkit__rng_uniform(&r) * 10 - 5);
  size_t shape[3] = {c, h, w};
  for (uint64_t i = 0; i < 300; i++) {
    double m[6];
    nnkit__augment_matrix(aug, h, w, 5, 2, i, m);
    memcpy(out, img, per * sizeof *out);
    ck_ok(nnkit_augmenter_apply(aug, out, 1, shape, 3, 5, 2, i));
    for (size_t k = 0; k < c; k++)
      for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
          double sx = m[0] * x + m[1] * y + m[2], sy = m[3] * x + m[4] * y + m[5];
          float want = ref_sample(img + k * h * w, h, w, sx, sy);
          float got = out[(k * h + y) * w + x];
          ck_assert_msg(fabs(got - want) <= 1e-4, "map %llu (%zu,%zu,%zu): %g vs %g",
                        (unsigned long long)i, k, y, x, got, want);
        }
  }
  free(img);
  free(out);
  nnkit_augmenter_free(aug);
}
END_TEST

START_TEST(value_transforms_do_what_they_say)
{
  const size_t c = 3, h = 6, w = 8, n = c * h * w;
  float *ref = ramp_image(c, h, w);
  float *b = augment_once(NNKIT_AUG_BRIGHTNESS, 0.75, 0.75, c, h, w);
  for (size_t i = 0; i < n; i++)
    ck_assert_float_eq_tol(b[i], ref[i] + 0.75f, 1e-5);
  double mean = 0;
  for (size_t i = 0; i < n; i++)
    mean += ref[i];
  mean /= (double)n;
  float *ct = augment_once(NNKIT_AUG_CONTRAST, 2, 2, c, h, w);
  for (size_t i = 0; i < n; i++)
    ck_assert_float_eq_tol(ct[i], mean + 2 * (ref[i] - mean), 1e-4);
  float *gray = augment_once(NNKIT_AUG_SATURATION, 0, 0, c, h, w);
  size_t plane = h * w;
  for (size_t i = 0; i < plane; i++) {
    double g = 0.299 * ref[i] + 0.587 * ref[plane + i] + 0.114 * ref[2 * plane + i];
    for (size_t k = 0; k < c; k++)
      ck_assert_float_eq_tol(gray[k * plane + i], g, 1e-4);
  }
  /* Erasing a quarter of the area: a zeroed rectangle in every channel. */
  float *er = augment_once(NNKIT_AUG_ERASE, 0.25, 0.25, c, h, w);
  size_t zeros = 0;
  for (size_t i = 0; i < plane; i++) {
    int z = er[i] == 0;
    for (size_t k = 1; k < c; k++)
      ck_assert_int_eq(er[k * plane + i] == 0, z);
    zeros += (size_t)z;
    if (!z)
      ck_assert_float_eq(er[i], ref[i]);
  }
  ck_assert_uint_ge(zeros, 6);
  ck_assert_uint_le(zeros, 20);
  /* Noise: zero mean, the asked std, on a large flat image. */
  const size_t big = 200;
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_NOISE, 1.0, 0.5, 0.5));
  float *flat = calloc(big * big, sizeof *flat);
  ck_ok(nnkit_augmenter_apply(aug, flat, 1, (size_t[]){big, big}, 2, 4, 0, 0));
  double s = 0, q = 0;
  for (size_t i = 0; i < big * big; i++) {
    s += flat[i];
    q += flat[i] * flat[i];
  }
  s /= big * big;
  ck_assert_double_lt(fabs(s), 0.02);
  ck_assert_double_lt(fabs(sqrt(q / (big * big) - s * s) - 0.5), 0.02);
  /* Gaussian tails: 4.55% beyond 2 sigma, 0.27% beyond 3 sigma. */
  size_t beyond2 = 0, beyond3 = 0;
  for (size_t i = 0; i < big * big; i++) {
    beyond2 += fabs(flat[i]) > 2 * 0.5;
    beyond3 += fabs(flat[i]) > 3 * 0.5;
  }
  ck_assert_double_lt(fabs(beyond2 / 40000.0 - 0.0455), 0.004);
  ck_assert_double_lt(fabs(beyond3 / 40000.0 - 0.0027), 0.0012);
  nnkit_augmenter_free(aug);
  free(flat);
  free(ref);
  free(b);
  free(ct);
  free(gray);
  free(er);
}
END_TEST

START_TEST(augmentation_probability_and_determinism)
{
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_HFLIP, 0.5, 0, 0));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_NOISE, 1.0, 0.1, 0.3));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 0.7, -20, 20));
  /* p = 0.5: about half of 2000 samples flipped. */
  int flips = 0;
  double m[6];
  for (uint64_t i = 0; i < 2000; i++) {
    nnkit_augmenter *one = NULL;
    ck_ok(nnkit_augmenter_create(&one));
    ck_ok(nnkit_augmenter_add(one, NNKIT_AUG_HFLIP, 0.5, 0, 0));
    flips += nnkit__augment_matrix(one, 4, 4, 9, 0, i, m);
    nnkit_augmenter_free(one);
  }
  ck_assert_int_gt(flips, 900);
  ck_assert_int_lt(flips, 1100);
  /* Same (seed, epoch, index): same result, in any batch split. */
  const size_t n = 6, c = 1, h = 8, w = 8, per = c * h * w;
  size_t shape[2] = {h, w};
  float *a = malloc(n * per * sizeof *a), *b = malloc(n * per * sizeof *b);
  for (size_t i = 0; i < n * per; i++)
    a[i] = b[i] = (float)(i % per);
  ck_ok(nnkit_augmenter_apply(aug, a, n, shape, 2, 42, 3, 100));
  ck_ok(nnkit_augmenter_apply(aug, b, 2, shape, 2, 42, 3, 100));
  ck_ok(nnkit_augmenter_apply(aug, b + 2 * per, 4, shape, 2, 42, 3, 102));
  ck_assert_int_eq(memcmp(a, b, n * per * sizeof *a), 0);
  /* Another epoch or seed differs. */
  for (size_t i = 0; i < n * per; i++)
    b[i] = (float)(i % per);
  ck_ok(nnkit_augmenter_apply(aug, b, n, shape, 2, 42, 4, 100));
  ck_assert_int_ne(memcmp(a, b, n * per * sizeof *a), 0);
  free(a);
  free(b);
  nnkit_augmenter_free(aug);
}
END_TEST

START_TEST(augmenter_rejects_bad_parameters_and_shapes)
{
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_fails(nnkit_augmenter_add(aug, (nnkit_aug_kind)0, 1, 0, 0),
           NNKIT_E_INVALID, "unknown kind 0");
  ck_fails(nnkit_augmenter_add(aug, (nnkit_aug_kind)15, 1, 0, 0),
           NNKIT_E_INVALID, "unknown kind 15");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_HFLIP, 1.5, 0, 0),
           NNKIT_E_INVALID, "probability 1.5");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_HFLIP, NAN, 0, 0),
           NNKIT_E_INVALID, "probability");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_HFLIP, 1, 1, 0),
           NNKIT_E_INVALID, "hflip with a = 1, b = 0: it takes no parameters");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 1, 10, -10),
           NNKIT_E_INVALID, "rotate with a = 10, b = -10");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_SCALE, 1, 0, 2),
           NNKIT_E_INVALID, "0 < a <= b <= 16");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_STRETCH, 1, 1, 20),
           NNKIT_E_INVALID, "stretch");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_SHEAR_X, 1, -85, 0),
           NNKIT_E_INVALID, "(-80, 80)");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_TRANSLATE, 1, -1, 0),
           NNKIT_E_INVALID, "0 <= a, b <= 4096");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_CROP, 1, 2.5, 0),
           NNKIT_E_INVALID, "whole padding");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_CONTRAST, 1, -0.5, 1),
           NNKIT_E_INVALID, "0 <= a <= b <= 1000");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_NOISE, 1, 0, INFINITY),
           NNKIT_E_INVALID, "finite");
  ck_fails(nnkit_augmenter_add(aug, NNKIT_AUG_ERASE, 1, 0, 0.5),
           NNKIT_E_INVALID, "0 < a <= b <= 1");
  ck_fails(nnkit_augmenter_add(NULL, NNKIT_AUG_HFLIP, 1, 0, 0),
           NNKIT_E_INVALID, "aug is NULL");
  ck_assert_uint_eq(nnkit_augmenter_count(aug), 0);
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_SATURATION, 1, 0.5, 1.5));
  float x[16] = {0};
  size_t gray[3] = {1, 4, 4}, flat[1] = {16}, zero[2] = {0, 4};
  ck_fails(nnkit_augmenter_apply(aug, x, 1, gray, 3, 0, 0, 0), NNKIT_E_SHAPE,
           "saturation (transform 0) needs RGB samples of 3 channels");
  ck_fails(nnkit_augmenter_apply(aug, x, 1, flat, 1, 0, 0, 0), NNKIT_E_INVALID,
           "not 1-D ones");
  ck_fails(nnkit_augmenter_apply(aug, x, 1, zero, 2, 0, 0, 0), NNKIT_E_INVALID,
           "shape[0] is 0");
  ck_fails(nnkit_augmenter_apply(aug, x, 0, gray, 3, 0, 0, 0), NNKIT_E_INVALID,
           "count is 0");
  ck_fails(nnkit_augmenter_apply(aug, NULL, 1, gray, 3, 0, 0, 0),
           NNKIT_E_INVALID, "x is NULL");
  ck_fails(nnkit_augmenter_create(NULL), NNKIT_E_INVALID, "out is NULL");
  ck_assert_uint_eq(nnkit_augmenter_count(NULL), 0);
  nnkit_augmenter_free(NULL);
  nnkit_augmenter_free(aug);
}
END_TEST

/* ---- pipelines ---------------------------------------------------------- */

/* Collects every batch of an epoch: values concatenated into x (capacity
 * cap floats), labels into y; returns the sample count. */
static size_t drain(nnkit_pipeline *p, uint64_t epoch, float *x, size_t cap,
                    int32_t *y, size_t *batches, size_t *sizes)
{
  ck_ok(nnkit_pipeline_begin_epoch(p, epoch));
  size_t total = 0, nb = 0, per = nnkit_pipeline_sample_size(p), b;
  for (;;) {
    ck_ok(nnkit_pipeline_next(&b, p));
    if (b == 0)
      break;
    ck_assert_uint_le((total + b) * per, cap);
    memcpy(x + total * per, nnkit_pipeline_batch_data(p), b * per * sizeof *x);
    if (y && nnkit_pipeline_batch_labels(p))
      memcpy(y + total, nnkit_pipeline_batch_labels(p), b * sizeof *y);
    if (sizes)
      sizes[nb] = b;
    nb++;
    total += b;
  }
  /* After the end: 0 again, and no current batch. */
  ck_ok(nnkit_pipeline_next(&b, p));
  ck_assert_uint_eq(b, 0);
  ck_assert_ptr_null(nnkit_pipeline_batch_data(p));
  if (batches)
    *batches = nb;
  return total;
}

START_TEST(pipeline_batches_cover_the_epoch)
{
  int32_t labels[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  nnkit_dataset *ds = tagged_set(labels, 10, 2);
  nnkit_pipeline *p = NULL;
  ck_ok(nnkit_pipeline_create(&p, ds));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 4));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_SEED, 5));
  ck_assert_uint_eq(nnkit_pipeline_batches_per_epoch(p), 3);
  ck_assert_uint_eq(nnkit_pipeline_sample_size(p), 2);
  ck_assert_uint_eq(nnkit_pipeline_ndim(p), 1);
  ck_assert_uint_eq(nnkit_pipeline_dim(p, 0), 2);
  ck_assert_uint_eq(nnkit_pipeline_dim(p, 1), 0);
  float x[40];
  int32_t y[20];
  size_t nb, sizes[8];
  ck_assert_uint_eq(drain(p, 0, x, 40, y, &nb, sizes), 10);
  ck_assert_uint_eq(nb, 3);
  ck_assert_uint_eq(sizes[0], 4);
  ck_assert_uint_eq(sizes[2], 2);
  /* Each sample once, with its own label; the order is the trainer's:
   * Fisher-Yates from stream (seed, epoch). */
  size_t order[10];
  for (size_t i = 0; i < 10; i++)
    order[i] = i;
  nnkit__rng r;
  nnkit__rng_init(&r, 5, 0);
  nnkit__rng_shuffle(&r, order, 10);
  for (size_t i = 0; i < 10; i++) {
    size_t s = (size_t)x[2 * i] / 1000;
    ck_assert_uint_eq(s, order[i]);
    ck_assert_float_eq(x[2 * i + 1], (float)(1000 * s + 1));
    ck_assert_int_eq(y[i], labels[s]);
  }
  /* Another epoch, another order; the same epoch again, the same. */
  float x2[40];
  drain(p, 1, x2, 40, NULL, NULL, NULL);
  ck_assert_int_ne(memcmp(x, x2, 20 * sizeof *x), 0);
  drain(p, 0, x2, 40, NULL, NULL, NULL);
  ck_assert_int_eq(memcmp(x, x2, 20 * sizeof *x), 0);
  /* No shuffling: dataset order. drop_last: only full batches. */
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_SHUFFLE, 0));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_DROP_LAST, 1));
  ck_assert_uint_eq(nnkit_pipeline_batches_per_epoch(p), 2);
  ck_assert_uint_eq(drain(p, 0, x, 40, y, &nb, NULL), 8);
  for (size_t i = 0; i < 8; i++)
    ck_assert_float_eq(x[2 * i], (float)(1000 * i));
  double v;
  ck_ok(nnkit_pipeline_get(&v, p, NNKIT_PIPE_DROP_LAST));
  ck_assert_double_eq(v, 1);
  ck_ok(nnkit_pipeline_get(&v, p, NNKIT_PIPE_PREFETCH));
  ck_assert_double_eq(v, 2);
  /* A batch larger than the set: one batch of everything. */
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_DROP_LAST, 0));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 64));
  ck_assert_uint_eq(drain(p, 0, x, 40, y, &nb, NULL), 10);
  ck_assert_uint_eq(nb, 1);
  nnkit_pipeline_free(p);
  nnkit_dataset_free(ds);
}
END_TEST

/* Consumer that dawdles a pseudo-random while on some batches. */
static void dawdle(unsigned i)
{
  if (i % 3 == 0) {
    struct timespec ts = {0, (long)(i % 7) * 200000L};
    nanosleep(&ts, NULL);
  }
}

START_TEST(pipeline_output_is_the_same_for_every_prefetch_depth)
{
  /* Images with a normalizer and an augmenter; batches must be bitwise
   * equal whatever the prefetch depth or the consumer's timing. */
  const size_t n = 37, c = 1, h = 6, w = 6, per = c * h * w;
  float *x = malloc(n * per * sizeof *x);
  int32_t *l = malloc(n * sizeof *l);
  nnkit__rng r;
  nnkit__rng_init(&r, 1, 1);
  for (size_t i = 0; i < n * per; i++)
    x[i] = (float)(255 * nnkit__rng_uniform(&r));
  for (size_t i = 0; i < n; i++)
    l[i] = (int32_t)(i % 4);
  size_t shape[3] = {c, h, w};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, l, n, shape, 3, 4));
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_ZCA_WHITEN));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_EPSILON, 10));
  ck_ok(nnkit_normalizer_fit(nz, ds));
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 0.8, -20, 20));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_CROP, 0.5, 1, 0));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_NOISE, 0.5, 0.1, 0.1));
  const size_t cap = 2 * n * per;
  float *ref = malloc(cap * sizeof *ref), *got = malloc(cap * sizeof *got);
  int32_t yref[80], ygot[80];
  const double depths[5] = {0, 1, 2, 5, 16};
  for (int di = 0; di < 5; di++) {
    nnkit_pipeline *p = NULL;
    ck_ok(nnkit_pipeline_create(&p, ds));
    ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 5));
    ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_SEED, 77));
    ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_PREFETCH, depths[di]));
    ck_ok(nnkit_pipeline_set_normalizer(p, nz));
    ck_ok(nnkit_pipeline_set_augmenter(p, aug));
    for (uint64_t e = 0; e < 2; e++) {
      ck_ok(nnkit_pipeline_begin_epoch(p, e));
      size_t total = 0, b;
      unsigned k = 0;
      float *dst = di == 0 ? ref : got;
      int32_t *ydst = di == 0 ? yref : ygot;
      for (;;) {
        ck_ok(nnkit_pipeline_next(&b, p));
        if (!b)
          break;
        dawdle(k++);
        memcpy(dst + (e * n + total) * per, nnkit_pipeline_batch_data(p),
               b * per * sizeof *dst);
        memcpy(ydst + e * n + total, nnkit_pipeline_batch_labels(p),
               b * sizeof *ydst);
        total += b;
      }
      ck_assert_uint_eq(total, n);
    }
    if (di > 0) {
      ck_assert_msg(memcmp(ref, got, cap * sizeof *ref) == 0,
                    "prefetch %g differs from prefetch 0", depths[di]);
      ck_assert_int_eq(memcmp(yref, ygot, 2 * n * sizeof *yref), 0);
    }
    nnkit_pipeline_free(p);
  }
  /* And each batch is normalize-then-augment of its samples, keyed by the
   * sample's position in the epoch. */
  size_t order[37];
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  nnkit__rng_init(&r, 77, 1);
  nnkit__rng_shuffle(&r, order, n);
  /* The pipeline normalizes the whole set once, as one transform call. */
  float *tmp = malloc(n * per * sizeof *tmp), *exp_ = malloc(per * sizeof *exp_);
  ck_ok(nnkit_normalizer_transform(nz, x, tmp, n));
  for (size_t i = 0; i < n; i++) {
    nnkit__augment_sample(aug, tmp + order[i] * per, exp_, c, h, w, 77, 1, i);
    ck_assert_int_eq(memcmp(exp_, ref + (n + i) * per, per * sizeof *tmp), 0);
    ck_assert_int_eq(yref[n + i], l[order[i]]);
  }
  free(tmp);
  free(exp_);
  free(ref);
  free(got);
  free(x);
  free(l);
  nnkit_augmenter_free(aug);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(pipeline_allocates_nothing_in_the_steady_state)
{
  const size_t n = 50, d = 16;
  float *x = malloc(n * d * sizeof *x);
  int32_t l[50];
  for (size_t i = 0; i < n * d; i++)
    x[i] = (float)((i * 37) % 101);
  for (size_t i = 0; i < n; i++)
    l[i] = (int32_t)(i % 2);
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, l, n, (size_t[]){1, 4, 4}, 3, 2));
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_ZCA_WHITEN));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_EPSILON, 1));
  ck_ok(nnkit_normalizer_fit(nz, ds));
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_SHEAR_X, 1, -10, 10));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_ERASE, 1, 0.1, 0.2));
  for (int depth = 0; depth <= 3; depth += 3) {
    nnkit_pipeline *p = NULL;
    ck_ok(nnkit_pipeline_create(&p, ds));
    ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 8));
    ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_PREFETCH, depth));
    ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BALANCED, 1));
    ck_ok(nnkit_pipeline_set_normalizer(p, nz));
    ck_ok(nnkit_pipeline_set_augmenter(p, aug));
    float buf[50 * 16];
    drain(p, 0, buf, 50 * 16, NULL, NULL, NULL);
    uint64_t before = nnkit__alloc_count();
    for (uint64_t e = 1; e < 4; e++)
      drain(p, e, buf, 50 * 16, NULL, NULL, NULL);
    ck_assert_uint_eq(nnkit__alloc_count(), before);
    nnkit_pipeline_free(p);
  }
  nnkit_augmenter_free(aug);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(ds);
  free(x);
}
END_TEST

START_TEST(pipeline_balanced_sampling_evens_out_classes)
{
  /* 90 samples of class 0, 10 of class 1, class 2 absent. */
  int32_t l[100];
  for (int i = 0; i < 100; i++)
    l[i] = i < 90 ? 0 : 1;
  nnkit_dataset *src = tagged_set(l, 100, 1), *ds = NULL;
  size_t all[100];
  for (size_t i = 0; i < 100; i++)
    all[i] = i;
  ck_ok(nnkit_dataset_subset(&ds, src, all, 100));
  nnkit_pipeline *p = NULL;
  ck_ok(nnkit_pipeline_create(&p, ds));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BALANCED, 1));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 10));
  float x[100];
  int32_t y[100];
  size_t ones = 0;
  for (uint64_t e = 0; e < 20; e++) {
    ck_assert_uint_eq(drain(p, e, x, 100, y, NULL, NULL), 100);
    for (int i = 0; i < 100; i++) {
      ck_assert_int_eq(y[i], l[(size_t)x[i] / 1000]);
      ones += (size_t)y[i];
    }
  }
  /* 2000 draws, half of class 1 expected (not 10%). */
  ck_assert_uint_gt(ones, 900);
  ck_assert_uint_lt(ones, 1100);
  nnkit_pipeline_free(p);
  nnkit_dataset_free(ds);
  nnkit_dataset_free(src);
}
END_TEST

START_TEST(pipeline_internal_consumer_api_and_targets)
{
  float x[6] = {1, 2, 3, 4, 5, 6}, t[6] = {10, 11, 20, 21, 30, 31};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_targets(&ds, x, t, 3, (size_t[]){2}, 1, 2));
  nnkit_pipeline *p = NULL;
  ck_ok(nnkit_pipeline_create(&p, ds));
  ck_assert_ptr_eq(nnkit__pipeline_dataset(p), ds);
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_SHUFFLE, 0));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 2));
  ck_ok(nnkit__pipeline_begin_epoch(p, 0));
  const float *bx, *bt;
  const int32_t *by;
  size_t b;
  ck_ok(nnkit__pipeline_next(p, &bx, &by, &bt, &b));
  ck_assert_uint_eq(b, 2);
  ck_assert_ptr_null(by);
  ck_assert_float_eq(bx[2], 3.0f);
  ck_assert_float_eq(bt[3], 21.0f);
  ck_assert_ptr_eq(nnkit_pipeline_batch_targets(p), bt);
  ck_assert_ptr_null(nnkit_pipeline_batch_labels(p));
  ck_ok(nnkit__pipeline_next(p, &bx, &by, &bt, &b));
  ck_assert_uint_eq(b, 1);
  ck_assert_float_eq(bt[1], 31.0f);
  ck_ok(nnkit__pipeline_next(p, &bx, &by, &bt, &b));
  ck_assert_uint_eq(b, 0);
  ck_assert_ptr_null(bx);
  ck_assert_ptr_null(nnkit_pipeline_batch_targets(p));
  nnkit_pipeline_free(p);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(pipeline_rejects_bad_use)
{
  int32_t l[4] = {0, 1, 0, 1};
  nnkit_dataset *ds = tagged_set(l, 4, 6);
  nnkit_pipeline *p = NULL;
  size_t b;
  double lo, hi, v;
  ck_fails(nnkit_pipeline_create(&p, NULL), NNKIT_E_INVALID, "ds is NULL");
  ck_assert_ptr_null(p);
  ck_fails(nnkit_pipeline_create(NULL, ds), NNKIT_E_INVALID, "out is NULL");
  ck_ok(nnkit_pipeline_create(&p, ds));
  ck_fails(nnkit_pipeline_next(&b, p), NNKIT_E_STATE,
           "call nnkit_pipeline_begin_epoch() first");
  ck_fails(nnkit_pipeline_next(NULL, p), NNKIT_E_INVALID, "batch_out is NULL");
  int flags = 0;
  ck_ok(nnkit_pipeline_bounds(&lo, &hi, &flags, NNKIT_PIPE_PREFETCH));
  ck_assert_double_eq(lo, 0);
  ck_assert_double_eq(hi, 16);
  ck_assert_int_eq(flags, NNKIT_BOUND_INTEGER);
  ck_ok(nnkit_pipeline_bounds(NULL, NULL, NULL, NNKIT_PIPE_SEED));
  ck_fails(nnkit_pipeline_bounds(&lo, &hi, NULL, (nnkit_pipe_param)42),
           NNKIT_E_INVALID, "unknown setting 42");
  ck_fails(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 0), NNKIT_E_INVALID,
           "pipeline batch size 0 must be an integer in [1, 65536]");
  ck_fails(nnkit_pipeline_set(p, NNKIT_PIPE_SHUFFLE, 0.5), NNKIT_E_INVALID,
           "pipeline shuffle 0.5 must be 0 or 1");
  ck_fails(nnkit_pipeline_get(&v, p, (nnkit_pipe_param)0), NNKIT_E_INVALID,
           "unknown setting 0");
  ck_ok(nnkit_pipeline_get(&v, p, NNKIT_PIPE_BATCH_SIZE));
  ck_assert_double_eq(v, 64);
  ck_ok(nnkit_pipeline_get(&v, p, NNKIT_PIPE_SEED));
  ck_assert_double_eq(v, 0);
  /* drop_last with a batch above the set: no batch. */
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_DROP_LAST, 1));
  ck_assert_uint_eq(nnkit_pipeline_batches_per_epoch(p), 0);
  ck_fails(nnkit_pipeline_begin_epoch(p, 0), NNKIT_E_INVALID,
           "batch size 64 exceeds the 4 samples and drop_last is on");
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 2));
  ck_ok(nnkit_pipeline_begin_epoch(p, 0));
  ck_ok(nnkit_pipeline_next(&b, p));
  ck_assert_uint_eq(b, 2);
  /* A setting change ends the epoch. */
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_SEED, 3));
  ck_assert_ptr_null(nnkit_pipeline_batch_data(p));
  ck_fails(nnkit_pipeline_next(&b, p), NNKIT_E_STATE, "no epoch is running");
  /* Normalizers: fitted, and on this shape. */
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_PCA));
  ck_fails(nnkit_pipeline_set_normalizer(p, nz), NNKIT_E_STATE, "not fitted");
  nnkit_dataset *other = tagged_set(l, 4, 5);
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 2));
  ck_ok(nnkit_normalizer_fit(nz, other));
  ck_fails(nnkit_pipeline_set_normalizer(p, nz), NNKIT_E_SHAPE,
           "fitted on samples of 5 values");
  ck_ok(nnkit_normalizer_fit(nz, ds));
  ck_ok(nnkit_pipeline_set_normalizer(p, nz));
  nnkit_normalizer_free(nz); /* the pipeline holds a copy */
  ck_assert_uint_eq(nnkit_pipeline_sample_size(p), 2);
  ck_assert_uint_eq(nnkit_pipeline_dim(p, 0), 2);
  /* After PCA samples are not images: no augmenter. */
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_HFLIP, 0.5, 0, 0));
  ck_fails(nnkit_pipeline_set_augmenter(p, aug), NNKIT_E_SHAPE,
           "image samples");
  ck_ok(nnkit_pipeline_set_normalizer(p, NULL));
  ck_assert_uint_eq(nnkit_pipeline_sample_size(p), 6);
  ck_fails(nnkit_pipeline_set_augmenter(p, aug), NNKIT_E_SHAPE, "1-D");
  ck_ok(nnkit_pipeline_set_augmenter(p, NULL));
  /* Balanced sampling needs labels. */
  float x[2] = {1, 2};
  nnkit_dataset *u = NULL;
  nnkit_pipeline *q = NULL;
  ck_ok(nnkit_dataset_from_buffers(&u, x, NULL, 2, (size_t[]){1}, 1, 0));
  ck_ok(nnkit_pipeline_create(&q, u));
  ck_fails(nnkit_pipeline_set(q, NNKIT_PIPE_BALANCED, 1), NNKIT_E_INVALID,
           "needs class labels");
  ck_ok(nnkit_pipeline_begin_epoch(q, 0));
  ck_ok(nnkit_pipeline_next(&b, q));
  ck_assert_uint_eq(b, 2);
  ck_assert_ptr_null(nnkit_pipeline_batch_labels(q));
  nnkit_pipeline_free(q);
  nnkit_pipeline_free(NULL);
  ck_assert_uint_eq(nnkit_pipeline_sample_size(NULL), 0);
  ck_assert_uint_eq(nnkit_pipeline_batches_per_epoch(NULL), 0);
  nnkit_augmenter_free(aug);
  nnkit_dataset_free(u);
  nnkit_dataset_free(other);
  nnkit_pipeline_free(p); /* mid-epoch free stops the thread */
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(pipeline_feeds_a_net_that_learns)
{
  /* Two Gaussian blobs in 2-D, standardized by the pipeline. */
  const size_t n = 200;
  float x[400];
  int32_t l[200];
  nnkit__rng r;
  nnkit__rng_init(&r, 2, 0);
  for (size_t i = 0; i < n; i++) {
    l[i] = (int32_t)(i % 2);
    x[2 * i] = (float)(100 + 20 * (l[i] ? 1 : -1) + 8 * nnkit__rng_normal(&r));
    x[2 * i + 1] = (float)(5 + 8 * nnkit__rng_normal(&r));
  }
  nnkit_dataset *ds = NULL;
  size_t d = 2;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, l, n, &d, 1, 2));
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_STANDARDIZE));
  ck_ok(nnkit_normalizer_fit(nz, ds));
  nnkit_pipeline *p = NULL;
  ck_ok(nnkit_pipeline_create(&p, ds));
  ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 20));
  ck_ok(nnkit_pipeline_set_normalizer(p, nz));
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_net_create(&net, &d, 1, 1));
  ck_ok(nnkit_net_add_dense(net, 8));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dense(net, 2));
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.1));
  double first = 0, last = 0;
  for (uint64_t e = 0; e < 15; e++) {
    ck_ok(nnkit_pipeline_begin_epoch(p, e));
    double sum = 0;
    size_t b;
    for (;;) {
      ck_ok(nnkit_pipeline_next(&b, p));
      if (!b)
        break;
      double loss;
      ck_ok(nnkit_net_forward(net, nnkit_pipeline_batch_data(p), b, NULL, 0));
      ck_ok(nnkit_net_backward(net, nnkit_pipeline_batch_labels(p), NULL, &loss));
      ck_ok(nnkit_optimizer_step(opt, net));
      sum += loss * (double)b;
    }
    if (e == 0)
      first = sum / n;
    last = sum / n;
  }
  ck_assert_double_lt(last, 0.5 * first);
  nnkit_dataset_free(ds);
  nnkit_normalizer_free(nz);
  nnkit_pipeline_free(p);
  nnkit_net_free(net);
  nnkit_optimizer_free(opt);
}
END_TEST

/* ---- allocation failures ------------------------------------------------ */

typedef nnkit_status (*op_fn)(const void *arg);

/* The allocation-failure sweep of testutil.h: OK or NOMEM only. */
static void sweep(op_fn op, const void *arg, const char *what)
{
  tu_alloc_sweep(op, arg, what, NNKIT_OK);
}

static nnkit_status op_csv(const void *arg)
{
  nnkit_dataset *ds = SENTINEL;
  nnkit_status st = nnkit_dataset_load_csv(&ds, arg, ',', NNKIT_CSV_HEADER_AUTO,
                                           "kind", 0);
  ck_assert(st == NNKIT_OK ? ds != NULL : ds == NULL);
  nnkit_dataset_free(ds);
  return st;
}

static nnkit_status op_images(const void *arg)
{
  nnkit_dataset *ds = SENTINEL;
  nnkit_status st = nnkit_dataset_load_image_folder(&ds, arg, 3, 5, 5, 1);
  ck_assert(st == NNKIT_OK ? ds != NULL : ds == NULL);
  nnkit_dataset_free(ds);
  return st;
}

static nnkit_status op_sets(const void *arg)
{
  const nnkit_dataset *ds = arg;
  nnkit_dataset *a = SENTINEL, *b = SENTINEL, *c = SENTINEL;
  nnkit_status st = nnkit_dataset_split(&a, &b, ds, 0.25, 1);
  if (st != NNKIT_OK) {
    ck_assert(a == NULL && b == NULL);
    return st;
  }
  const nnkit_dataset *parts[2] = {a, b};
  st = nnkit_dataset_concat(&c, parts, 2);
  ck_assert(st == NNKIT_OK ? c != NULL : c == NULL);
  nnkit_dataset_free(a);
  nnkit_dataset_free(b);
  nnkit_dataset_free(c);
  if (st != NNKIT_OK)
    return st;
  st = nnkit_dataset_fold(&a, &b, ds, 3, 1, 2);
  ck_assert(st == NNKIT_OK ? a && b : !a && !b);
  nnkit_dataset_free(a);
  nnkit_dataset_free(b);
  if (st != NNKIT_OK)
    return st;
  uint32_t f[30];
  st = nnkit_split_kfold(f, 30, ds, 3, 0);
  if (st == NNKIT_OK)
    st = nnkit_split_holdout(f, 30, ds, 0.5, 0);
  if (st == NNKIT_OK) {
    const char *names[3] = {"a", "b", "c"};
    nnkit_dataset *copy = NULL;
    const nnkit_dataset *one[1] = {ds};
    st = nnkit_dataset_concat(&copy, one, 1);
    if (st == NNKIT_OK)
      st = nnkit_dataset_set_class_names(copy, names, 3);
    nnkit_dataset_free(copy);
  }
  return st;
}

static nnkit_status op_normalizers(const void *arg)
{
  const nnkit_dataset *ds = arg;
  const nnkit_norm_kind kinds[4] = {NNKIT_NORM_CHANNEL_MEAN,
                                    NNKIT_NORM_STANDARDIZE,
                                    NNKIT_NORM_PCA_WHITEN,
                                    NNKIT_NORM_ZCA_WHITEN};
  nnkit_status st = NNKIT_OK;
  for (int i = 0; i < 4 && st == NNKIT_OK; i++) {
    nnkit_normalizer *nz = NULL, *back = NULL;
    st = nnkit_normalizer_create(&nz, kinds[i]);
    if (st != NNKIT_OK)
      break;
    if (kinds[i] == NNKIT_NORM_PCA_WHITEN)
      nnkit_normalizer_set(nz, NNKIT_NORM_FIT_SAMPLES, 20);
    st = nnkit_normalizer_fit(nz, ds);
    if (st == NNKIT_OK) {
      float y[30 * 12];
      st = nnkit_normalizer_transform(nz, nnkit_dataset_data(ds), y, 30);
    }
    if (st == NNKIT_OK)
      st = nnkit_normalizer_compare(NULL, NULL, nz, ds);
    if (st == NNKIT_OK) {
      size_t dims[3], nd;
      nnkit_normalizer_shape(dims, 3, &nd, nz);
      float m[12], s[12], p[144];
      size_t lm = nnkit_normalizer_array_len(nz, NNKIT_NORM_ARRAY_MEAN);
      size_t ls = nnkit_normalizer_array_len(nz, NNKIT_NORM_ARRAY_SCALE);
      size_t lp = nnkit_normalizer_array_len(nz, NNKIT_NORM_ARRAY_PROJECTION);
      nnkit_normalizer_get_array(m, 12, nz, NNKIT_NORM_ARRAY_MEAN);
      if (ls)
        nnkit_normalizer_get_array(s, 12, nz, NNKIT_NORM_ARRAY_SCALE);
      if (lp)
        nnkit_normalizer_get_array(p, 144, nz, NNKIT_NORM_ARRAY_PROJECTION);
      st = nnkit_normalizer_from_arrays(&back, kinds[i], dims, nd,
                                        nnkit_normalizer_out_size(nz), m, lm,
                                        ls ? s : NULL, ls, lp ? p : NULL, lp);
      ck_assert(st == NNKIT_OK ? back != NULL : back == NULL);
    }
    if (st == NNKIT_OK) {
      nnkit_dataset *copy = NULL;
      const nnkit_dataset *one[1] = {ds};
      st = nnkit_dataset_concat(&copy, one, 1);
      if (st == NNKIT_OK)
        st = nnkit_normalizer_apply(nz, copy);
      nnkit_dataset_free(copy);
    }
    nnkit_normalizer_free(back);
    nnkit_normalizer_free(nz);
  }
  return st;
}

static nnkit_status op_pipeline(const void *arg)
{
  const nnkit_dataset *ds = arg;
  nnkit_normalizer *nz = NULL;
  nnkit_augmenter *aug = NULL;
  nnkit_pipeline *p = NULL;
  nnkit_status st = nnkit_normalizer_create(&nz, NNKIT_NORM_ZCA_WHITEN);
  if (st == NNKIT_OK)
    st = nnkit_normalizer_fit(nz, ds);
  if (st == NNKIT_OK)
    st = nnkit_augmenter_create(&aug);
  if (st == NNKIT_OK)
    st = nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 1, -10, 10);
  if (st == NNKIT_OK) {
    float buf[3 * 12];
    st = nnkit_augmenter_apply(aug, buf, 1, (size_t[]){3, 2, 2}, 3, 0, 0, 0);
  }
  if (st == NNKIT_OK)
    st = nnkit_pipeline_create(&p, ds);
  if (st == NNKIT_OK)
    st = nnkit_pipeline_set(p, NNKIT_PIPE_BALANCED, 1);
  if (st == NNKIT_OK)
    st = nnkit_pipeline_set_normalizer(p, nz);
  if (st == NNKIT_OK)
    st = nnkit_pipeline_set_augmenter(p, aug);
  if (st == NNKIT_OK)
    st = nnkit_pipeline_begin_epoch(p, 0);
  size_t b = 1;
  while (st == NNKIT_OK && b)
    st = nnkit_pipeline_next(&b, p);
  nnkit_pipeline_free(p);
  nnkit_augmenter_free(aug);
  nnkit_normalizer_free(nz);
  return st;
}

START_TEST(allocation_failures_are_clean)
{
  char path[512], root[512], p[1024];
  csv_file(path, sizeof path, "alloc.csv",
           "a,b,kind\n1,2,x\n3,4,y\n5,6,x\n7,8,\"z z\"\n");
  sweep(op_csv, path, "load_csv");
  image_tree(root, sizeof root, "alloc_tree");
  img_path(p, sizeof p, root, "dog", "big.png");
  png_file(p, 9, 7, 3, 1); /* resized */
  sweep(op_images, root, "load_image_folder");
  int32_t l[30];
  float x[30 * 12];
  for (int i = 0; i < 30; i++)
    l[i] = i % 3;
  for (int i = 0; i < 30 * 12; i++)
    x[i] = (float)((i * 7919) % 97) / 10.0f;
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, l, 30, (size_t[]){3, 2, 2}, 3, 3));
  sweep(op_sets, ds, "splits and concat");
  sweep(op_normalizers, ds, "normalizers");
  sweep(op_pipeline, ds, "pipeline");
  nnkit_dataset_free(ds);
  /* The same over a compact (byte) set: its decoding buffers. */
  nnkit_dataset *b = NULL, *f = NULL;
  tu_compact_twins(&b, &f, 30, (size_t[]){3, 2, 2}, 3, 3, 9);
  sweep(op_sets, b, "splits and concat, bytes");
  sweep(op_pipeline, b, "pipeline, bytes");
  sweep(op_normalizers, b, "normalizers, bytes");
  nnkit_dataset_free(b);
  nnkit_dataset_free(f);
}
END_TEST

/* ---- compact (byte) sets ------------------------------------------------ */

/* Normalizers fitted on a set of bytes equal those fitted on the same
 * values as floats; applying one turns a byte set into floats; concat
 * mixes both forms. */
START_TEST(compact_sets_normalize_and_concat_as_float_sets)
{
  const size_t shape[3] = {3, 4, 4};
  nnkit_dataset *b = NULL, *f = NULL;
  tu_compact_twins(&b, &f, 90, shape, 3, 3, 31);
  ck_ok(nnkit_dataset_scale(b, 1.0f / 255, 0));
  ck_ok(nnkit_dataset_scale(f, 1.0f / 255, 0));
  const nnkit_norm_kind kinds[3] = {NNKIT_NORM_STANDARDIZE,
                                    NNKIT_NORM_CHANNEL_MEAN,
                                    NNKIT_NORM_PCA_WHITEN};
  const nnkit_norm_array arrays[3] = {NNKIT_NORM_ARRAY_MEAN, NNKIT_NORM_ARRAY_SCALE,
                                      NNKIT_NORM_ARRAY_PROJECTION};
  size_t all[90];
  for (size_t i = 0; i < 90; i++)
    all[i] = i;
  for (int k = 0; k < 3; k++) {
    nnkit_normalizer *na = NULL, *nf = NULL;
    ck_ok(nnkit_normalizer_create(&na, kinds[k]));
    ck_ok(nnkit_normalizer_create(&nf, kinds[k]));
    ck_ok(nnkit_normalizer_set(na, NNKIT_NORM_FIT_SAMPLES, 70));
    ck_ok(nnkit_normalizer_set(nf, NNKIT_NORM_FIT_SAMPLES, 70));
    ck_ok(nnkit_normalizer_fit(na, b));
    ck_ok(nnkit_normalizer_fit(nf, f));
    for (int a = 0; a < 3; a++) {
      size_t len = nnkit_normalizer_array_len(na, arrays[a]);
      ck_assert_uint_eq(len, nnkit_normalizer_array_len(nf, arrays[a]));
      if (!len)
        continue;
      float *va = malloc(len * sizeof *va), *vf = malloc(len * sizeof *vf);
      ck_ok(nnkit_normalizer_get_array(va, len, na, arrays[a]));
      ck_ok(nnkit_normalizer_get_array(vf, len, nf, arrays[a]));
      ck_assert_msg(memcmp(va, vf, len * sizeof *va) == 0, "kind %d array %d",
                    (int)kinds[k], a);
      free(va);
      free(vf);
    }
    nnkit_dataset *cb = NULL, *cf = NULL;
    ck_ok(nnkit_dataset_subset(&cb, b, all, 90));
    ck_ok(nnkit_dataset_subset(&cf, f, all, 90));
    ck_assert_ptr_nonnull(cb->x8);
    ck_ok(nnkit_normalizer_apply(na, cb));
    ck_ok(nnkit_normalizer_apply(nf, cf));
    ck_assert_ptr_null(cb->x8); /* normalized values are no longer bytes */
    tu_same_values(cb, cf);
    nnkit_dataset_free(cb);
    nnkit_dataset_free(cf);
    nnkit_normalizer_free(na);
    nnkit_normalizer_free(nf);
  }
  nnkit_dataset *m1 = NULL, *m2 = NULL;
  const nnkit_dataset *p1[2] = {b, f}, *p2[2] = {f, f};
  ck_ok(nnkit_dataset_concat(&m1, p1, 2));
  ck_ok(nnkit_dataset_concat(&m2, p2, 2));
  ck_assert_ptr_null(m1->x8); /* mixed forms: floats */
  tu_same_values(m1, m2);
  nnkit_dataset_free(m1);
  nnkit_dataset_free(m2);
  /* Bytes with one table stay bytes; with different tables, floats. */
  const nnkit_dataset *p3[2] = {b, b};
  ck_ok(nnkit_dataset_concat(&m1, p3, 2));
  ck_assert_ptr_nonnull(m1->x8);
  ck_assert_ptr_null(m1->x);
  ck_ok(nnkit_dataset_concat(&m2, p2, 2));
  tu_same_values(m1, m2);
  nnkit_dataset_free(m2);
  nnkit_dataset *b2 = NULL;
  size_t all2[2] = {0, 1};
  ck_ok(nnkit_dataset_subset(&b2, b, all2, 2));
  ck_ok(nnkit_dataset_scale(b2, 2.0f, 0));
  const nnkit_dataset *p4[2] = {b, b2};
  ck_ok(nnkit_dataset_concat(&m2, p4, 2));
  ck_assert_ptr_null(m2->x8);
  ck_assert_float_eq(nnkit__ds_at(m2, 90 * 48), 2.0f * nnkit__ds_at(b, 0));
  nnkit_dataset_free(m1);
  nnkit_dataset_free(m2);
  nnkit_dataset_free(b2);
  nnkit_dataset_free(b);
  nnkit_dataset_free(f);
}
END_TEST

/* A pipeline over a set of bytes hands out the float set's batches: plain,
 * normalized (in the normalizer's chunks) and augmented. */
START_TEST(compact_pipeline_batches_equal_float_batches)
{
  const size_t shape[3] = {1, 6, 6};
  enum { N = 300, PER = 36 };
  nnkit_dataset *b = NULL, *f = NULL;
  tu_compact_twins(&b, &f, N, shape, 3, 4, 41);
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_PCA_WHITEN));
  ck_ok(nnkit_normalizer_fit(nz, f));
  nnkit_augmenter *aug = NULL;
  ck_ok(nnkit_augmenter_create(&aug));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_HFLIP, 0.5, 0, 0));
  ck_ok(nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 1.0, -15, 15));
  float *xa = malloc(N * PER * sizeof *xa), *xb = malloc(N * PER * sizeof *xb);
  int32_t ya[N], yb[N];
  for (int mode = 0; mode < 3; mode++) {
    nnkit_pipeline *pa = NULL, *pb = NULL;
    ck_ok(nnkit_pipeline_create(&pa, b));
    ck_ok(nnkit_pipeline_create(&pb, f));
    for (int k = 0; k < 2; k++) {
      nnkit_pipeline *p = k ? pb : pa;
      ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 32));
      ck_ok(nnkit_pipeline_set(p, NNKIT_PIPE_SEED, 3));
      if (mode == 1)
        ck_ok(nnkit_pipeline_set_normalizer(p, nz));
      if (mode == 2)
        ck_ok(nnkit_pipeline_set_augmenter(p, aug));
    }
    size_t na = drain(pa, 2, xa, N * PER, ya, NULL, NULL);
    size_t nb = drain(pb, 2, xb, N * PER, yb, NULL, NULL);
    ck_assert_uint_eq(na, N);
    ck_assert_uint_eq(nb, N);
    size_t per = nnkit_pipeline_sample_size(pa);
    ck_assert_msg(memcmp(xa, xb, N * per * sizeof *xa) == 0, "mode %d", mode);
    ck_assert_mem_eq(ya, yb, sizeof ya);
    nnkit_pipeline_free(pa);
    nnkit_pipeline_free(pb);
  }
  ck_assert_ptr_null(b->x); /* the pipeline decoded; no float copy */
  free(xa);
  free(xb);
  nnkit_augmenter_free(aug);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(b);
  nnkit_dataset_free(f);
}
END_TEST

static Suite *pipeline_suite(void)
{
  Suite *s = suite_create("pipeline");
  TCase *t = tcase_create("csv");
  tcase_add_test(t, csv_header_string_labels_and_names);
  tcase_add_test(t, csv_integer_labels_by_index_without_header);
  tcase_add_test(t, csv_delimiters_spaces_blank_lines_crlf);
  tcase_add_test(t, csv_numbers_ignore_the_process_locale);
  tcase_add_test(t, csv_rejects_bad_files_naming_row_and_column);
  tcase_add_test(t, csv_rejects_bad_arguments_and_paths);
  tcase_add_test(t, csv_reads_large_files_in_chunks);
  suite_add_tcase(s, t);

  t = tcase_create("images");
  tcase_add_test(t, images_load_rgb_and_gray_in_sorted_order);
  tcase_add_test(t, images_resize_bilinear_or_reject_other_sizes);
  tcase_add_test(t, images_reject_bad_trees_naming_paths);
  tcase_add_test(t, images_reject_empty_images);
  tcase_add_test(t, images_refuse_bombs_before_decoding);
  tcase_add_test(t, images_decode_jpeg_with_libjpeg);
  suite_add_tcase(s, t);

  t = tcase_create("datasets");
  tcase_add_test(t, concat_joins_parts_and_keeps_names);
  tcase_add_test(t, concat_rejects_mismatched_parts);
  tcase_add_test(t, class_names_set_get_and_survive_subsets);
  tcase_add_test(t, holdout_is_stratified_and_deterministic);
  tcase_add_test(t, kfold_folds_are_disjoint_covering_and_stratified);
  tcase_add_test(t, splits_reject_bad_requests);
  suite_add_tcase(s, t);

  t = tcase_create("normalizers");
  tcase_add_test(t, standardize_matches_scikit_learn);
  tcase_add_test(t, pca_matches_scikit_learn_up_to_sign);
  tcase_add_test(t, pca_whitening_matches_scikit_learn);
  tcase_add_test(t, zca_equals_its_formula);
  tcase_add_test(t, channel_mean_and_mean_image_on_images);
  tcase_add_test(t, normalizer_settings_bounds_and_errors);
  tcase_add_test(t, normalizer_fits_on_a_subset_and_reports_the_gap);
  tcase_add_test(t, normalizer_round_trips_through_its_arrays);
  suite_add_tcase(s, t);

  t = tcase_create("augment");
  tcase_add_test(t, identity_parameters_change_nothing);
  tcase_add_test(t, flips_mirror_pixels_exactly);
  tcase_add_test(t, rotation_lands_where_the_transform_says);
  tcase_add_test(t, shear_scale_and_stretch_land_where_they_say);
  tcase_add_test(t, random_geometry_is_one_composed_warp);
  tcase_add_test(t, warp_matches_a_reference_bilinear_sampler);
  tcase_add_test(t, value_transforms_do_what_they_say);
  tcase_add_test(t, augmentation_probability_and_determinism);
  tcase_add_test(t, augmenter_rejects_bad_parameters_and_shapes);
  suite_add_tcase(s, t);

  t = tcase_create("pipeline");
  tcase_add_test(t, pipeline_batches_cover_the_epoch);
  tcase_add_test(t, pipeline_output_is_the_same_for_every_prefetch_depth);
  tcase_add_test(t, pipeline_allocates_nothing_in_the_steady_state);
  tcase_add_test(t, pipeline_balanced_sampling_evens_out_classes);
  tcase_add_test(t, pipeline_internal_consumer_api_and_targets);
  tcase_add_test(t, pipeline_rejects_bad_use);
  tcase_add_test(t, pipeline_feeds_a_net_that_learns);
  tcase_add_test(t, compact_sets_normalize_and_concat_as_float_sets);
  tcase_add_test(t, compact_pipeline_batches_equal_float_batches);
  suite_add_tcase(s, t);

  t = tcase_create("alloc");
  tcase_set_timeout(t, 300);
  tcase_add_test(t, allocation_failures_are_clean);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return nnkit_test_run(pipeline_suite()); }
