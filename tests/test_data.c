/* Data: datasets from buffers and targets, subsets, scaling, accessors,
 * IDX loading (plain and gzip, every supported layout, every rejection)
 * and atomic IDX saving. IDX fixtures are written byte by byte here. */
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "testutil.h"

/* A non-NULL value for out-params, so tests see that failures reset it. */
static char sentinel_byte;
#define SENTINEL ((nnkit_dataset *)(void *)&sentinel_byte)

/* ---- fixtures ---------------------------------------------------------- */


static void write_raw(const char *path, const void *bytes, size_t n)
{
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "cannot create %s", path);
  ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

static void write_gz(const char *path, const void *bytes, size_t n)
{
  gzFile gz = gzopen(path, "wb");
  ck_assert_msg(gz != NULL, "cannot create %s", path);
  ck_assert_int_eq(gzwrite(gz, bytes, (unsigned)n), (int)n);
  ck_assert_int_eq(gzclose(gz), Z_OK);
}

/* Reads a whole file into a malloc'ed buffer (the test's own memory). */
static unsigned char *read_raw(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  unsigned char *buf = NULL;
  size_t cap = 0;
  *n = 0;
  for (;;) {
    buf = realloc(buf, cap += 65536);
    ck_assert_ptr_nonnull(buf);
    size_t got = fread(buf + *n, 1, cap - *n, f);
    *n += got;
    if (got == 0)
      break;
  }
  fclose(f);
  return buf;
}

static int file_exists(const char *path)
{
  struct stat sb;
  return stat(path, &sb) == 0;
}

/* Number of leftover "<base>.tmp.*" files next to path. */
static int count_temps(const char *path)
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

/* Builds an IDX file image in buf: magic, big-endian dims, then payload
 * (already in file encoding). Returns its length. */
static size_t make_idx(unsigned char *buf, int type, int ndim,
                       const uint32_t *dims, const void *payload,
                       size_t payload_len)
{
  buf[0] = 0;
  buf[1] = 0;
  buf[2] = (unsigned char)type;
  buf[3] = (unsigned char)ndim;
  for (int i = 0; i < ndim; i++) {
    buf[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
    buf[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
    buf[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
    buf[7 + 4 * i] = (unsigned char)dims[i];
  }
  memcpy(buf + 4 + 4 * ndim, payload, payload_len);
  return 4 + 4 * (size_t)ndim + payload_len;
}

/* Encodes floats as big-endian float32, as IDX type 0x0D stores them. */
static void be_floats(unsigned char *dst, const float *v, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    uint32_t b;
    memcpy(&b, &v[i], 4);
    dst[4 * i] = (unsigned char)(b >> 24);
    dst[4 * i + 1] = (unsigned char)(b >> 16);
    dst[4 * i + 2] = (unsigned char)(b >> 8);
    dst[4 * i + 3] = (unsigned char)b;
  }
}

/* Writes an IDX file, plain or gzip; path receives its name. */
static void idx_file(char *path, size_t plen, const char *name, int gzip,
                     int type, int ndim, const uint32_t *dims,
                     const void *payload, size_t payload_len)
{
  unsigned char *buf = malloc(payload_len + 32);
  ck_assert_ptr_nonnull(buf);
  size_t n = make_idx(buf, type, ndim, dims, payload, payload_len);
  tu_tmp_path(path, plen, name);
  if (gzip)
    write_gz(path, buf, n);
  else
    write_raw(path, buf, n);
  free(buf);
}

/* Deterministic bytes that deflate cannot shrink much. */
static void noise(unsigned char *dst, size_t n, uint32_t seed)
{
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    dst[i] = (unsigned char)(seed >> 24);
  }
}

/* Asserts that a load fails with status, a sentence holding needle and
 * naming `names`, and leaves *out NULL. */
static void load_fails(const char *img, const char *lab, uint32_t k,
                       nnkit_status status, const char *needle,
                       const char *names)
{
  nnkit_dataset *ds = SENTINEL;
  nnkit_clear_error();
  nnkit_status st = nnkit_dataset_load_idx(&ds, img, lab, k);
  const char *e = nnkit_last_error();
  ck_assert_msg(st == status, "load %s: got %d, expected %d (%s)", img,
                (int)st, (int)status, e);
  ck_assert_msg(ds == NULL, "load %s: *out not NULL after failure", img);
  ck_assert_msg(strstr(e, needle) != NULL, "'%s' lacks '%s'", e, needle);
  ck_assert_msg(strstr(e, names) != NULL, "'%s' does not name '%s'", e,
                names);
}

/* A 3-sample MNIST-like pair: 3 x 2 x 2 images and labels {2, 0, 1}. */
static const unsigned char tiny_px[12] = {0, 1, 2, 3, 10, 20, 30, 40,
                                          252, 253, 254, 255};
static const unsigned char tiny_lab[3] = {2, 0, 1};
static const uint32_t tiny_dims[3] = {3, 2, 2};

static void tiny_pair(char *img, char *lab, size_t len, int gz_img,
                      int gz_lab)
{
  uint32_t n = 3;
  idx_file(img, len, "img", gz_img, 0x08, 3, tiny_dims, tiny_px, 12);
  idx_file(lab, len, "lab", gz_lab, 0x08, 1, &n, tiny_lab, 3);
}

static void check_tiny(const nnkit_dataset *ds, uint32_t k)
{
  ck_assert_uint_eq(nnkit_dataset_count(ds), 3);
  ck_assert_uint_eq(nnkit_dataset_ndim(ds), 3);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 1);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 1), 2);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 2), 2);
  ck_assert_uint_eq(nnkit_dataset_sample_size(ds), 4);
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), k);
  for (int i = 0; i < 12; i++)
    ck_assert_float_eq(nnkit_dataset_data(ds)[i], (float)tiny_px[i]);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(nnkit_dataset_labels(ds)[i], tiny_lab[i]);
}

/* ---- datasets from buffers -------------------------------------------- */

/* An inferred class count is at most NNKIT_MAX_INFERRED_CLASSES: labels
 * {0, INT32_MAX} with num_classes = 0 used to make 2^31 classes (and
 * splits then asked for 16 GB). An explicit count still allows more. */
