/* IDX files (the MNIST format), plain or gzip, read through zlib.
 *
 * Layout: bytes 0 0 TYPE NDIM, NDIM big-endian uint32 sizes, then the
 * values in row-major order (0x08 unsigned bytes, 0x0D big-endian float32).
 * gzip is detected by its magic bytes; zlib reads plain files unchanged. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "internal.h"

#define IDX_UBYTE 0x08
#define IDX_FLOAT 0x0D
#define IDX_MAX_DIMS 4
/* Deflate cannot expand data by more than about 1032:1. */
#define GZIP_MAX_RATIO 1100

typedef struct idx_file {
  const char *path;
  gzFile gz;
  int gzipped;
  uint64_t file_size;
  int type;
  int ndim;
  size_t dims[IDX_MAX_DIMS];
  size_t count; /* product of all dims */
} idx_file;

static uint32_t be32(const unsigned char *b)
{
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void put_be32(unsigned char *b, uint32_t v)
{
  b[0] = (unsigned char)(v >> 24);
  b[1] = (unsigned char)(v >> 16);
  b[2] = (unsigned char)(v >> 8);
  b[3] = (unsigned char)v;
}

/* Reads exactly n bytes; 0 on a short read (truncation or a zlib error). */
static int read_exact(idx_file *f, void *buf, size_t n)
{
  unsigned char *p = buf;
  while (n > 0) {
    unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
    int got = gzread(f->gz, p, chunk);
    if (got <= 0)
      return 0;
    p += got;
    n -= (size_t)got;
  }
  return 1;
}

static void idx_close(idx_file *f)
{
  if (f->gz)
    gzclose(f->gz);
  f->gz = NULL;
}

/* Opens and parses the header; on failure the file is closed. */
static nnkit_status idx_open(idx_file *f, const char *path)
{
  memset(f, 0, sizeof *f);
  f->path = path;
  FILE *raw = fopen(path, "rb");
  if (!raw)
    return nnkit__err(NNKIT_E_IO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char magic[2] = {0, 0};
  size_t m = fread(magic, 1, 2, raw);
  struct stat sb;
  f->file_size = fstat(fileno(raw), &sb) == 0 ? (uint64_t)sb.st_size : 0;
  fclose(raw);
  f->gzipped = m == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  f->gz = gzopen(path, "rb");
  if (!f->gz)
    return nnkit__err(NNKIT_E_IO, "%s: cannot open: %s", path,
                      errno ? strerror(errno) : "zlib could not open it");
  unsigned char head[4];
  if (!read_exact(f, head, 4)) {
    idx_close(f);
    return nnkit__err(NNKIT_E_FORMAT,
                      "%s: truncated: the file ends inside the 4-byte IDX magic; "
                      "re-download or regenerate it", path);
  }
  if (head[0] != 0 || head[1] != 0) {
    idx_close(f);
    return nnkit__err(NNKIT_E_FORMAT,
                      "%s: not an IDX file (magic %02x %02x %02x %02x; IDX files start "
                      "with 00 00 TYPE NDIM)", path, head[0], head[1], head[2], head[3]);
  }
  f->type = head[2];
  f->ndim = head[3];
  if (f->type != IDX_UBYTE && f->type != IDX_FLOAT) {
    idx_close(f);
    return nnkit__err(NNKIT_E_FORMAT,
                      "%s: IDX value type 0x%02x is not supported; use 0x08 (unsigned "
                      "byte) or 0x0D (float32)", path, f->type);
  }
  if (f->ndim < 1 || f->ndim > IDX_MAX_DIMS) {
    idx_close(f);
    return nnkit__err(NNKIT_E_FORMAT,
                      "%s: %d dimensions; nnkit reads IDX files of 1 to %d dimensions",
                      path, f->ndim, IDX_MAX_DIMS);
  }
  unsigned char dims[4 * IDX_MAX_DIMS];
  if (!read_exact(f, dims, 4 * (size_t)f->ndim)) {
    idx_close(f);
    return nnkit__err(NNKIT_E_FORMAT,
                      "%s: truncated: the file ends inside the dimension sizes", path);
  }
  int ovf = 0;
  size_t count = 1;
  for (int i = 0; i < f->ndim; i++) {
    f->dims[i] = be32(dims + 4 * i);
    if (f->dims[i] == 0) {
      idx_close(f);
      return nnkit__err(NNKIT_E_FORMAT, "%s: dimension %d has size 0", path, i);
    }
    count = nnkit__mul_size(count, f->dims[i], &ovf);
  }
  size_t vsize = f->type == IDX_FLOAT ? 4 : 1;
  size_t bytes = nnkit__mul_size(count, vsize, &ovf);
  if (!ovf)
    nnkit__mul_size(bytes, sizeof(float), &ovf); /* what we will allocate */
  if (ovf) {
    idx_close(f);
    return nnkit__err(NNKIT_E_FORMAT,
                      "%s: the dimension sizes multiply past the addressable size; the "
                      "header is corrupt", path);
  }
  /* A header promising far more data than the file can hold is corrupt;
   * refuse it before allocating. */
  uint64_t limit = f->gzipped ? f->file_size * GZIP_MAX_RATIO + 4096 : f->file_size;
  if (f->file_size && (uint64_t)bytes > limit) {
    idx_close(f);
    return nnkit__err(NNKIT_E_FORMAT,
                      "%s: truncated: the header promises %zu bytes of values but the "
                      "file has %llu bytes; re-download or regenerate it", path, bytes,
                      (unsigned long long)f->file_size);
  }
  f->count = count;
  return NNKIT_OK;
}

/* Reads all values as floats into dst (f->count values), then checks that
 * nothing follows them. Closes the file. */
static nnkit_status idx_read_values(idx_file *f, float *dst)
{
  enum { CHUNK = 1 << 16 };
  unsigned char buf[CHUNK];
  size_t vsize = f->type == IDX_FLOAT ? 4 : 1, done = 0;
  nnkit_status st = NNKIT_OK;
  while (done < f->count) {
    size_t n = f->count - done;
    if (n > CHUNK / vsize)
      n = CHUNK / vsize;
    if (!read_exact(f, buf, n * vsize)) {
      st = nnkit__err(NNKIT_E_FORMAT,
                      "%s: truncated: the header promises %zu values but the data ends "
                      "near value %zu; re-download or regenerate the file", f->path,
                      f->count, done);
      break;
    }
    if (vsize == 1) {
      for (size_t i = 0; i < n; i++)
        dst[done + i] = (float)buf[i];
    } else {
      for (size_t i = 0; i < n; i++) {
        uint32_t bits = be32(buf + 4 * i);
        float v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v)) {
          st = nnkit__err(NNKIT_E_FORMAT, "%s: value %zu is %s; IDX data must be finite",
                          f->path, done + i, isnan(v) ? "NaN" : "infinite");
          break;
        }
        dst[done + i] = v;
      }
      if (st != NNKIT_OK)
        break;
    }
    done += n;
  }
  if (st == NNKIT_OK) {
    unsigned char extra;
    if (gzread(f->gz, &extra, 1) == 1)
      st = nnkit__err(NNKIT_E_FORMAT,
                      "%s: trailing bytes after the %zu values the header describes; the "
                      "file is corrupt or not IDX", f->path, f->count);
  }
  idx_close(f);
  return st;
}

