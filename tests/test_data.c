/* Datasets: buffers, subsets, scaling, accessors; IDX files written by the
 * test (plain and gzip, ubyte and float, 1-4 dims), round trips through
 * nnkit_dataset_save_idx, and rejection of every kind of bad file. */
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "testutil.h"

static char tmp_path[512];

/* A unique path under the build's test directory. */
static const char *tmpfile_named(const char *name)
{
  snprintf(tmp_path, sizeof tmp_path, "%s/test_data_%ld_%s", NNKIT_TEST_TMPDIR,
           (long)getpid(), name);
  return tmp_path;
}

/* Writes bytes to path, gzip-compressed when gz != 0. */
static void write_bytes(const char *path, const unsigned char *b, size_t n, int gz)
{
  if (gz) {
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, b, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(f), Z_OK);
  } else {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
  }
}

/* Builds an IDX image in buf: header for dims, then values (ubyte or
 * big-endian float). Returns its length. */
static size_t make_idx(unsigned char *buf, int type, int ndim, const uint32_t *dims,
                       const float *values)
{
  size_t n = 1, k = 0;
  buf[k++] = 0;
  buf[k++] = 0;
  buf[k++] = (unsigned char)type;
  buf[k++] = (unsigned char)ndim;
  for (int i = 0; i < ndim; i++) {
    buf[k++] = (unsigned char)(dims[i] >> 24);
    buf[k++] = (unsigned char)(dims[i] >> 16);
    buf[k++] = (unsigned char)(dims[i] >> 8);
    buf[k++] = (unsigned char)dims[i];
    n *= dims[i];
  }
  for (size_t i = 0; values && i < n; i++) {
    if (type == 0x08) {
      buf[k++] = (unsigned char)values[i];
    } else {
      uint32_t bits;
      memcpy(&bits, &values[i], 4);
      buf[k++] = (unsigned char)(bits >> 24);
      buf[k++] = (unsigned char)(bits >> 16);
      buf[k++] = (unsigned char)(bits >> 8);
      buf[k++] = (unsigned char)bits;
    }
  }
  return k;
}

START_TEST(from_buffers_copies_and_checks)
{
  float x[6] = {1, 2, 3, 4, 5, 6};
  int32_t y[3] = {0, 2, 1};
  size_t shape[1] = {2};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, 3, shape, 1, 0));
  x[0] = 99; /* the dataset holds its own copy */
  y[0] = 7;
  ck_assert_uint_eq(nnkit_dataset_count(ds), 3);
  ck_assert_uint_eq(nnkit_dataset_ndim(ds), 1);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 2);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 1), 0);
  ck_assert_uint_eq(nnkit_dataset_sample_size(ds), 2);
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 3); /* max label + 1 */
  ck_assert_uint_eq(nnkit_dataset_target_dim(ds), 0);
  ck_assert_float_eq(nnkit_dataset_data(ds)[0], 1.0f);
  ck_assert_int_eq(nnkit_dataset_labels(ds)[0], 0);
  ck_assert_ptr_null(nnkit_dataset_targets(ds));
  size_t counts[3];
  ck_ok(nnkit_dataset_class_counts(counts, 3, ds));
  ck_assert_uint_eq(counts[0] + counts[1] + counts[2], 3);
  ck_assert_uint_eq(counts[2], 1);
  ck_fails(nnkit_dataset_class_counts(counts, 2, ds), NNKIT_E_INVALID, "3 classes");
  ck_ok(nnkit_dataset_scale(ds, 0.5f, 1.0f));
  ck_assert_float_eq(nnkit_dataset_data(ds)[1], 2.0f);
  ck_fails(nnkit_dataset_scale(ds, INFINITY, 0), NNKIT_E_INVALID, "finite");
  nnkit_dataset_free(ds);
  nnkit_dataset_free(NULL);
}
END_TEST