START_TEST(inferred_class_count_is_limited)
{
  float x[2] = {0, 1};
  uint8_t xb[2] = {0, 1};
  size_t shape[1] = {1};
  nnkit_dataset *ds = NULL;
  int32_t bomb[2] = {0, INT32_MAX};
  ck_fails(nnkit_dataset_from_buffers(&ds, x, bomb, 2, shape, 1, 0), NNKIT_E_INVALID,
           "sample 1 has label 2147483647");
  ck_assert_ptr_null(ds);
  ck_assert(strstr(nnkit_last_error(), "65536") != NULL);
  ck_assert(strstr(nnkit_last_error(), "num_classes") != NULL);
  ck_fails(nnkit_dataset_from_bytes(&ds, xb, bomb, 2, shape, 1, 0), NNKIT_E_INVALID,
           "NNKIT_MAX_INFERRED_CLASSES");
  ck_assert_ptr_null(ds);
  int32_t over[2] = {65536, 0};
  ck_fails(nnkit_dataset_from_buffers(&ds, x, over, 2, shape, 1, 0), NNKIT_E_INVALID,
           "sample 0 has label 65536");
  /* the limit itself is fine, and an explicit count may exceed it */
  int32_t edge[2] = {0, (int32_t)NNKIT_MAX_INFERRED_CLASSES - 1};
  ck_ok(nnkit_dataset_from_buffers(&ds, x, edge, 2, shape, 1, 0));
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), NNKIT_MAX_INFERRED_CLASSES);
  nnkit_dataset_free(ds);
  ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, over, 2, shape, 1, 70000));
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 70000);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(from_buffers_copies_inputs)
{
  float x[6] = {1, 2, 3, 4, 5, 6};
  int32_t labels[3] = {0, 2, 1};
  size_t shape[1] = {2};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, labels, 3, shape, 1, 3));
  /* Mutating the caller's buffers afterwards must not reach the set. */
  x[0] = 99;
  labels[1] = 0;
  shape[0] = 7;
  ck_assert_float_eq(nnkit_dataset_data(ds)[0], 1);
  ck_assert_int_eq(nnkit_dataset_labels(ds)[1], 2);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 2);
  ck_assert_ptr_ne(nnkit_dataset_data(ds), x);
  ck_assert_ptr_ne(nnkit_dataset_labels(ds), labels);
  ck_assert_uint_eq(nnkit_dataset_count(ds), 3);
  ck_assert_uint_eq(nnkit_dataset_ndim(ds), 1);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 1), 0); /* axis >= ndim */
  ck_assert_uint_eq(nnkit_dataset_sample_size(ds), 2);
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 3);
  ck_assert_uint_eq(nnkit_dataset_target_dim(ds), 0);
  ck_assert_ptr_null(nnkit_dataset_targets(ds));
  for (int i = 1; i < 6; i++)
    ck_assert_float_eq(nnkit_dataset_data(ds)[i], (float)(i + 1));
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(from_buffers_shapes_and_class_count)
{
  float x[2 * 3 * 2 * 2];
  for (int i = 0; i < 24; i++)
    x[i] = (float)i * 0.5f;
  int32_t labels[2] = {4, 1};
  size_t shape[3] = {3, 2, 2};
  nnkit_dataset *ds = NULL;
  /* num_classes 0 = max label + 1 */
  ck_ok(nnkit_dataset_from_buffers(&ds, x, labels, 2, shape, 3, 0));
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 5);
  ck_assert_uint_eq(nnkit_dataset_sample_size(ds), 12);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 3);
  ck_assert_uint_eq(nnkit_dataset_dim(ds, 2), 2);
  ck_assert_float_eq(nnkit_dataset_data(ds)[23], 11.5f);
  nnkit_dataset_free(ds);
  /* Unlabelled: no labels, no classes, num_classes ignored. */
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, 2, shape, 3, 7));
  ck_assert_ptr_null(nnkit_dataset_labels(ds));
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 0);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(from_bytes_keeps_bytes_and_checks_arguments)
{
  const uint8_t px[6] = {0, 7, 255, 128, 1, 2};
  const int32_t labels[3] = {1, 0, 1};
  const size_t shape[1] = {2}, zero[1] = {0};
  nnkit_dataset *ds = SENTINEL;
  ck_ok(nnkit_dataset_from_bytes(&ds, px, labels, 3, shape, 1, 0));
  ck_assert_ptr_nonnull(ds->x8);
  ck_assert_ptr_null(ds->x);
  ck_assert_uint_eq(nnkit_dataset_count(ds), 3);
  ck_assert_uint_eq(nnkit_dataset_sample_size(ds), 2);
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 2);
  ck_assert_int_eq(nnkit_dataset_labels(ds)[2], 1);
  ck_ok(nnkit_dataset_scale(ds, 1.0f / 255, 0));
  for (int i = 0; i < 6; i++)
    ck_assert_float_eq(nnkit__ds_at(ds, (size_t)i), (float)px[i] * (1.0f / 255));
  nnkit_dataset_free(ds);
  ck_ok(nnkit_dataset_from_bytes(&ds, px, NULL, 1, (size_t[]){1, 2, 3}, 3, 0));
  ck_assert_ptr_null(nnkit_dataset_labels(ds));
  ck_assert_float_eq(nnkit_dataset_data(ds)[2], 255.0f);
  nnkit_dataset_free(ds);
  ds = SENTINEL;
  ck_fails(nnkit_dataset_from_bytes(NULL, px, labels, 3, shape, 1, 2),
           NNKIT_E_INVALID, "out is NULL");
  ck_fails(nnkit_dataset_from_bytes(&ds, NULL, labels, 3, shape, 1, 2),
           NNKIT_E_INVALID, "x is NULL; pass count * sample_size bytes");
  ck_assert_ptr_null(ds);
  ck_fails(nnkit_dataset_from_bytes(&ds, px, labels, 3, zero, 1, 2),
           NNKIT_E_INVALID, "shape[0] is 0");
  ck_fails(nnkit_dataset_from_bytes(&ds, px, labels, 3, shape, 1, 1),
           NNKIT_E_INVALID, "sample 0");
  ck_assert_ptr_null(ds);
}
END_TEST

START_TEST(from_buffers_rejects_bad_arguments)
{
  float x[4] = {0, 1, 2, 3};
  int32_t labels[2] = {0, 1};
  size_t shape[2] = {2, 1}, zero[1] = {0};
  size_t huge[2] = {SIZE_MAX / 2, 4};
  nnkit_dataset *ds = SENTINEL;
  ck_fails(nnkit_dataset_from_buffers(NULL, x, labels, 2, shape, 1, 2),
           NNKIT_E_INVALID, "out is NULL");
  ck_fails(nnkit_dataset_from_buffers(&ds, NULL, labels, 2, shape, 1, 2),
           NNKIT_E_INVALID, "x is NULL");
  ck_assert_ptr_null(ds);
  ds = SENTINEL;
  ck_fails(nnkit_dataset_from_buffers(&ds, x, labels, 0, shape, 1, 2),
           NNKIT_E_INVALID, "count is 0");
  ck_assert_ptr_null(ds);
  ck_fails(nnkit_dataset_from_buffers(&ds, x, labels, 2, NULL, 1, 2),
           NNKIT_E_INVALID, "shape is NULL");
  ck_fails(nnkit_dataset_from_buffers(&ds, x, labels, 2, shape, 0, 2),
           NNKIT_E_INVALID, "ndim is 0");
  ck_fails(nnkit_dataset_from_buffers(&ds, x, labels, 2, shape, 4, 2),
           NNKIT_E_INVALID, "ndim is 4");
  ck_fails(nnkit_dataset_from_buffers(&ds, x, labels, 2, zero, 1, 2),
           NNKIT_E_INVALID, "shape[0] is 0");
  ck_fails(nnkit_dataset_from_buffers(&ds, x, NULL, 4, huge, 2, 0),
           NNKIT_E_INVALID, "overflow");
  ck_assert_ptr_null(ds);
}
END_TEST

START_TEST(from_buffers_rejects_bad_labels_and_values)
{
  float x[6] = {0, 1, 2, 3, 4, 5};
  int32_t labels[3] = {0, 1, 7};
  size_t shape[1] = {2};
  nnkit_dataset *ds = SENTINEL;
  ck_fails(nnkit_dataset_from_buffers(&ds, x, labels, 3, shape, 1, 3),
           NNKIT_E_INVALID, "sample 2 has label 7 outside [0, 3)");
  ck_assert_ptr_null(ds);
  labels[2] = -1;
  ds = SENTINEL;
  ck_fails(nnkit_dataset_from_buffers(&ds, x, labels, 3, shape, 1, 0),
           NNKIT_E_INVALID, "sample 2 has label -1");
  ck_assert_ptr_null(ds);
  labels[2] = 0;
  x[3] = NAN;
  ck_fails(nnkit_dataset_from_buffers(&ds, x, labels, 3, shape, 1, 3),
           NNKIT_E_INVALID, "sample 1, value 1 is NaN");
  x[3] = 0;
  x[4] = -INFINITY;
  ck_fails(nnkit_dataset_from_buffers(&ds, x, NULL, 3, shape, 1, 0),
           NNKIT_E_INVALID, "sample 2, value 0 is infinite");
  ck_assert_ptr_null(ds);
}
END_TEST