static nnkit_status read_labels(int32_t **out, size_t *count_out, const char *path)
{
  *out = NULL;
  idx_file f;
  nnkit_status st = idx_open(&f, path);
  if (st != NNKIT_OK)
    return st;
  if (f.ndim != 1 || f.type != IDX_UBYTE) {
    idx_close(&f);
    return nnkit__err(NNKIT_E_FORMAT,
                      "%s: a labels file must be 1-dimensional unsigned bytes (this one has "
                      "%d dimensions of type 0x%02x)", path, f.ndim, f.type);
  }
  float *tmp = nnkit__malloc(f.count * sizeof *tmp);
  int32_t *labels = nnkit__malloc(f.count * sizeof *labels);
  if (!tmp || !labels) {
    idx_close(&f);
    nnkit__free(tmp);
    nnkit__free(labels);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu labels", path, f.count);
  }
  st = idx_read_values(&f, tmp);
  for (size_t i = 0; st == NNKIT_OK && i < f.count; i++)
    labels[i] = (int32_t)tmp[i];
  nnkit__free(tmp);
  if (st != NNKIT_OK) {
    nnkit__free(labels);
    return st;
  }
  *out = labels;
  *count_out = f.count;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_dataset_load_idx(nnkit_dataset **out,
                                              const char *images_path,
                                              const char *labels_path,
                                              uint32_t num_classes)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_dataset_load_idx: out is NULL");
  *out = NULL;
  if (!images_path)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_dataset_load_idx: images_path is NULL");
  int32_t *labels = NULL;
  size_t nlabels = 0;
  nnkit_status st;
  if (labels_path) {
    st = read_labels(&labels, &nlabels, labels_path);
    if (st != NNKIT_OK)
      return st;
  }
  idx_file f;
  st = idx_open(&f, images_path);
  if (st != NNKIT_OK) {
    nnkit__free(labels);
    return st;
  }
  size_t shape[NNKIT_MAX_SAMPLE_DIMS], ndim;
  switch (f.ndim) {
  case 1: ndim = 1; shape[0] = 1; break;
  case 2: ndim = 1; shape[0] = f.dims[1]; break;
  case 3: ndim = 3; shape[0] = 1; shape[1] = f.dims[1]; shape[2] = f.dims[2]; break;
  default:
    ndim = 3;
    shape[0] = f.dims[1];
    shape[1] = f.dims[2];
    shape[2] = f.dims[3];
    break;
  }
  size_t count = f.dims[0];
  if (labels && nlabels != count) {
    idx_close(&f);
    nnkit__free(labels);
    return nnkit__err(NNKIT_E_FORMAT,
                      "%s has %zu labels but %s has %zu images; use matching files",
                      labels_path, nlabels, images_path, count);
  }
  if (labels) {
    uint32_t k = num_classes;
    for (size_t i = 0; i < count; i++) {
      if (k && (uint32_t)labels[i] >= k) {
        st = nnkit__err(NNKIT_E_INVALID,
                        "%s: sample %zu has label %d outside [0, %u); fix the file or "
                        "raise the class count", labels_path, i, (int)labels[i], k);
        idx_close(&f);
        nnkit__free(labels);
        return st;
      }
    }
  }
  nnkit_dataset *ds;
  st = nnkit__dataset_alloc(&ds, count, shape, ndim, labels != NULL, 0);
  if (st != NNKIT_OK) {
    idx_close(&f);
    nnkit__free(labels);
    return st;
  }
  st = idx_read_values(&f, ds->x);
  if (st != NNKIT_OK) {
    nnkit__free(labels);
    nnkit_dataset_free(ds);
    return st;
  }
  if (labels) {
    uint32_t k = num_classes;
    if (k == 0)
      for (size_t i = 0; i < count; i++)
        if ((uint32_t)labels[i] + 1 > k)
          k = (uint32_t)labels[i] + 1;
    memcpy(ds->labels, labels, count * sizeof *labels);
    ds->num_classes = k;
    nnkit__free(labels);
  }
  *out = ds;
  return NNKIT_OK;
}