START_TEST(from_buffers_rejects_bad_input)
{
  float x[6] = {1, 2, 3, 4, 5, 6};
  int32_t y[3] = {0, 5, 1};
  size_t shape[1] = {2}, zero[1] = {0};
  nnkit_dataset *ds = (nnkit_dataset *)1;
  ck_fails(nnkit_dataset_from_buffers(&ds, x, y, 3, shape, 1, 3), NNKIT_E_INVALID,
           "sample 1 has label 5");
  ck_assert_ptr_null(ds);
  y[1] = -1;
  ck_fails(nnkit_dataset_from_buffers(&ds, x, y, 3, shape, 1, 0), NNKIT_E_INVALID,
           "negative label");
  y[1] = 1;
  x[3] = NAN;
  ck_fails(nnkit_dataset_from_buffers(&ds, x, y, 3, shape, 1, 3), NNKIT_E_INVALID,
           "sample 1, value 1 is NaN");
  x[3] = 4;
  ck_fails(nnkit_dataset_from_buffers(&ds, x, y, 0, shape, 1, 3), NNKIT_E_INVALID,
           "count is 0");
  ck_fails(nnkit_dataset_from_buffers(&ds, x, y, 3, zero, 1, 3), NNKIT_E_INVALID,
           "dimension 0");
  ck_fails(nnkit_dataset_from_buffers(&ds, x, y, 3, shape, 4, 3), NNKIT_E_INVALID,
           "1 to 3");
  ck_fails(nnkit_dataset_from_buffers(&ds, NULL, y, 3, shape, 1, 3), NNKIT_E_INVALID,
           "x is NULL");
  ck_assert_ptr_null(ds);
  /* unlabelled is fine */
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, 3, shape, 1, 0));
  ck_assert_ptr_null(nnkit_dataset_labels(ds));
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 0);
  size_t counts[1];
  ck_fails(nnkit_dataset_class_counts(counts, 1, ds), NNKIT_E_INVALID, "no labels");
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(from_targets_and_subset)
{
  float x[8] = {0, 1, 2, 3, 4, 5, 6, 7}, t[4] = {10, 11, 12, 13};
  size_t shape[1] = {2};
  nnkit_dataset *ds = NULL, *sub = NULL;
  ck_ok(nnkit_dataset_from_targets(&ds, x, t, 4, shape, 1, 1));
  ck_assert_uint_eq(nnkit_dataset_target_dim(ds), 1);
  ck_assert_float_eq(nnkit_dataset_targets(ds)[3], 13.0f);
  size_t idx[3] = {3, 0, 3};
  ck_ok(nnkit_dataset_subset(&sub, ds, idx, 3));
  ck_assert_uint_eq(nnkit_dataset_count(sub), 3);
  ck_assert_float_eq(nnkit_dataset_data(sub)[0], 6.0f);
  ck_assert_float_eq(nnkit_dataset_data(sub)[3], 1.0f);
  ck_assert_float_eq(nnkit_dataset_targets(sub)[1], 10.0f);
  nnkit_dataset_free(sub);
  size_t bad[2] = {1, 4};
  sub = (nnkit_dataset *)1;
  ck_fails(nnkit_dataset_subset(&sub, ds, bad, 2), NNKIT_E_INVALID, "indices[1] = 4");
  ck_assert_ptr_null(sub);
  t[2] = NAN;
  nnkit_dataset *d2 = NULL;
  ck_fails(nnkit_dataset_from_targets(&d2, x, t, 4, shape, 1, 1), NNKIT_E_INVALID,
           "target 0 is not finite");
  ck_fails(nnkit_dataset_from_targets(&d2, x, t, 4, shape, 1, 0), NNKIT_E_INVALID,
           "target_dim is 0");
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(idx_reads_every_layout)
{
  static unsigned char buf[4096];
  float v[24];
  for (int i = 0; i < 24; i++)
    v[i] = (float)(i * 10);
  struct {
    int type, ndim;
    uint32_t dims[4];
    size_t sndim, s0, s1, s2;
  } cases[] = {
    {0x08, 1, {24}, 1, 1, 0, 0},
    {0x08, 2, {4, 6}, 1, 6, 0, 0},
    {0x08, 3, {2, 3, 4}, 3, 1, 3, 4},
    {0x0D, 4, {2, 3, 2, 2}, 3, 3, 2, 2},
  };
  for (int gz = 0; gz < 2; gz++)
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
      size_t n = make_idx(buf, cases[c].type, cases[c].ndim, cases[c].dims, v);
      const char *p = tmpfile_named("layout.idx");
      write_bytes(p, buf, n, gz);
      nnkit_dataset *ds = NULL;
      ck_ok(nnkit_dataset_load_idx(&ds, p, NULL, 0));
      ck_assert_uint_eq(nnkit_dataset_count(ds), cases[c].dims[0]);
      ck_assert_uint_eq(nnkit_dataset_ndim(ds), cases[c].sndim);
      ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), cases[c].s0);
      if (cases[c].sndim == 3) {
        ck_assert_uint_eq(nnkit_dataset_dim(ds, 1), cases[c].s1);
        ck_assert_uint_eq(nnkit_dataset_dim(ds, 2), cases[c].s2);
      }
      for (int i = 0; i < 24; i++)
        ck_assert_float_eq(nnkit_dataset_data(ds)[i], v[i]);
      nnkit_dataset_free(ds);
      unlink(p);
    }
}
END_TEST