START_TEST(from_targets_builds_regression_set)
{
  float x[6] = {1, 2, 3, 4, 5, 6};
  float t[6] = {0.5f, -1, 2, 3, 4, 5};
  size_t shape[1] = {2};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_targets(&ds, x, t, 3, shape, 1, 2));
  t[0] = 100;
  ck_assert_uint_eq(nnkit_dataset_target_dim(ds), 2);
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 0);
  ck_assert_ptr_null(nnkit_dataset_labels(ds));
  ck_assert_ptr_nonnull(nnkit_dataset_targets(ds));
  ck_assert_float_eq(nnkit_dataset_targets(ds)[0], 0.5f);
  ck_assert_float_eq(nnkit_dataset_targets(ds)[1], -1);
  ck_assert_float_eq(nnkit_dataset_targets(ds)[5], 5);
  ck_assert_float_eq(nnkit_dataset_data(ds)[5], 6);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(from_targets_rejects_bad_arguments)
{
  float x[4] = {1, 2, 3, 4};
  float t[2] = {1, 2};
  size_t shape[1] = {2};
  nnkit_dataset *ds = SENTINEL;
  ck_fails(nnkit_dataset_from_targets(&ds, x, t, 2, shape, 1, 0),
           NNKIT_E_INVALID, "target_dim is 0");
  ck_assert_ptr_null(ds);
  ck_fails(nnkit_dataset_from_targets(&ds, x, NULL, 2, shape, 1, 1),
           NNKIT_E_INVALID, "targets is NULL");
  ck_fails(nnkit_dataset_from_targets(&ds, NULL, t, 2, shape, 1, 1),
           NNKIT_E_INVALID, "x is NULL");
  ck_fails(nnkit_dataset_from_targets(&ds, x, t, 0, shape, 1, 1),
           NNKIT_E_INVALID, "count is 0");
  t[1] = NAN;
  ds = SENTINEL;
  ck_fails(nnkit_dataset_from_targets(&ds, x, t, 2, shape, 1, 1),
           NNKIT_E_INVALID, "sample 1, target 0 is NaN");
  ck_assert_ptr_null(ds);
  t[1] = 0;
  x[1] = INFINITY;
  ck_fails(nnkit_dataset_from_targets(&ds, x, t, 2, shape, 1, 1),
           NNKIT_E_INVALID, "sample 0, value 1 is infinite");
  ck_fails(nnkit_dataset_from_targets(NULL, x, t, 2, shape, 1, 1),
           NNKIT_E_INVALID, "out is NULL");
}
END_TEST

/* ---- subset, scale, class counts, accessors --------------------------- */

START_TEST(subset_copies_in_order_with_repeats)
{
  float x[8] = {0, 1, 10, 11, 20, 21, 30, 31};
  int32_t labels[4] = {0, 1, 2, 1};
  size_t shape[1] = {2};
  nnkit_dataset *src = NULL, *sub = NULL;
  ck_ok(nnkit_dataset_from_buffers(&src, x, labels, 4, shape, 1, 5));
  size_t idx[3] = {3, 0, 3};
  ck_ok(nnkit_dataset_subset(&sub, src, idx, 3));
  ck_assert_uint_eq(nnkit_dataset_count(sub), 3);
  ck_assert_uint_eq(nnkit_dataset_dim(sub, 0), 2);
  ck_assert_uint_eq(nnkit_dataset_num_classes(sub), 5); /* kept */
  const float expect[6] = {30, 31, 0, 1, 30, 31};
  for (int i = 0; i < 6; i++)
    ck_assert_float_eq(nnkit_dataset_data(sub)[i], expect[i]);
  ck_assert_int_eq(nnkit_dataset_labels(sub)[0], 1);
  ck_assert_int_eq(nnkit_dataset_labels(sub)[1], 0);
  ck_assert_int_eq(nnkit_dataset_labels(sub)[2], 1);
  nnkit_dataset_free(sub);
  nnkit_dataset_free(src);
}
END_TEST

START_TEST(subset_of_regression_set_copies_targets)
{
  float x[3] = {1, 2, 3}, t[6] = {1, -1, 2, -2, 3, -3};
  size_t shape[1] = {1}, idx[2] = {2, 1};
  nnkit_dataset *src = NULL, *sub = NULL;
  ck_ok(nnkit_dataset_from_targets(&src, x, t, 3, shape, 1, 2));
  ck_ok(nnkit_dataset_subset(&sub, src, idx, 2));
  ck_assert_uint_eq(nnkit_dataset_target_dim(sub), 2);
  ck_assert_ptr_null(nnkit_dataset_labels(sub));
  ck_assert_float_eq(nnkit_dataset_data(sub)[0], 3);
  ck_assert_float_eq(nnkit_dataset_targets(sub)[1], -3);
  ck_assert_float_eq(nnkit_dataset_targets(sub)[2], 2);
  nnkit_dataset_free(sub);
  nnkit_dataset_free(src);
}
END_TEST

START_TEST(subset_rejects_bad_index)
{
  float x[4] = {0, 1, 2, 3};
  size_t shape[1] = {1};
  nnkit_dataset *src = NULL, *sub = SENTINEL;
  ck_ok(nnkit_dataset_from_buffers(&src, x, NULL, 4, shape, 1, 0));
  size_t idx[2] = {1, 4};
  ck_fails(nnkit_dataset_subset(&sub, src, idx, 2), NNKIT_E_INVALID,
           "indices[1] = 4");
  ck_assert_ptr_null(sub);
  ck_fails(nnkit_dataset_subset(&sub, src, idx, 0), NNKIT_E_INVALID,
           "count is 0");
  ck_fails(nnkit_dataset_subset(&sub, NULL, idx, 1), NNKIT_E_INVALID,
           "src is NULL");
  ck_fails(nnkit_dataset_subset(&sub, src, NULL, 1), NNKIT_E_INVALID,
           "indices is NULL");
  ck_fails(nnkit_dataset_subset(NULL, src, idx, 1), NNKIT_E_INVALID,
           "out is NULL");
  nnkit_dataset_free(src);
}
END_TEST

START_TEST(scale_maps_values_in_place)
{
  float x[4] = {0, 51, 255, 102};
  size_t shape[1] = {2};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, 2, shape, 1, 0));
  ck_ok(nnkit_dataset_scale(ds, 1.0f / 255.0f, 0));
  ck_assert_float_eq_tol(nnkit_dataset_data(ds)[1], 0.2f, 1e-6f);
  ck_assert_float_eq_tol(nnkit_dataset_data(ds)[2], 1.0f, 1e-6f);
  ck_ok(nnkit_dataset_scale(ds, 2, -1)); /* [0,1] -> [-1,1] */
  ck_assert_float_eq_tol(nnkit_dataset_data(ds)[0], -1.0f, 1e-6f);
  ck_assert_float_eq_tol(nnkit_dataset_data(ds)[3], -0.2f, 1e-6f);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(scale_rejects_non_finite_and_keeps_data)
{
  float x[2] = {1, 3e38f};
  size_t shape[1] = {1};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, 2, shape, 1, 0));
  ck_fails(nnkit_dataset_scale(ds, NAN, 0), NNKIT_E_INVALID, "finite");
  ck_fails(nnkit_dataset_scale(ds, 1, INFINITY), NNKIT_E_INVALID, "finite");
  /* 3e38 * 10 overflows float: refused, and nothing changed. */
  ck_fails(nnkit_dataset_scale(ds, 10, 0), NNKIT_E_INVALID, "sample 1");
  ck_assert_float_eq(nnkit_dataset_data(ds)[0], 1);
  ck_assert_float_eq(nnkit_dataset_data(ds)[1], 3e38f);
  ck_fails(nnkit_dataset_scale(NULL, 1, 0), NNKIT_E_INVALID, "ds is NULL");
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(class_counts_counts_each_class)
{
  float x[5] = {0};
  int32_t labels[5] = {2, 0, 2, 2, 0};
  size_t shape[1] = {1}, counts[5] = {9, 9, 9, 9, 9};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, labels, 5, shape, 1, 4));
  ck_ok(nnkit_dataset_class_counts(counts, 5, ds));
  ck_assert_uint_eq(counts[0], 2);
  ck_assert_uint_eq(counts[1], 0);
  ck_assert_uint_eq(counts[2], 3);
  ck_assert_uint_eq(counts[3], 0);
  ck_assert_uint_eq(counts[4], 9); /* past num_classes: untouched */
  ck_fails(nnkit_dataset_class_counts(counts, 3, ds), NNKIT_E_INVALID,
           "4 classes");
  ck_fails(nnkit_dataset_class_counts(NULL, 4, ds), NNKIT_E_INVALID,
           "counts_out is NULL");
  ck_fails(nnkit_dataset_class_counts(counts, 4, NULL), NNKIT_E_INVALID,
           "ds is NULL");
  nnkit_dataset_free(ds);
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, 5, shape, 1, 0));
  ck_fails(nnkit_dataset_class_counts(counts, 5, ds), NNKIT_E_INVALID,
           "no labels");
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(accessors_accept_null)
{
  ck_assert_uint_eq(nnkit_dataset_count(NULL), 0);
  ck_assert_uint_eq(nnkit_dataset_ndim(NULL), 0);
  ck_assert_uint_eq(nnkit_dataset_dim(NULL, 0), 0);
  ck_assert_uint_eq(nnkit_dataset_sample_size(NULL), 0);
  ck_assert_uint_eq(nnkit_dataset_num_classes(NULL), 0);
  ck_assert_uint_eq(nnkit_dataset_target_dim(NULL), 0);
  ck_assert_ptr_null(nnkit_dataset_data(NULL));
  ck_assert_ptr_null(nnkit_dataset_labels(NULL));
  ck_assert_ptr_null(nnkit_dataset_targets(NULL));
  nnkit_dataset_free(NULL);
}
END_TEST