/* ---- writing ------------------------------------------------------- */

typedef struct idx_writer {
  char *tmp;
  int fd;
  gzFile gz;
} idx_writer;

static nnkit_status writer_open(idx_writer *w, const char *path, int gzip)
{
  w->gz = NULL;
  w->fd = -1;
  w->tmp = nnkit__malloc(strlen(path) + 16);
  if (!w->tmp)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", path);
  sprintf(w->tmp, "%s.tmp.XXXXXX", path);
  w->fd = mkstemp(w->tmp);
  if (w->fd < 0) {
    nnkit_status st = nnkit__err(NNKIT_E_IO, "%s: cannot create a temporary file next "
                                 "to it: %s", path, strerror(errno));
    nnkit__free(w->tmp);
    w->tmp = NULL;
    return st;
  }
  int dupfd = dup(w->fd);
  w->gz = dupfd >= 0 ? gzdopen(dupfd, gzip ? "wb9" : "wbT") : NULL;
  if (!w->gz) {
    if (dupfd >= 0)
      close(dupfd);
    close(w->fd);
    unlink(w->tmp);
    nnkit__free(w->tmp);
    w->tmp = NULL;
    return nnkit__err(NNKIT_E_IO, "%s: cannot start writing", path);
  }
  return NNKIT_OK;
}

static int writer_put(idx_writer *w, const void *buf, size_t n)
{
  const unsigned char *p = buf;
  while (n > 0) {
    unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
    if (gzwrite(w->gz, p, chunk) != (int)chunk)
      return 0;
    p += chunk;
    n -= chunk;
  }
  return 1;
}