/* Writes images (N x 2 x 2 ubyte) and labels files; returns the paths. */
static void write_pair(char *img, char *lab, uint32_t nimg, uint32_t nlab,
                       const unsigned char *labels, int gz)
{
  static unsigned char buf[4096];
  float v[64];
  for (int i = 0; i < 64; i++)
    v[i] = (float)i;
  uint32_t d[3] = {nimg, 2, 2};
  size_t n = make_idx(buf, 0x08, 3, d, v);
  strcpy(img, tmpfile_named("pair_img.idx"));
  write_bytes(img, buf, n, gz);
  float lv[16];
  for (uint32_t i = 0; i < nlab; i++)
    lv[i] = labels[i];
  uint32_t dl[1] = {nlab};
  n = make_idx(buf, 0x08, 1, dl, lv);
  strcpy(lab, tmpfile_named("pair_lab.idx"));
  write_bytes(lab, buf, n, gz);
}

START_TEST(idx_labels)
{
  char img[512], lab[512];
  unsigned char labels[4] = {3, 0, 1, 3};
  write_pair(img, lab, 4, 4, labels, 1);
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_load_idx(&ds, img, lab, 0));
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 4);
  ck_assert_int_eq(nnkit_dataset_labels(ds)[3], 3);
  ck_assert_float_eq(nnkit_dataset_data(ds)[5], 5.0f);
  nnkit_dataset_free(ds);
  ds = (nnkit_dataset *)1;
  ck_fails(nnkit_dataset_load_idx(&ds, img, lab, 3), NNKIT_E_INVALID,
           "sample 0 has label 3 outside [0, 3)");
  ck_assert_ptr_null(ds);
  write_pair(img, lab, 4, 3, labels, 0);
  ck_fails(nnkit_dataset_load_idx(&ds, img, lab, 0), NNKIT_E_FORMAT,
           "has 3 labels but");
  ck_fails(nnkit_dataset_load_idx(&ds, img, img, 0), NNKIT_E_FORMAT,
           "must be 1-dimensional");
  unlink(img);
  unlink(lab);
}
END_TEST