/* ---- IDX loading --------------------------------------------------------- */

START_TEST(load_idx_plain_and_gzip)
{
  char img[512], lab[512];
  /* Every combination of plain and gzip images and labels. */
  for (int mode = 0; mode < 4; mode++) {
    tiny_pair(img, lab, sizeof img, mode & 1, mode >> 1);
    nnkit_dataset *ds = NULL;
    ck_ok(nnkit_dataset_load_idx(&ds, img, lab, 0));
    check_tiny(ds, 3); /* max label + 1 */
    nnkit_dataset_free(ds);
    ck_ok(nnkit_dataset_load_idx(&ds, img, lab, 10));
    check_tiny(ds, 10);
    nnkit_dataset_free(ds);
    ck_ok(nnkit_dataset_load_idx(&ds, img, NULL, 10)); /* images only */
    ck_assert_ptr_null(nnkit_dataset_labels(ds));
    ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 0);
    ck_assert_float_eq(nnkit_dataset_data(ds)[11], 255);
    nnkit_dataset_free(ds);
  }
}
END_TEST

START_TEST(load_idx_detects_gzip_by_magic_not_name)
{
  char plain[512], gz[512];
  uint32_t d[1] = {2};
  const unsigned char v[2] = {7, 9};
  idx_file(plain, sizeof plain, "looks.gz", 0, 0x08, 1, d, v, 2);
  idx_file(gz, sizeof gz, "looks.idx", 1, 0x08, 1, d, v, 2);
  size_t n;
  unsigned char *raw = read_raw(gz, &n);
  ck_assert(raw[0] == 0x1f && raw[1] == 0x8b);
  free(raw);
  for (int i = 0; i < 2; i++) {
    nnkit_dataset *ds = NULL;
    ck_ok(nnkit_dataset_load_idx(&ds, i ? gz : plain, NULL, 0));
    ck_assert_float_eq(nnkit_dataset_data(ds)[1], 9);
    nnkit_dataset_free(ds);
  }
}
END_TEST

START_TEST(load_idx_maps_every_rank)
{
  char p[512];
  unsigned char v[24];
  for (int i = 0; i < 24; i++)
    v[i] = (unsigned char)(i * 10);
  /* file dims -> sample shape */
  const uint32_t dims[4][4] = {{24}, {4, 6}, {2, 3, 4}, {2, 3, 2, 2}};
  const size_t ndim[4] = {1, 1, 3, 3};
  const size_t shape[4][3] = {{1}, {6}, {1, 3, 4}, {3, 2, 2}};
  for (int r = 0; r < 4; r++) {
    for (int gz = 0; gz < 2; gz++) {
      idx_file(p, sizeof p, "rank", gz, 0x08, r + 1, dims[r], v, 24);
      nnkit_dataset *ds = NULL;
      ck_ok(nnkit_dataset_load_idx(&ds, p, NULL, 0));
      ck_assert_uint_eq(nnkit_dataset_count(ds), dims[r][0]);
      ck_assert_uint_eq(nnkit_dataset_ndim(ds), ndim[r]);
      for (size_t a = 0; a < ndim[r]; a++)
        ck_assert_uint_eq(nnkit_dataset_dim(ds, a), shape[r][a]);
      ck_assert_uint_eq(nnkit_dataset_count(ds) * nnkit_dataset_sample_size(ds),
                        24);
      ck_assert_float_eq(nnkit_dataset_data(ds)[23], 230);
      nnkit_dataset_free(ds);
    }
  }
}
END_TEST

START_TEST(load_idx_float32)
{
  char p[512];
  const float v[6] = {0.5f, -1.25f, 3e-7f, 1e30f, -0.0f, 255.5f};
  unsigned char enc[24];
  be_floats(enc, v, 6);
  const uint32_t dims[2] = {3, 2};
  for (int gz = 0; gz < 2; gz++) {
    idx_file(p, sizeof p, "float", gz, 0x0D, 2, dims, enc, sizeof enc);
    nnkit_dataset *ds = NULL;
    ck_ok(nnkit_dataset_load_idx(&ds, p, NULL, 0));
    ck_assert_uint_eq(nnkit_dataset_count(ds), 3);
    ck_assert_uint_eq(nnkit_dataset_dim(ds, 0), 2);
    ck_assert(memcmp(nnkit_dataset_data(ds), v, sizeof v) == 0);
    nnkit_dataset_free(ds);
  }
}
END_TEST

START_TEST(load_idx_reads_in_chunks)
{
  /* Larger than the reader's chunk, so the chunk loop and zlib's buffer
   * refills both run; float data crosses chunk borders too. */
  enum { N = 100, H = 28, W = 28, F = 9000 };
  static unsigned char px[N * H * W];
  noise(px, sizeof px, 42);
  static float fv[3 * F];
  static unsigned char fenc[3 * F * 4];
  for (int i = 0; i < 3 * F; i++)
    fv[i] = (float)(i % 1000) / 8.0f - 50.0f;
  be_floats(fenc, fv, 3 * F);
  const uint32_t d3[3] = {N, H, W}, d2[2] = {3, F};
  char p[512];
  for (int gz = 0; gz < 2; gz++) {
    nnkit_dataset *ds = NULL;
    idx_file(p, sizeof p, "big", gz, 0x08, 3, d3, px, sizeof px);
    ck_ok(nnkit_dataset_load_idx(&ds, p, NULL, 0));
    for (size_t i = 0; i < sizeof px; i++)
      ck_assert_float_eq(nnkit_dataset_data(ds)[i], (float)px[i]);
    nnkit_dataset_free(ds);
    idx_file(p, sizeof p, "bigf", gz, 0x0D, 2, d2, fenc, sizeof fenc);
    ck_ok(nnkit_dataset_load_idx(&ds, p, NULL, 0));
    ck_assert(memcmp(nnkit_dataset_data(ds), fv, sizeof fv) == 0);
    nnkit_dataset_free(ds);
  }
}
END_TEST

/* ---- IDX rejections -------------------------------------------------- */

START_TEST(load_idx_rejects_missing_file_and_directory)
{
  char p[512];
  tu_tmp_path(p, sizeof p, "missing");
  load_fails(p, NULL, 0, NNKIT_E_IO, "cannot open", p);
  load_fails(NNKIT_TEST_TMPDIR, NULL, 0, NNKIT_E_IO, "directory",
             NNKIT_TEST_TMPDIR);
  char img[512], lab[512];
  tiny_pair(img, lab, sizeof img, 0, 0);
  load_fails(img, p, 0, NNKIT_E_IO, "cannot open", p); /* missing labels */
  nnkit_dataset *ds = SENTINEL;
  ck_fails(nnkit_dataset_load_idx(&ds, NULL, NULL, 0), NNKIT_E_INVALID,
           "images_path is NULL");
  ck_assert_ptr_null(ds);
  ck_fails(nnkit_dataset_load_idx(NULL, img, NULL, 0), NNKIT_E_INVALID,
           "out is NULL");
}
END_TEST

/* FIFOs without a writer: refused at once (IDX and CSV), not waited on. */
START_TEST(loaders_refuse_a_fifo_promptly)
{
  char p[512];
  tu_tmp_path(p, sizeof p, "data.fifo");
  unlink(p);
  ck_assert_int_eq(mkfifo(p, 0600), 0);
  alarm(10); /* a hang becomes a failure (SIGALRM) */
  load_fails(p, NULL, 0, NNKIT_E_IO, "is a FIFO", p);
  char img[512], lab[512];
  tiny_pair(img, lab, sizeof img, 0, 0);
  load_fails(img, p, 0, NNKIT_E_IO, "is a FIFO", p); /* the labels */
  nnkit_dataset *ds = SENTINEL;
  ck_fails(nnkit_dataset_load_csv(&ds, p, ',', 0, NULL, 0), NNKIT_E_IO, "is a FIFO");
  ck_assert_ptr_null(ds);
  alarm(0);
  unlink(p);
}
END_TEST