/* Finishes the file: flush, fsync, rename over path; or, when ok is 0 or
 * any step fails, removes the temporary file and leaves path untouched. */
static nnkit_status writer_close(idx_writer *w, const char *path, int ok)
{
  if (gzclose(w->gz) != Z_OK)
    ok = 0;
  if (ok && fsync(w->fd) != 0)
    ok = 0;
  if (close(w->fd) != 0)
    ok = 0;
  if (ok && rename(w->tmp, path) != 0)
    ok = 0;
  nnkit_status st = NNKIT_OK;
  if (!ok) {
    st = nnkit__err(NNKIT_E_IO, "%s: write failed: %s; nothing was written", path,
                    errno ? strerror(errno) : "I/O error");
    unlink(w->tmp);
  }
  nnkit__free(w->tmp);
  return st;
}

static nnkit_status write_idx(const char *path, int gzip, int type, int ndim,
                              const size_t *dims, const float *values, size_t count)
{
  for (int i = 0; i < ndim; i++)
    if (dims[i] > UINT32_MAX)
      return nnkit__err(NNKIT_E_INVALID, "%s: dimension %d (%zu) does not fit IDX's "
                        "32-bit sizes", path, i, dims[i]);
  idx_writer w;
  nnkit_status st = writer_open(&w, path, gzip);
  if (st != NNKIT_OK)
    return st;
  unsigned char head[4 + 4 * IDX_MAX_DIMS] = {0, 0, (unsigned char)type,
                                              (unsigned char)ndim};
  for (int i = 0; i < ndim; i++)
    put_be32(head + 4 + 4 * i, (uint32_t)dims[i]);
  int ok = writer_put(&w, head, 4 + 4 * (size_t)ndim);
  enum { CHUNK = 1 << 14 };
  unsigned char buf[4 * CHUNK];
  for (size_t s = 0; ok && s < count; s += CHUNK) {
    size_t n = count - s < CHUNK ? count - s : CHUNK;
    if (type == IDX_UBYTE) {
      for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)values[s + i];
      ok = writer_put(&w, buf, n);
    } else {
      for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &values[s + i], sizeof bits);
        put_be32(buf + 4 * i, bits);
      }
      ok = writer_put(&w, buf, 4 * n);
    }
  }
  return writer_close(&w, path, ok);
}

NNKIT_API nnkit_status nnkit_dataset_save_idx(const nnkit_dataset *ds,
                                              const char *images_path,
                                              const char *labels_path, int gzip)
{
  if (!ds || !images_path)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_dataset_save_idx: ds and images_path must be non-NULL");
  if (labels_path && !ds->labels)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_dataset_save_idx: %s: the dataset has no labels to write",
                      labels_path);
  if (ds->labels && labels_path)
    for (size_t i = 0; i < ds->count; i++)
      if (ds->labels[i] > 255)
        return nnkit__err(NNKIT_E_INVALID,
                          "nnkit_dataset_save_idx: label %d of sample %zu does not fit "
                          "an IDX byte", (int)ds->labels[i], i);
  size_t n = ds->count * ds->sample_size;
  int bytes = 1;
  for (size_t i = 0; i < n && bytes; i++)
    bytes = ds->x[i] >= 0 && ds->x[i] <= 255 && ds->x[i] == floorf(ds->x[i]);
  size_t dims[IDX_MAX_DIMS];
  int ndim = 1;
  dims[0] = ds->count;
  if (ds->ndim == 3 && ds->shape[0] == 1) { /* N x H x W, as MNIST */
    dims[ndim++] = ds->shape[1];
    dims[ndim++] = ds->shape[2];
  } else if (!(ds->ndim == 1 && ds->shape[0] == 1)) {
    for (size_t i = 0; i < ds->ndim; i++)
      dims[ndim++] = ds->shape[i];
  }
  nnkit_status st = write_idx(images_path, gzip, bytes ? IDX_UBYTE : IDX_FLOAT, ndim,
                              dims, ds->x, n);
  if (st != NNKIT_OK || !labels_path)
    return st;
  float *lv = nnkit__malloc(ds->count * sizeof *lv);
  if (!lv)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", labels_path);
  for (size_t i = 0; i < ds->count; i++)
    lv[i] = (float)ds->labels[i];
  size_t ldim = ds->count;
  st = write_idx(labels_path, gzip, IDX_UBYTE, 1, &ldim, lv, ds->count);
  nnkit__free(lv);
  return st;
}