START_TEST(idx_rejects_bad_files)
{
  static unsigned char buf[4096];
  float v[64] = {0};
  uint32_t d[3] = {4, 2, 2};
  size_t n = make_idx(buf, 0x08, 3, d, v);
  const char *p = tmpfile_named("bad.idx");
  nnkit_dataset *ds = (nnkit_dataset *)1;

  ck_fails(nnkit_dataset_load_idx(&ds, "/nonexistent/x.idx", NULL, 0), NNKIT_E_IO,
           "/nonexistent/x.idx: cannot open");
  ck_assert_ptr_null(ds);

  buf[0] = 1; /* wrong magic */
  write_bytes(p, buf, n, 0);
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "not an IDX file");
  buf[0] = 0;

  buf[2] = 0x0B; /* int16: unsupported */
  write_bytes(p, buf, n, 0);
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "type 0x0b");
  buf[2] = 0x08;

  write_bytes(p, buf, n - 3, 0); /* truncated plain */
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "truncated");
  write_bytes(p, buf, n - 3, 1); /* truncated payload inside a valid gzip */
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "truncated");
  write_bytes(p, buf, 6, 0); /* ends inside the dimensions */
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "truncated");

  /* A gzip stream cut short. */
  write_bytes(p, buf, n, 1);
  FILE *f = fopen(p, "rb");
  unsigned char gzbuf[4096];
  size_t gzn = fread(gzbuf, 1, sizeof gzbuf, f);
  fclose(f);
  write_bytes(p, gzbuf, gzn / 2, 0);
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "truncated");

  buf[n] = 7; /* trailing garbage */
  write_bytes(p, buf, n + 1, 0);
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "trailing");

  uint32_t huge[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
  size_t hn = make_idx(buf, 0x08, 4, huge, NULL);
  write_bytes(p, buf, hn, 0);
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "corrupt");

  uint32_t big[3] = {1000000, 28, 28}; /* fits size_t but not this file */
  hn = make_idx(buf, 0x08, 3, big, NULL);
  write_bytes(p, buf, hn, 1);
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "truncated");

  uint32_t zero[2] = {3, 0};
  hn = make_idx(buf, 0x08, 2, zero, NULL);
  write_bytes(p, buf, hn, 0);
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "size 0");

  uint32_t one[1] = {2};
  float nanv[2] = {1, NAN};
  hn = make_idx(buf, 0x0D, 1, one, nanv);
  write_bytes(p, buf, hn, 0);
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "value 1 is NaN");

  write_bytes(p, buf, 0, 0); /* empty file */
  ck_fails(nnkit_dataset_load_idx(&ds, p, NULL, 0), NNKIT_E_FORMAT, "truncated");
  ck_assert_ptr_null(ds);
  unlink(p);
}
END_TEST