START_TEST(load_idx_rejects_bad_magic_type_and_rank)
{
  char p[512];
  const unsigned char v[2] = {1, 2};
  uint32_t d[5] = {2, 1, 1, 1, 1};
  for (int gz = 0; gz < 2; gz++) {
    unsigned char bad[12] = {0x01, 0x00, 0x08, 0x01, 0, 0, 0, 2, 1, 2};
    tu_tmp_path(p, sizeof p, "magic");
    gz ? write_gz(p, bad, 10) : write_raw(p, bad, 10);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "not an IDX file", p);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "01 00 08 01", p);
    idx_file(p, sizeof p, "type", gz, 0x0C, 1, d, v, 2);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "type 0x0c (int32)", p);
    idx_file(p, sizeof p, "type", gz, 0x0E, 1, d, v, 2);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "0x0e (float64) is not supported",
               p);
    idx_file(p, sizeof p, "rank0", gz, 0x08, 0, d, v, 2);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "declares 0 dimensions", p);
    idx_file(p, sizeof p, "rank5", gz, 0x08, 5, d, v, 2);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "declares 5 dimensions", p);
    uint32_t z[2] = {2, 0};
    idx_file(p, sizeof p, "zero", gz, 0x08, 2, z, v, 2);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "dimension 1 of the header is 0",
               p);
    tu_tmp_path(p, sizeof p, "empty");
    gz ? write_gz(p, "", 0) : write_raw(p, "", 0);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "truncated", p);
  }
}
END_TEST

START_TEST(load_idx_rejects_truncated_plain)
{
  char p[512];
  idx_file(p, sizeof p, "trunc", 0, 0x08, 3, tiny_dims, tiny_px, 5);
  load_fails(p, NULL, 0, NNKIT_E_FORMAT,
             "truncated: the header promises 3 x 2 x 2 bytes but the file "
             "ends after 5", p);
  /* Cut inside the dimension sizes. */
  unsigned char head[6] = {0, 0, 0x08, 3, 0, 0};
  tu_tmp_path(p, sizeof p, "trunchead");
  write_raw(p, head, 6);
  load_fails(p, NULL, 0, NNKIT_E_FORMAT, "truncated", p);
  /* Float data cut mid-value. */
  unsigned char enc[8];
  const float v[2] = {1, 2};
  be_floats(enc, v, 2);
  uint32_t d[1] = {2};
  idx_file(p, sizeof p, "truncf", 0, 0x0D, 1, d, enc, 7);
  load_fails(p, NULL, 0, NNKIT_E_FORMAT, "float32 values (8 bytes)", p);
}
END_TEST

START_TEST(load_idx_rejects_truncated_gzip)
{
  enum { N = 50, S = 28 * 28 };
  static unsigned char px[N * S];
  noise(px, sizeof px, 7);
  const uint32_t d[3] = {N, 28, 28};
  char p[512];
  idx_file(p, sizeof p, "truncgz", 1, 0x08, 3, d, px, sizeof px);
  size_t n;
  unsigned char *raw = read_raw(p, &n);
  /* Cut the compressed stream in half: the data itself is missing. */
  write_raw(p, raw, n / 2);
  load_fails(p, NULL, 0, NNKIT_E_FORMAT, "truncated", p);
  /* Cut only the 8-byte trailer (CRC and length): data complete, stream
   * not. */
  write_raw(p, raw, n - 8);
  load_fails(p, NULL, 0, NNKIT_E_FORMAT, "truncated", p);
  /* A damaged checksum is corruption, not truncation. */
  raw[n - 8] ^= 0xff;
  write_raw(p, raw, n);
  load_fails(p, NULL, 0, NNKIT_E_FORMAT, "corrupt gzip data", p);
  free(raw);
}
END_TEST

START_TEST(load_idx_rejects_trailing_bytes)
{
  char p[512];
  unsigned char more[16];
  memcpy(more, tiny_px, 12);
  memcpy(more + 12, "JUNK", 4);
  for (int gz = 0; gz < 2; gz++) {
    idx_file(p, sizeof p, "trail", gz, 0x08, 3, tiny_dims, more, 16);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "trailing bytes", p);
  }
  idx_file(p, sizeof p, "trail", 0, 0x08, 3, tiny_dims, more, 16);
  load_fails(p, NULL, 0, NNKIT_E_FORMAT, "4 trailing bytes", p);
}
END_TEST

START_TEST(load_idx_rejects_absurd_dimensions)
{
  char p[512];
  const unsigned char v[4] = {1, 2, 3, 4};
  /* 0xFFFFFFFF^4 overflows size_t: refused before any allocation. */
  const uint32_t big4[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu,
                            0xFFFFFFFFu};
  for (int gz = 0; gz < 2; gz++) {
    idx_file(p, sizeof p, "ovf", gz, 0x08, 4, big4, v, 4);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "multiply past the address space",
               p);
    idx_file(p, sizeof p, "ovf", gz, 0x0D, 4, big4, v, 4);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "address space", p);
  }
  /* Fits in size_t but not in the file: refused from the file size. */
  const uint32_t big2[2] = {0xFFFFFFFFu, 8};
  idx_file(p, sizeof p, "huge", 0, 0x08, 2, big2, v, 4);
  load_fails(p, NULL, 0, NNKIT_E_FORMAT,
             "promises 4294967295 x 8 bytes but the file ends after 4", p);
  idx_file(p, sizeof p, "huge", 1, 0x08, 2, big2, v, 4);
  load_fails(p, NULL, 0, NNKIT_E_FORMAT, "gzip file cannot hold", p);
}
END_TEST

START_TEST(load_idx_rejects_non_finite_floats)
{
  char p[512];
  const float v[4] = {1, 2, NAN, 4};
  unsigned char enc[16];
  be_floats(enc, v, 4);
  const uint32_t d[2] = {2, 2};
  for (int gz = 0; gz < 2; gz++) {
    idx_file(p, sizeof p, "nan", gz, 0x0D, 2, d, enc, 16);
    load_fails(p, NULL, 0, NNKIT_E_FORMAT, "sample 1, value 0 is NaN", p);
  }
  const float w[2] = {INFINITY, 0};
  be_floats(enc, w, 2);
  const uint32_t d1[2] = {1, 2};
  idx_file(p, sizeof p, "inf", 0, 0x0D, 2, d1, enc, 8);
  load_fails(p, NULL, 0, NNKIT_E_FORMAT, "infinite", p);
}
END_TEST

START_TEST(load_idx_rejects_bad_labels)
{
  char img[512], lab[512];
  tiny_pair(img, lab, sizeof img, 0, 0);
  /* Count mismatch. */
  uint32_t n2 = 2;
  idx_file(lab, sizeof lab, "lab2", 0, 0x08, 1, &n2, tiny_lab, 2);
  load_fails(img, lab, 0, NNKIT_E_FORMAT, "holds 2 labels", lab);
  load_fails(img, lab, 0, NNKIT_E_FORMAT, "3 samples", img);
  /* Not 1-dimensional. */
  const uint32_t d2[2] = {3, 1};
  idx_file(lab, sizeof lab, "lab2d", 1, 0x08, 2, d2, tiny_lab, 3);
  load_fails(img, lab, 0, NNKIT_E_FORMAT, "1-dimensional", lab);
  /* Not bytes. */
  unsigned char enc[12];
  const float fl[3] = {0, 1, 2};
  be_floats(enc, fl, 3);
  uint32_t n3 = 3;
  idx_file(lab, sizeof lab, "labf", 0, 0x0D, 1, &n3, enc, 12);
  load_fails(img, lab, 0, NNKIT_E_FORMAT, "float32", lab);
  /* The images file passed as labels by mistake. */
  load_fails(img, img, 0, NNKIT_E_FORMAT, "3 dimensions of unsigned byte",
             img);
  /* Out of range for the given class count. */
  const unsigned char big[3] = {0, 7, 1};
  for (int gz = 0; gz < 2; gz++) {
    idx_file(lab, sizeof lab, "lab7", gz, 0x08, 1, &n3, big, 3);
    load_fails(img, lab, 3, NNKIT_E_INVALID,
               "sample 1 has label 7 outside [0, 3)", lab);
  }
  /* The labels file's own defects are named too. */
  idx_file(lab, sizeof lab, "labtr", 0, 0x08, 1, &n3, big, 2);
  load_fails(img, lab, 0, NNKIT_E_FORMAT, "truncated", lab);
  nnkit_dataset *ds = NULL;
  idx_file(lab, sizeof lab, "lab7", 0, 0x08, 1, &n3, big, 3);
  ck_ok(nnkit_dataset_load_idx(&ds, img, lab, 0));
  ck_assert_uint_eq(nnkit_dataset_num_classes(ds), 8);
  nnkit_dataset_free(ds);
}
END_TEST

/* ---- IDX saving ------------------------------------------------------ */

/* Saves ds (gzip or not), reloads it and checks values, shape and labels;
 * head receives the first 12 bytes of the (gunzipped) images file. */
static void save_and_reload(const nnkit_dataset *ds, int gzip,
                            unsigned char head[12])
{
  char img[512], lab[512];
  tu_tmp_path(img, sizeof img, "save_img");
  tu_tmp_path(lab, sizeof lab, "save_lab");
  int labelled = nnkit_dataset_labels(ds) != NULL;
  ck_ok(nnkit_dataset_save_idx(ds, img, labelled ? lab : NULL, gzip));
  ck_assert_int_eq(count_temps(img), 0);
  size_t n;
  unsigned char *raw = read_raw(img, &n);
  ck_assert_int_eq(raw[0] == 0x1f && raw[1] == 0x8b, gzip != 0);
  free(raw);
  gzFile gz = gzopen(img, "rb");
  ck_assert_int_eq(gzread(gz, head, 12), 12);
  gzclose(gz);
  nnkit_dataset *back = NULL;
  ck_ok(nnkit_dataset_load_idx(&back, img, labelled ? lab : NULL, 0));
  size_t total = nnkit_dataset_count(ds) * nnkit_dataset_sample_size(ds);
  ck_assert_uint_eq(nnkit_dataset_count(back), nnkit_dataset_count(ds));
  ck_assert_uint_eq(nnkit_dataset_sample_size(back),
                    nnkit_dataset_sample_size(ds));
  ck_assert(memcmp(nnkit_dataset_data(back), nnkit_dataset_data(ds),
                   total * sizeof(float)) == 0);
  if (labelled) {
    ck_assert(memcmp(nnkit_dataset_labels(back), nnkit_dataset_labels(ds),
                     nnkit_dataset_count(ds) * sizeof(int32_t)) == 0);
    gz = gzopen(lab, "rb");
    unsigned char lh[8];
    ck_assert_int_eq(gzread(gz, lh, 8), 8);
    gzclose(gz);
    ck_assert(lh[2] == 0x08 && lh[3] == 1);
    ck_assert_uint_eq(lh[7], nnkit_dataset_count(ds));
  }
  ck_assert_uint_eq(nnkit_dataset_ndim(back), nnkit_dataset_ndim(ds));
  for (size_t a = 0; a < NNKIT_MAX_SAMPLE_DIMS; a++)
    ck_assert_uint_eq(nnkit_dataset_dim(back, a), nnkit_dataset_dim(ds, a));
  nnkit_dataset_free(back);
}

/* ---- the compact (byte) form ------------------------------------------- */

START_TEST(idx_ubyte_loads_compact_and_reads_as_floats)
{
  enum { N = 40, PER = 12 };
  unsigned char px[N * PER], lab[N];
  noise(px, sizeof px, 5);
  for (int i = 0; i < N; i++)
    lab[i] = (unsigned char)(i % 3);
  uint32_t dims[3] = {N, 3, 4}, nl = N;
  char img[512], labp[512];
  idx_file(img, sizeof img, "compact_img", 1, 0x08, 3, dims, px, sizeof px);
  idx_file(labp, sizeof labp, "compact_lab", 0, 0x08, 1, &nl, lab, N);
  nnkit_dataset *ds = NULL, *fl = NULL;
  ck_ok(nnkit_dataset_load_idx(&ds, img, labp, 0));
  /* One byte per value in memory, and no float copy yet. */
  ck_assert_ptr_nonnull(ds->x8);
  ck_assert_ptr_null(ds->x);
  float x[N * PER];
  int32_t y[N];
  for (int i = 0; i < N * PER; i++)
    x[i] = px[i];
  for (int i = 0; i < N; i++)
    y[i] = lab[i];
  const size_t shape[3] = {1, 3, 4};
  ck_ok(nnkit_dataset_from_buffers(&fl, x, y, N, shape, 3, 0));
  tu_same_values(ds, fl);
  /* A chain of scales gives the float form's values exactly and keeps the
   * bytes (the table of 256 values is what changes). */
  ck_ok(nnkit_dataset_scale(ds, 1.0f / 255, 0));
  ck_ok(nnkit_dataset_scale(fl, 1.0f / 255, 0));
  ck_ok(nnkit_dataset_scale(ds, 2.0f, -1.0f));
  ck_ok(nnkit_dataset_scale(fl, 2.0f, -1.0f));
  ck_assert_ptr_null(ds->x);
  tu_same_values(ds, fl);
  /* The public float pointer builds the copy once; the bytes stay. */
  const float *p = nnkit_dataset_data(ds);
  ck_assert_ptr_nonnull(p);
  ck_assert(memcmp(p, nnkit_dataset_data(fl), sizeof x) == 0);
  ck_assert_ptr_eq(nnkit_dataset_data(ds), p);
  ck_assert_ptr_nonnull(ds->x8);
  /* Scaling now updates the copy and the table alike. */
  ck_ok(nnkit_dataset_scale(ds, 0.5f, 0.25f));
  ck_ok(nnkit_dataset_scale(fl, 0.5f, 0.25f));
  tu_same_values(ds, fl);
  ck_assert(memcmp(nnkit_dataset_data(ds), nnkit_dataset_data(fl), sizeof x) == 0);
  float rows[2 * PER], want[2 * PER];
  size_t idx[2] = {7, 3};
  nnkit__dataset_gather(ds, idx, 2, rows);
  nnkit__dataset_gather(fl, idx, 2, want);
  ck_assert(memcmp(rows, want, sizeof rows) == 0);
  nnkit__dataset_rows(ds, 5, 2, rows);
  ck_assert(memcmp(rows, nnkit_dataset_data(fl) + 5 * PER, sizeof rows) == 0);
  nnkit_dataset_free(ds);
  nnkit_dataset_free(fl);
}
END_TEST

START_TEST(compact_scale_overflow_names_sample_and_changes_nothing)
{
  char img[512], lab[512];
  tiny_pair(img, lab, sizeof img, 0, 0);
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_load_idx(&ds, img, lab, 0));
  ck_assert_ptr_nonnull(ds->x8);
  /* 2 * 3e38 overflows: sample 0's third value (2) is the first. */
  ck_fails(nnkit_dataset_scale(ds, 3e38f, 0), NNKIT_E_INVALID,
           "sample 0, value 2 (2)");
  for (size_t i = 0; i < 12; i++)
    ck_assert_float_eq(nnkit__ds_at(ds, i), (float)tiny_px[i]);
  nnkit_dataset_free(ds);
  /* Bytes absent from the set may overflow: only present values matter. */
  const unsigned char small[4] = {0, 1, 2, 3};
  uint32_t d2[2] = {2, 2};
  idx_file(img, sizeof img, "small", 0, 0x08, 2, d2, small, 4);
  ck_ok(nnkit_dataset_load_idx(&ds, img, NULL, 0));
  ck_ok(nnkit_dataset_scale(ds, 1e38f, 0));
  for (size_t i = 0; i < 4; i++)
    ck_assert_float_eq(nnkit__ds_at(ds, i), (float)small[i] * 1e38f);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(compact_subset_and_save_keep_the_values)
{
  const size_t shape[3] = {1, 4, 5};
  nnkit_dataset *b = NULL, *f = NULL, *bs = NULL, *fs = NULL;
  tu_compact_twins(&b, &f, 30, shape, 3, 4, 11);
  size_t idx[5] = {29, 0, 7, 7, 12};
  ck_ok(nnkit_dataset_subset(&bs, b, idx, 5));
  ck_ok(nnkit_dataset_subset(&fs, f, idx, 5));
  ck_assert_ptr_nonnull(bs->x8); /* a subset of bytes is bytes */
  ck_assert_ptr_null(bs->x);
  tu_same_values(bs, fs);
  ck_assert(memcmp(bs->labels, fs->labels, 5 * sizeof(int32_t)) == 0);
  /* Saved as ubyte, and reloaded equal. */
  unsigned char h[12];
  save_and_reload(bs, 1, h);
  ck_assert_int_eq(h[2], 0x08);
  /* Once scaled to fractions, saved as float32. */
  ck_ok(nnkit_dataset_scale(bs, 1.0f / 255, 0));
  ck_ok(nnkit_dataset_scale(fs, 1.0f / 255, 0));
  tu_same_values(bs, fs);
  save_and_reload(bs, 0, h);
  ck_assert_int_eq(h[2], 0x0D);
  nnkit_dataset_free(b);
  nnkit_dataset_free(f);
  nnkit_dataset_free(bs);
  nnkit_dataset_free(fs);
}
END_TEST