START_TEST(save_idx_round_trips_atomically)
{
  float x[12], y[12];
  int32_t lab[3] = {2, 0, 1};
  for (int i = 0; i < 12; i++) {
    x[i] = (float)(i * 20); /* integers 0..220: written as bytes */
    y[i] = (float)i * 0.5f - 1.0f; /* not bytes: written as float */
  }
  size_t img_shape[3] = {1, 2, 2}, flat[1] = {4};
  for (int gz = 0; gz < 2; gz++) {
    nnkit_dataset *a = NULL, *b = NULL, *back = NULL;
    ck_ok(nnkit_dataset_from_buffers(&a, x, lab, 3, img_shape, 3, 3));
    ck_ok(nnkit_dataset_from_buffers(&b, y, NULL, 3, flat, 1, 0));
    char ip[512], lp[512];
    strcpy(ip, tmpfile_named("rt_img.idx"));
    strcpy(lp, tmpfile_named("rt_lab.idx"));
    ck_ok(nnkit_dataset_save_idx(a, ip, lp, gz));
    FILE *f = fopen(ip, "rb");
    unsigned char head[2];
    ck_assert_uint_eq(fread(head, 1, 2, f), 2);
    fclose(f);
    ck_assert_int_eq(head[0] == 0x1f && head[1] == 0x8b, gz);
    ck_ok(nnkit_dataset_load_idx(&back, ip, lp, 3));
    ck_assert_uint_eq(nnkit_dataset_ndim(back), 3);
    ck_assert_mem_eq(nnkit_dataset_data(back), x, sizeof x);
    ck_assert_mem_eq(nnkit_dataset_labels(back), lab, sizeof lab);
    nnkit_dataset_free(back);
    ck_ok(nnkit_dataset_save_idx(b, ip, NULL, gz));
    ck_ok(nnkit_dataset_load_idx(&back, ip, NULL, 0));
    ck_assert_mem_eq(nnkit_dataset_data(back), y, sizeof y);
    ck_assert_uint_eq(nnkit_dataset_dim(back, 0), 4);
    nnkit_dataset_free(back);
    ck_fails(nnkit_dataset_save_idx(b, ip, lp, gz), NNKIT_E_INVALID, "no labels");
    /* A directory that does not exist: an error and no file anywhere. */
    ck_fails(nnkit_dataset_save_idx(a, "/nonexistent-dir/x.idx", NULL, gz), NNKIT_E_IO,
             "/nonexistent-dir/x.idx");
    struct stat sb;
    ck_assert_int_ne(stat("/nonexistent-dir/x.idx", &sb), 0);
    unlink(ip);
    unlink(lp);
    nnkit_dataset_free(a);
    nnkit_dataset_free(b);
  }
}
END_TEST

START_TEST(allocation_failures_leave_nothing)
{
  static unsigned char buf[4096];
  float v[64];
  for (int i = 0; i < 64; i++)
    v[i] = (float)i;
  uint32_t d[3] = {4, 4, 4};
  size_t n = make_idx(buf, 0x08, 3, d, v);
  const char *p = tmpfile_named("nomem.idx");
  write_bytes(p, buf, n, 1);
  int saw_nomem = 0, saw_ok = 0;
  for (uint64_t k = 1; k < 20; k++) {
    nnkit_dataset *ds = (nnkit_dataset *)1;
    nnkit__alloc_fail_after(k);
    nnkit_status st = nnkit_dataset_load_idx(&ds, p, NULL, 0);
    nnkit__alloc_fail_after(0);
    ck_assert(st == NNKIT_OK || st == NNKIT_E_NOMEM);
    if (st == NNKIT_E_NOMEM) {
      ck_assert_ptr_null(ds);
      saw_nomem = 1;
    } else {
      saw_ok = 1;
    }
    nnkit_dataset_free(st == NNKIT_OK ? ds : NULL);
    size_t shape[1] = {4};
    int32_t y[4] = {0, 1, 0, 1};
    nnkit__alloc_fail_after(k);
    st = nnkit_dataset_from_buffers(&ds, v, y, 4, shape, 1, 2);
    nnkit__alloc_fail_after(0);
    ck_assert(st == NNKIT_OK || st == NNKIT_E_NOMEM);
    nnkit_dataset_free(st == NNKIT_OK ? ds : NULL);
  }
  ck_assert(saw_nomem && saw_ok);
  unlink(p);
}
END_TEST

static Suite *data_suite(void)
{
  Suite *s = suite_create("data");
  TCase *tb = tcase_create("buffers");
  tcase_add_test(tb, from_buffers_copies_and_checks);
  tcase_add_test(tb, from_buffers_rejects_bad_input);
  tcase_add_test(tb, from_targets_and_subset);
  suite_add_tcase(s, tb);
  TCase *ti = tcase_create("idx");
  tcase_add_test(ti, idx_reads_every_layout);
  tcase_add_test(ti, idx_labels);
  tcase_add_test(ti, idx_rejects_bad_files);
  tcase_add_test(ti, save_idx_round_trips_atomically);
  tcase_add_test(ti, allocation_failures_leave_nothing);
  suite_add_tcase(s, ti);
  return s;
}

int main(void) { return nnkit_test_run(data_suite()); }