START_TEST(save_idx_round_trips_mnist_layout)
{
  float x[12];
  for (int i = 0; i < 12; i++)
    x[i] = tiny_px[i];
  const int32_t labels[3] = {2, 0, 1};
  const size_t shape[3] = {1, 2, 2};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, labels, 3, shape, 3, 10));
  for (int gzip = 0; gzip < 2; gzip++) {
    unsigned char h[12];
    save_and_reload(ds, gzip, h);
    /* ubyte, N x H x W: MNIST's idx3 layout. */
    ck_assert(h[0] == 0 && h[1] == 0 && h[2] == 0x08 && h[3] == 3);
    ck_assert(h[7] == 3 && h[11] == 2);
  }
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(save_idx_round_trips_floats_and_ranks)
{
  float x[24];
  for (int i = 0; i < 24; i++)
    x[i] = (float)i - 3.5f; /* not bytes: saved as float32 */
  const size_t shapes[4][3] = {{1}, {12}, {3, 2, 2}, {1, 3, 4}};
  const size_t ndims[4] = {1, 1, 3, 3};
  const size_t counts[4] = {24, 2, 2, 2};
  const int file_ndim[4] = {1, 2, 4, 3};
  for (int r = 0; r < 4; r++) {
    nnkit_dataset *ds = NULL;
    ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, counts[r], shapes[r],
                                     ndims[r], 0));
    for (int gzip = 0; gzip < 2; gzip++) {
      unsigned char h[12];
      save_and_reload(ds, gzip, h);
      ck_assert_int_eq(h[2], 0x0D);
      ck_assert_int_eq(h[3], file_ndim[r]);
    }
    nnkit_dataset_free(ds);
  }
}
END_TEST

START_TEST(save_idx_two_dim_samples_reload_as_one_channel)
{
  /* IDX cannot tell {H, W} from {1, H, W}: both are N x H x W files. */
  float x[12] = {0};
  const size_t shape[2] = {2, 3};
  nnkit_dataset *ds = NULL, *back = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, 2, shape, 2, 0));
  char img[512];
  tu_tmp_path(img, sizeof img, "twod");
  ck_ok(nnkit_dataset_save_idx(ds, img, NULL, 0));
  ck_ok(nnkit_dataset_load_idx(&back, img, NULL, 0));
  ck_assert_uint_eq(nnkit_dataset_ndim(back), 3);
  ck_assert_uint_eq(nnkit_dataset_dim(back, 0), 1);
  ck_assert_uint_eq(nnkit_dataset_dim(back, 1), 2);
  ck_assert_uint_eq(nnkit_dataset_dim(back, 2), 3);
  nnkit_dataset_free(back);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(save_idx_replaces_existing_file)
{
  char img[512];
  tu_tmp_path(img, sizeof img, "replace");
  write_raw(img, "old contents", 12);
  float x[2] = {1, 2};
  size_t shape[1] = {2};
  nnkit_dataset *ds = NULL, *back = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, 1, shape, 1, 0));
  ck_ok(nnkit_dataset_save_idx(ds, img, NULL, 0));
  ck_ok(nnkit_dataset_load_idx(&back, img, NULL, 0));
  ck_assert_float_eq(nnkit_dataset_data(back)[1], 2);
  ck_assert_int_eq(count_temps(img), 0);
  struct stat sb;
  ck_assert_int_eq(stat(img, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 0777, 0644);
  nnkit_dataset_free(back);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(save_idx_failure_leaves_no_file)
{
  float x[2] = {1, 2};
  int32_t labels[2] = {0, 1};
  size_t shape[1] = {1};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, labels, 2, shape, 1, 0));
  char dir[512], img[600], lab[600];
  tu_tmp_path(dir, sizeof dir, "no_such_dir");
  snprintf(img, sizeof img, "%s/img.idx", dir);
  ck_fails(nnkit_dataset_save_idx(ds, img, NULL, 0), NNKIT_E_IO, img);
  ck_assert(!file_exists(img));
  ck_assert(!file_exists(dir));
  /* Images writable, labels not: the images file must stay untouched,
   * because both are written in full before either is renamed. */
  tu_tmp_path(img, sizeof img, "keep_img");
  write_raw(img, "old", 3);
  snprintf(lab, sizeof lab, "%s/lab.idx", dir);
  ck_fails(nnkit_dataset_save_idx(ds, img, lab, 1), NNKIT_E_IO,
           "directory exists");
  size_t n;
  unsigned char *raw = read_raw(img, &n);
  ck_assert_uint_eq(n, 3);
  ck_assert(memcmp(raw, "old", 3) == 0);
  free(raw);
  ck_assert_int_eq(count_temps(img), 0);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(save_idx_write_error_midway_leaves_no_file)
{
  /* A file size limit makes write() fail with EFBIG once the temporary
   * file holds 1000 bytes: the save must fail cleanly and remove it. */
  enum { N = 20000 };
  static float x[N];
  for (int i = 0; i < N; i++)
    x[i] = (float)(i % 200);
  size_t shape[1] = {1};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, NULL, N, shape, 1, 0));
  char img[512];
  tu_tmp_path(img, sizeof img, "efbig");
  struct rlimit old, small;
  ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
  small = old;
  small.rlim_cur = 1000;
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
  nnkit_clear_error();
  nnkit_status st = nnkit_dataset_save_idx(ds, img, NULL, 0);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  ck_assert_msg(st == NNKIT_E_IO, "got %d (%s)", (int)st, nnkit_last_error());
  ck_assert_ptr_nonnull(strstr(nnkit_last_error(), "nothing was written"));
  ck_assert(!file_exists(img));
  ck_assert_int_eq(count_temps(img), 0);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(save_idx_rejects_bad_requests)
{
  float x[2] = {1, 2}, t[2] = {0.5f, 1};
  int32_t big[2] = {0, 300};
  size_t shape[1] = {1};
  char img[512], lab[512];
  tu_tmp_path(img, sizeof img, "rej_img");
  tu_tmp_path(lab, sizeof lab, "rej_lab");
  nnkit_dataset *plain = NULL, *reg = NULL, *wide = NULL;
  ck_ok(nnkit_dataset_from_buffers(&plain, x, NULL, 2, shape, 1, 0));
  ck_ok(nnkit_dataset_from_targets(&reg, x, t, 2, shape, 1, 1));
  ck_ok(nnkit_dataset_from_buffers(&wide, x, big, 2, shape, 1, 0));
  ck_fails(nnkit_dataset_save_idx(plain, img, lab, 0), NNKIT_E_INVALID,
           "no labels");
  ck_fails(nnkit_dataset_save_idx(reg, img, lab, 0), NNKIT_E_INVALID,
           "regression");
  ck_fails(nnkit_dataset_save_idx(wide, img, lab, 0), NNKIT_E_INVALID,
           "sample 1 has label 300");
  ck_fails(nnkit_dataset_save_idx(NULL, img, NULL, 0), NNKIT_E_INVALID,
           "ds is NULL");
  ck_fails(nnkit_dataset_save_idx(plain, NULL, NULL, 0), NNKIT_E_INVALID,
           "images_path is NULL");
  /* Rejected requests write nothing at all. */
  ck_assert(!file_exists(img));
  ck_assert(!file_exists(lab));
  ck_assert_int_eq(count_temps(img), 0);
  /* A regression set may still save its samples. */
  ck_ok(nnkit_dataset_save_idx(reg, img, NULL, 0));
  ck_assert(file_exists(img));
  nnkit_dataset_free(plain);
  nnkit_dataset_free(reg);
  nnkit_dataset_free(wide);
}
END_TEST

/* ---- allocation failures --------------------------------------------- */

/* Runs op with the k-th allocation failing for k = 1, 2, ... until op
 * succeeds; every failure must be NNKIT_E_NOMEM with *out NULL. Returns
 * how many allocations op needed. */
typedef nnkit_status (*alloc_op)(nnkit_dataset **out, const void *arg);

static int sweep_alloc_failures(alloc_op op, const void *arg)
{
  for (uint64_t k = 1; k < 100; k++) {
    nnkit_dataset *ds = SENTINEL;
    nnkit__alloc_fail_after(k);
    nnkit_status st = op(&ds, arg);
    nnkit__alloc_fail_after(0);
    if (st == NNKIT_OK) {
      ck_assert_ptr_nonnull(ds);
      nnkit_dataset_free(ds);
      ck_assert_uint_gt(k, 1); /* at least one allocation was exercised */
      return (int)k - 1;
    }
    ck_assert_msg(st == NNKIT_E_NOMEM, "k=%d: status %d (%s)", (int)k,
                  (int)st, nnkit_last_error());
    ck_assert_msg(ds == NULL, "k=%d: *out not NULL", (int)k);
    ck_assert(strlen(nnkit_last_error()) > 0);
  }
  ck_abort_msg("op never succeeded");
  return -1;
}

static nnkit_status op_load(nnkit_dataset **out, const void *arg)
{
  const char *const *paths = arg;
  return nnkit_dataset_load_idx(out, paths[0], paths[1], 0);
}

static nnkit_status op_from_buffers(nnkit_dataset **out, const void *arg)
{
  (void)arg;
  const float x[4] = {1, 2, 3, 4};
  const int32_t labels[2] = {0, 1};
  const size_t shape[1] = {2};
  return nnkit_dataset_from_buffers(out, x, labels, 2, shape, 1, 0);
}

static nnkit_status op_from_bytes(nnkit_dataset **out, const void *arg)
{
  (void)arg;
  const uint8_t x[4] = {1, 2, 3, 4};
  const int32_t labels[2] = {0, 1};
  const size_t shape[1] = {2};
  return nnkit_dataset_from_bytes(out, x, labels, 2, shape, 1, 0);
}

static nnkit_status op_from_targets(nnkit_dataset **out, const void *arg)
{
  (void)arg;
  const float x[2] = {1, 2}, t[2] = {3, 4};
  const size_t shape[1] = {1};
  return nnkit_dataset_from_targets(out, x, t, 2, shape, 1, 1);
}

static nnkit_status op_subset(nnkit_dataset **out, const void *arg)
{
  const size_t idx[2] = {1, 0};
  return nnkit_dataset_subset(out, arg, idx, 2);
}

START_TEST(allocation_failures_are_clean)
{
  char img[512], lab[512];
  tiny_pair(img, lab, sizeof img, 1, 0);
  const char *paths[2] = {img, lab};
  ck_assert_int_ge(sweep_alloc_failures(op_load, paths), 3);
  ck_assert_int_eq(sweep_alloc_failures(op_from_buffers, NULL), 3);
  ck_assert_int_eq(sweep_alloc_failures(op_from_bytes, NULL), 3);
  ck_assert_int_eq(sweep_alloc_failures(op_from_targets, NULL), 3);
  nnkit_dataset *src = NULL;
  ck_ok(nnkit_dataset_load_idx(&src, img, lab, 0));
  ck_assert_int_eq(sweep_alloc_failures(op_subset, src), 3);
  /* Saving: each failure is NOMEM and leaves neither file nor temp. */
  char out_img[512], out_lab[512];
  tu_tmp_path(out_img, sizeof out_img, "nomem_img");
  tu_tmp_path(out_lab, sizeof out_lab, "nomem_lab");
  for (uint64_t k = 1;; k++) {
    nnkit__alloc_fail_after(k);
    nnkit_status st = nnkit_dataset_save_idx(src, out_img, out_lab, 1);
    nnkit__alloc_fail_after(0);
    if (st == NNKIT_OK)
      break;
    ck_assert_int_eq(st, NNKIT_E_NOMEM);
    ck_assert(!file_exists(out_img) && !file_exists(out_lab));
    ck_assert_int_eq(count_temps(out_img) + count_temps(out_lab), 0);
  }
  ck_assert(file_exists(out_img) && file_exists(out_lab));
  /* The float copy of a compact set: NULL and a sentence when it cannot be
   * allocated, the set unharmed; then built on a later call. */
  ck_assert_ptr_nonnull(src->x8);
  nnkit_clear_error();
  nnkit__alloc_fail_after(1);
  const float *x = nnkit_dataset_data(src);
  nnkit__alloc_fail_after(0);
  ck_assert_ptr_null(x);
  ck_assert_ptr_nonnull(strstr(nnkit_last_error(), "out of memory for the float copy"));
  ck_assert_ptr_null(src->x);
  x = nnkit_dataset_data(src);
  ck_assert_ptr_nonnull(x);
  for (size_t i = 0; i < 12; i++)
    ck_assert_float_eq(x[i], (float)tiny_px[i]);
  nnkit_dataset_free(src);
}
END_TEST

static Suite *data_suite(void)
{
  Suite *s = suite_create("data");
  TCase *t = tcase_create("dataset");
  tcase_add_test(t, from_buffers_copies_inputs);
  tcase_add_test(t, from_buffers_shapes_and_class_count);
  tcase_add_test(t, from_buffers_rejects_bad_arguments);
  tcase_add_test(t, from_bytes_keeps_bytes_and_checks_arguments);
  tcase_add_test(t, from_buffers_rejects_bad_labels_and_values);
  tcase_add_test(t, inferred_class_count_is_limited);
  tcase_add_test(t, from_targets_builds_regression_set);
  tcase_add_test(t, from_targets_rejects_bad_arguments);
  tcase_add_test(t, subset_copies_in_order_with_repeats);
  tcase_add_test(t, subset_of_regression_set_copies_targets);
  tcase_add_test(t, subset_rejects_bad_index);
  tcase_add_test(t, scale_maps_values_in_place);
  tcase_add_test(t, scale_rejects_non_finite_and_keeps_data);
  tcase_add_test(t, class_counts_counts_each_class);
  tcase_add_test(t, accessors_accept_null);
  suite_add_tcase(s, t);

  t = tcase_create("idx_load");
  tcase_add_test(t, load_idx_plain_and_gzip);
  tcase_add_test(t, load_idx_detects_gzip_by_magic_not_name);
  tcase_add_test(t, load_idx_maps_every_rank);
  tcase_add_test(t, load_idx_float32);
  tcase_add_test(t, load_idx_reads_in_chunks);
  tcase_add_test(t, load_idx_rejects_missing_file_and_directory);
  tcase_add_test(t, loaders_refuse_a_fifo_promptly);
  tcase_add_test(t, load_idx_rejects_bad_magic_type_and_rank);
  tcase_add_test(t, load_idx_rejects_truncated_plain);
  tcase_add_test(t, load_idx_rejects_truncated_gzip);
  tcase_add_test(t, load_idx_rejects_trailing_bytes);
  tcase_add_test(t, load_idx_rejects_absurd_dimensions);
  tcase_add_test(t, load_idx_rejects_non_finite_floats);
  tcase_add_test(t, load_idx_rejects_bad_labels);
  suite_add_tcase(s, t);

  t = tcase_create("idx_save");
  tcase_add_test(t, save_idx_round_trips_mnist_layout);
  tcase_add_test(t, save_idx_round_trips_floats_and_ranks);
  tcase_add_test(t, save_idx_two_dim_samples_reload_as_one_channel);
  tcase_add_test(t, save_idx_replaces_existing_file);
  tcase_add_test(t, save_idx_failure_leaves_no_file);
  tcase_add_test(t, save_idx_write_error_midway_leaves_no_file);
  tcase_add_test(t, save_idx_rejects_bad_requests);
  suite_add_tcase(s, t);

  t = tcase_create("compact");
  tcase_add_test(t, idx_ubyte_loads_compact_and_reads_as_floats);
  tcase_add_test(t, compact_scale_overflow_names_sample_and_changes_nothing);
  tcase_add_test(t, compact_subset_and_save_keep_the_values);
  suite_add_tcase(s, t);

  t = tcase_create("alloc");
  tcase_add_test(t, allocation_failures_are_clean);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return nnkit_test_run(data_suite()); }
