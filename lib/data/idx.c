/* IDX files (the MNIST format), plain or gzip-compressed.
 *
 * Layout: bytes 00 00 TYPE NDIM, then NDIM big-endian uint32 sizes, then
 * the values in row-major order: 0x08 unsigned bytes or 0x0D big-endian
 * float32. Reading goes through zlib's gz* functions: they recognise gzip
 * by its magic bytes 1f 8b (never by the file name) and pass plain files
 * through unchanged. A header is checked against the file's size before
 * anything is allocated, so a corrupt header cannot ask for gigabytes.
 *
 * Writing is atomic: each file goes to "<target>.tmp.XXXXXX" next to
 * path's final target (symbolic links followed), is fsync'ed, and only
 * then renamed over it (see nnkit__tmpfile_next_to). Reading takes
 * regular files only (nnkit__open_regular). */
#include <errno.h>
#include <fcntl.h>
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
/* Bytes moved per zlib call; also the size of the stack buffers. */
#define IDX_CHUNK 32768u
/* Deflate expands at most about 1032:1, so a gzip file of n bytes cannot
 * hold more than n * 1032 bytes of content. */
#define GZIP_MAX_RATIO 1032u

/* ---- reading ---------------------------------------------------------- */

typedef struct idx_reader {
  const char *path;   /* borrowed, for messages */
  gzFile gz;          /* NULL once closed */
  uint64_t file_size; /* bytes on disk (compressed size for gzip) */
  int type;           /* IDX_UBYTE or IDX_FLOAT */
  int ndim;
  size_t dims[IDX_MAX_DIMS];
  size_t count;       /* values: product of dims */
  size_t vsize;       /* bytes per value */
  size_t head_len;    /* 4 + 4 * ndim */
} idx_reader;

static uint32_t get_be32(const unsigned char *b)
{
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
         (uint32_t)b[3];
}

static void put_be32(unsigned char *b, uint32_t v)
{
  b[0] = (unsigned char)(v >> 24);
  b[1] = (unsigned char)(v >> 16);
  b[2] = (unsigned char)(v >> 8);
  b[3] = (unsigned char)v;
}

/* A readable name for an IDX type byte, for messages. */
static const char *type_name(int type)
{
  switch (type) {
  case 0x08: return "unsigned byte";
  case 0x09: return "signed byte";
  case 0x0B: return "int16";
  case 0x0C: return "int32";
  case 0x0D: return "float32";
  case 0x0E: return "float64";
  default: return "unknown";
  }
}

/* Writes "60000 x 28 x 28" into buf. */
static void format_dims(char *buf, size_t len, const size_t *dims, int ndim)
{
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < ndim && used < len; i++) {
    int n = snprintf(buf + used, len - used, i ? " x %zu" : "%zu", dims[i]);
    if (n < 0)
      break;
    used += (size_t)n;
  }
}

static void reader_close(idx_reader *r)
{
  if (r->gz)
    gzclose(r->gz);
  r->gz = NULL;
}

/* Reads up to n bytes; fewer means the data ended or failed (ask
 * stream_error which). */
static size_t read_up_to(idx_reader *r, unsigned char *buf, size_t n)
{
  size_t done = 0;
  while (done < n) {
    size_t left = n - done;
    unsigned want = left > IDX_CHUNK ? IDX_CHUNK : (unsigned)left;
    int got = gzread(r->gz, buf + done, want);
    if (got <= 0)
      break;
    done += (size_t)got;
  }
  return done;
}

/* zlib's message for the last error, without the "<fd:N>: " prefix it
 * gives gzdopen'ed files. */
static const char *zlib_message(gzFile gz, int *code)
{
  const char *msg = gzerror(gz, code);
  const char *colon = strstr(msg, ": ");
  return strncmp(msg, "<fd:", 4) == 0 && colon ? colon + 2 : msg;
}

/* The status and sentence for a short read. `promise` says what the file
 * should have held ("the header promises 10 x 3 bytes") and `have` how many
 * of those bytes it did hold. */
static nnkit_status stream_error(idx_reader *r, const char *promise,
                                 uint64_t have)
{
  int code = Z_OK;
  const char *zmsg = zlib_message(r->gz, &code);
  if (code == Z_ERRNO) /* zlib's message is strerror(errno) */
    return nnkit__err(NNKIT_E_IO, "%s: read failed: %s; check the disk or "
                      "copy the file again", r->path, zmsg);
  if (code == Z_MEM_ERROR)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory while decompressing",
                      r->path);
  if (code == Z_DATA_ERROR)
    return nnkit__err(NNKIT_E_FORMAT, "%s: corrupt gzip data (%s); "
                      "re-download the file", r->path, zmsg);
  /* Plain end of file (Z_OK) or a gzip stream cut short (Z_BUF_ERROR). */
  return nnkit__err(NNKIT_E_FORMAT, "%s: truncated: %s but the file ends "
                    "after %llu; re-download the file", r->path, promise,
                    (unsigned long long)have);
}

/* Opens path with one descriptor and hands it to zlib. */
static nnkit_status reader_fopen(idx_reader *r, const char *path)
{
  int fd;
  nnkit_status st = nnkit__open_regular(&fd, &r->file_size, path, "IDX file");
  if (st != NNKIT_OK)
    return st;
  r->gz = gzdopen(fd, "rb");
  if (!r->gz) {
    close(fd); /* gzdopen leaves fd open when it fails */
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory starting zlib", path);
  }
  gzbuffer(r->gz, 2 * IDX_CHUNK);
  return NNKIT_OK;
}

/* Checks the 4 magic bytes 00 00 TYPE NDIM. */
static nnkit_status parse_magic(idx_reader *r)
{
  unsigned char m[4];
  size_t got = read_up_to(r, m, 4);
  if (got < 4)
    return stream_error(r, "an IDX file starts with 4 magic bytes", got);
  if (m[0] != 0 || m[1] != 0)
    return nnkit__err(NNKIT_E_FORMAT, "%s: not an IDX file: it starts with "
                      "%02x %02x %02x %02x%s but IDX files start with 00 00 "
                      "<type> <ndim>; check that this is the right file",
                      r->path, m[0], m[1], m[2], m[3],
                      gzdirect(r->gz) ? "" : " after gunzip");
  r->type = m[2];
  r->ndim = m[3];
  if (r->type != IDX_UBYTE && r->type != IDX_FLOAT)
    return nnkit__err(NNKIT_E_FORMAT, "%s: IDX value type 0x%02x (%s) is not "
                      "supported; convert the file to 0x08 (unsigned byte) or "
                      "0x0D (float32)", r->path, r->type, type_name(r->type));
  if (r->ndim < 1 || r->ndim > IDX_MAX_DIMS)
    return nnkit__err(NNKIT_E_FORMAT, "%s: the header declares %d dimensions "
                      "but nnkit reads IDX files of 1 to %d (the sample count "
                      "first); check that this is an IDX data file", r->path,
                      r->ndim, IDX_MAX_DIMS);
  r->vsize = r->type == IDX_FLOAT ? 4 : 1;
  r->head_len = 4 + 4 * (size_t)r->ndim;
  return NNKIT_OK;
}

/* Reads the dimension sizes and rejects zero sizes and overflowing
 * products (of the values and of the floats we will allocate for them). */
static nnkit_status parse_dims(idx_reader *r)
{
  unsigned char b[4 * IDX_MAX_DIMS];
  size_t want = 4 * (size_t)r->ndim;
  size_t got = read_up_to(r, b, want);
  if (got < want) {
    char promise[96];
    snprintf(promise, sizeof promise, "the header promises %d dimension "
             "sizes (%zu bytes)", r->ndim, want);
    return stream_error(r, promise, got);
  }
  int ovf = 0;
  size_t count = 1;
  for (int i = 0; i < r->ndim; i++) {
    r->dims[i] = get_be32(b + 4 * i);
    if (r->dims[i] == 0)
      return nnkit__err(NNKIT_E_FORMAT, "%s: dimension %d of the header is "
                        "0, so the file holds no samples; re-create the file",
                        r->path, i);
    count = nnkit__mul_size(count, r->dims[i], &ovf);
  }
  nnkit__mul_size(count, sizeof(float) > r->vsize ? sizeof(float) : r->vsize,
                  &ovf);
  if (ovf) {
    char d[96];
    format_dims(d, sizeof d, r->dims, r->ndim);
    return nnkit__err(NNKIT_E_FORMAT, "%s: the header's sizes %s multiply "
                      "past the address space; the header is corrupt, "
                      "re-download the file", r->path, d);
  }
  r->count = count;
  return NNKIT_OK;
}

/* "the header promises 60000 x 28 x 28 bytes" or "... float32 values
 * (N bytes)", for truncation messages. */
static void describe_promise(char *buf, size_t len, const idx_reader *r)
{
  char d[96];
  format_dims(d, sizeof d, r->dims, r->ndim);
  if (r->type == IDX_UBYTE)
    snprintf(buf, len, "the header promises %s bytes", d);
  else
    snprintf(buf, len, "the header promises %s float32 values (%zu bytes)", d,
             r->count * 4);
}

/* Compares what the header promises with the size of the file, before
 * anything is allocated: exact for plain files, a bound for gzip. */
static nnkit_status check_size(idx_reader *r)
{
  uint64_t bytes = (uint64_t)r->count * r->vsize;
  char promise[160];
  describe_promise(promise, sizeof promise, r);
  if (gzdirect(r->gz)) {
    uint64_t have = r->file_size > r->head_len ? r->file_size - r->head_len
                                               : 0;
    if (bytes > have)
      return nnkit__err(NNKIT_E_FORMAT, "%s: truncated: %s but the file ends "
                        "after %llu; re-download the file", r->path, promise,
                        (unsigned long long)have);
    if (bytes < have)
      return nnkit__err(NNKIT_E_FORMAT, "%s: %llu trailing bytes after the "
                        "data (%s); the file is corrupt or not IDX, "
                        "re-download it", r->path,
                        (unsigned long long)(have - bytes), promise);
    return NNKIT_OK;
  }
  if (bytes / GZIP_MAX_RATIO > r->file_size)
    return nnkit__err(NNKIT_E_FORMAT, "%s: truncated or corrupt: %s but a "
                      "%llu-byte gzip file cannot hold that much; re-download "
                      "the file", r->path, promise,
                      (unsigned long long)r->file_size);
  return NNKIT_OK;
}

/* Opens an IDX file and validates its header. On failure r is closed. */
static nnkit_status reader_open(idx_reader *r, const char *path)
{
  memset(r, 0, sizeof *r);
  r->path = path;
  nnkit_status st = reader_fopen(r, path);
  if (st == NNKIT_OK)
    st = parse_magic(r);
  if (st == NNKIT_OK)
    st = parse_dims(r);
  if (st == NNKIT_OK)
    st = check_size(r);
  if (st != NNKIT_OK)
    reader_close(r);
  return st;
}

/* Converts n values from buf to floats at dst, rejecting NaN and infinity;
 * `first` is the index of buf's first value in the file. */
static nnkit_status convert_values(const idx_reader *r, float *dst,
                                   const unsigned char *buf, size_t n,
                                   size_t first)
{
  if (r->type == IDX_UBYTE) {
    for (size_t i = 0; i < n; i++)
      dst[i] = (float)buf[i];
    return NNKIT_OK;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t bits = get_be32(buf + 4 * i);
    float v;
    memcpy(&v, &bits, sizeof v);
    if (!isfinite(v)) {
      size_t at = first + i, per = r->count / r->dims[0];
      return nnkit__err(NNKIT_E_FORMAT, "%s: sample %zu, value %zu is %s; "
                        "IDX data must be finite, regenerate the file",
                        r->path, at / per, at % per,
                        isnan(v) ? "NaN" : "infinite");
    }
    dst[i] = v;
  }
  return NNKIT_OK;
}

/* Checks that the data ended exactly where the header said: no trailing
 * bytes, and for gzip an intact end of stream (length and CRC). */
static nnkit_status check_end(idx_reader *r)
{
  unsigned char extra;
  if (read_up_to(r, &extra, 1) == 1) {
    char promise[160];
    describe_promise(promise, sizeof promise, r);
    return nnkit__err(NNKIT_E_FORMAT, "%s: trailing bytes after the data "
                      "(%s); the file is corrupt or not IDX, re-download it",
                      r->path, promise);
  }
  int code = Z_OK;
  gzerror(r->gz, &code);
  if (code == Z_OK)
    return NNKIT_OK;
  if (code == Z_ERRNO || code == Z_MEM_ERROR || code == Z_DATA_ERROR)
    return stream_error(r, "", 0);
  return nnkit__err(NNKIT_E_FORMAT, "%s: truncated: the gzip stream ends "
                    "after the data but before its end marker and checksum; "
                    "re-download the file", r->path);
}

/* Reads all r->count values, as floats into fx, as bytes into bx (a
 * ubyte file kept compact) or (labels files) as int32 into lab, then
 * checks the end of the file. */
static nnkit_status read_values(idx_reader *r, float *fx, uint8_t *bx,
                                int32_t *lab)
{
  unsigned char buf[IDX_CHUNK];
  size_t per_chunk = IDX_CHUNK / r->vsize;
  for (size_t done = 0; done < r->count;) {
    size_t n = r->count - done < per_chunk ? r->count - done : per_chunk;
    size_t got = read_up_to(r, buf, n * r->vsize);
    if (got < n * r->vsize) {
      char promise[160];
      describe_promise(promise, sizeof promise, r);
      return stream_error(r, promise, done * r->vsize + got);
    }
    if (lab) {
      for (size_t i = 0; i < n; i++)
        lab[done + i] = buf[i];
    } else if (bx) {
      memcpy(bx + done, buf, n);
    } else {
      nnkit_status st = convert_values(r, fx + done, buf, n, done);
      if (st != NNKIT_OK)
        return st;
    }
    done += n;
  }
  return check_end(r);
}

/* A labels file is 1-dimensional unsigned bytes with one label per image. */
static nnkit_status check_labels_header(const idx_reader *lab,
                                        const idx_reader *img)
{
  if (lab->ndim != 1 || lab->type != IDX_UBYTE)
    return nnkit__err(NNKIT_E_FORMAT, "%s: a labels file must hold "
                      "1-dimensional unsigned bytes but this one has %d "
                      "dimensions of %s values; pass the labels file (e.g. "
                      "train-labels-idx1-ubyte) as labels_path", lab->path,
                      lab->ndim, type_name(lab->type));
  if (lab->dims[0] != img->dims[0])
    return nnkit__err(NNKIT_E_FORMAT, "%s holds %zu labels but %s holds %zu "
                      "samples; pass the labels file that belongs to these "
                      "images", lab->path, lab->dims[0], img->path,
                      img->dims[0]);
  return NNKIT_OK;
}

/* Range-checks the labels read into ds, and sets ds->num_classes. */
static nnkit_status finish_labels(nnkit_dataset *ds, const char *path,
                                  uint32_t num_classes)
{
  uint32_t max_plus_1 = 0;
  for (size_t i = 0; i < ds->count; i++) {
    uint32_t l = (uint32_t)ds->labels[i];
    if (num_classes && l >= num_classes)
      return nnkit__err(NNKIT_E_INVALID, "%s: sample %zu has label %u "
                        "outside [0, %u); pass the matching labels file or "
                        "num_classes = 0 to count classes from the labels",
                        path, i, l, num_classes);
    if (l + 1 > max_plus_1)
      max_plus_1 = l + 1;
  }
  ds->num_classes = num_classes ? num_classes : max_plus_1;
  return NNKIT_OK;
}

/* The sample shape of an images file: N -> {1}, NxF -> {F},
 * NxHxW -> {1,H,W}, NxCxHxW -> {C,H,W}. Returns the sample ndim. */
static size_t sample_shape(const idx_reader *r, size_t shape[3])
{
  switch (r->ndim) {
  case 1: shape[0] = 1; return 1;
  case 2: shape[0] = r->dims[1]; return 1;
  case 3:
    shape[0] = 1;
    shape[1] = r->dims[1];
    shape[2] = r->dims[2];
    return 3;
  default:
    shape[0] = r->dims[1];
    shape[1] = r->dims[2];
    shape[2] = r->dims[3];
    return 3;
  }
}

/* Allocates the dataset for open readers and reads both files into it. */
static nnkit_status load_into(nnkit_dataset **out, idx_reader *img,
                              idx_reader *lab, uint32_t num_classes)
{
  size_t shape[NNKIT_MAX_SAMPLE_DIMS];
  size_t ndim = sample_shape(img, shape);
  nnkit_dataset *ds;
  /* Bytes stay bytes in memory (a quarter of the floats' size); they read
   * as the same float values through every function. */
  nnkit_status st =
      img->type == IDX_UBYTE
          ? nnkit__dataset_alloc_bytes(&ds, img->dims[0], shape, ndim, lab != NULL)
          : nnkit__dataset_alloc(&ds, img->dims[0], shape, ndim, lab != NULL, 0);
  if (st != NNKIT_OK)
    return st;
  st = read_values(img, ds->x, ds->x8, NULL);
  if (st == NNKIT_OK && lab)
    st = read_values(lab, NULL, NULL, ds->labels);
  if (st == NNKIT_OK && lab)
    st = finish_labels(ds, lab->path, num_classes);
  if (st != NNKIT_OK) {
    nnkit_dataset_free(ds);
    return st;
  }
  *out = ds;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_dataset_load_idx(nnkit_dataset **out,
                                              const char *images_path,
                                              const char *labels_path,
                                              uint32_t num_classes)
{
  static const char fn[] = "nnkit_dataset_load_idx";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL; pass the address of "
                      "a nnkit_dataset pointer", fn);
  *out = NULL;
  if (!images_path)
    return nnkit__err(NNKIT_E_INVALID, "%s: images_path is NULL; pass the "
                      "path of an IDX images file", fn);
  idx_reader img, lab;
  memset(&lab, 0, sizeof lab);
  nnkit_status st = reader_open(&img, images_path);
  if (st != NNKIT_OK)
    return st;
  if (labels_path) {
    st = reader_open(&lab, labels_path);
    if (st == NNKIT_OK)
      st = check_labels_header(&lab, &img);
  }
  if (st == NNKIT_OK)
    st = load_into(out, &img, labels_path ? &lab : NULL, num_classes);
  reader_close(&img);
  reader_close(&lab);
  return st;
}

/* ---- writing ---------------------------------------------------------- */

/* What one IDX file holds: a header plus values taken from a dataset's
 * samples (ds) or from int32 labels, written as `type`. */
typedef struct idx_content {
  int type;
  int ndim;
  size_t dims[IDX_MAX_DIMS];
  const nnkit_dataset *ds;
  const int32_t *labels;
  size_t count;
} idx_content;

/* Serialises values [first, first + n) of c into buf; returns the bytes. */
static size_t encode_values(const idx_content *c, unsigned char *buf,
                            size_t first, size_t n)
{
  if (c->labels) {
    for (size_t i = 0; i < n; i++)
      buf[i] = (unsigned char)c->labels[first + i];
    return n;
  }
  if (c->type == IDX_UBYTE) {
    for (size_t i = 0; i < n; i++)
      buf[i] = (unsigned char)nnkit__ds_at(c->ds, first + i);
    return n;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t bits;
    float v = nnkit__ds_at(c->ds, first + i);
    memcpy(&bits, &v, sizeof bits);
    put_be32(buf + 4 * i, bits);
  }
  return 4 * n;
}

static int gz_put(gzFile gz, const unsigned char *buf, size_t n)
{
  return n == 0 || gzwrite(gz, buf, (unsigned)n) == (int)n;
}

/* Streams header and values through zlib (gzip, or "T" = uncompressed).
 * Takes ownership of wfd. Returns 0 with errno set on failure. */
static int write_stream(int wfd, int gzip, const idx_content *c)
{
  gzFile gz = gzdopen(wfd, gzip ? "wb6" : "wbT");
  if (!gz) {
    close(wfd);
    errno = ENOMEM;
    return 0;
  }
  unsigned char buf[IDX_CHUNK];
  buf[0] = buf[1] = 0;
  buf[2] = (unsigned char)c->type;
  buf[3] = (unsigned char)c->ndim;
  for (int i = 0; i < c->ndim; i++)
    put_be32(buf + 4 + 4 * i, (uint32_t)c->dims[i]);
  int ok = gz_put(gz, buf, 4 + 4 * (size_t)c->ndim);
  size_t per_chunk = IDX_CHUNK / (c->type == IDX_FLOAT ? 4 : 1);
  for (size_t s = 0; ok && s < c->count; s += per_chunk) {
    size_t n = c->count - s < per_chunk ? c->count - s : per_chunk;
    ok = gz_put(gz, buf, encode_values(c, buf, s, n));
  }
  int e = errno; /* the cause of a failed gzwrite, if any */
  if (gzclose(gz) != Z_OK && ok) { /* flushes, and closes wfd */
    ok = 0;
    e = errno;
  }
  if (!ok)
    errno = e ? e : EIO;
  return ok;
}

/* Writes c to a new temporary file next to path and fsyncs it. On success
 * *tmp_out owns the temporary's name; on failure nothing is left on disk. */
static nnkit_status write_temp(char **tmp_out, char **dest_out, const char *path,
                               int gzip, const idx_content *c)
{
  *tmp_out = NULL;
  *dest_out = NULL;
  int fd;
  char *tmp, *dest;
  nnkit_status tst = nnkit__tmpfile_next_to(&fd, &tmp, &dest, path);
  if (tst != NNKIT_OK)
    return tst;
  int wfd = dup(fd);
  int ok = wfd >= 0 && write_stream(wfd, gzip, c) && fsync(fd) == 0;
  int e = errno;
  if (close(fd) != 0 && ok) {
    ok = 0;
    e = errno;
  }
  if (!ok) {
    unlink(tmp);
    nnkit__free(tmp);
    nnkit__free(dest);
    if (e == ENOMEM)
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory starting zlib "
                        "(nothing was written)", path);
    return nnkit__err(NNKIT_E_IO, "%s: write failed: %s; check free disk "
                      "space and permissions (nothing was written)", path,
                      strerror(e));
  }
  *tmp_out = tmp;
  *dest_out = dest;
  return NNKIT_OK;
}

/* Makes the renames in tmp's directory durable (best effort). */
static void sync_dir_of(char *tmp)
{
  char *slash = strrchr(tmp, '/');
  int dfd;
  if (!slash) {
    dfd = open(".", O_RDONLY | O_CLOEXEC);
  } else {
    char saved = slash[1];
    slash[1] = '\0'; /* keep the '/' so "/file" syncs "/" */
    dfd = open(tmp, O_RDONLY | O_CLOEXEC);
    slash[1] = saved;
  }
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
}

/* Drops a temporary file that was not renamed. */
static void discard_temp(char *tmp)
{
  if (tmp) {
    unlink(tmp);
    nnkit__free(tmp);
  }
}

/* Checks that ds can be saved as requested; fills the images content. */
static nnkit_status plan_images(idx_content *c, const nnkit_dataset *ds,
                                const char *images_path)
{
  memset(c, 0, sizeof *c);
  c->ds = ds;
  c->count = ds->count * ds->sample_size;
  c->dims[c->ndim++] = ds->count;
  if (ds->ndim == 3 && ds->shape[0] == 1) { /* N x H x W, as MNIST */
    c->dims[c->ndim++] = ds->shape[1];
    c->dims[c->ndim++] = ds->shape[2];
  } else if (!(ds->ndim == 1 && ds->shape[0] == 1)) { /* {1}: just N */
    for (size_t i = 0; i < ds->ndim; i++)
      c->dims[c->ndim++] = ds->shape[i];
  }
  for (int i = 0; i < c->ndim; i++)
    if (c->dims[i] > UINT32_MAX)
      return nnkit__err(NNKIT_E_INVALID, "%s: size %zu does not fit IDX's "
                        "32-bit dimensions; save the dataset in parts",
                        images_path, c->dims[i]);
  int bytes = 1;
  for (size_t i = 0; i < c->count && bytes; i++) {
    float v = nnkit__ds_at(ds, i);
    bytes = v >= 0.0f && v <= 255.0f && v == floorf(v);
  }
  c->type = bytes ? IDX_UBYTE : IDX_FLOAT;
  return NNKIT_OK;
}

static nnkit_status plan_labels(idx_content *c, const nnkit_dataset *ds,
                                const char *labels_path)
{
  memset(c, 0, sizeof *c);
  if (ds->target_dim)
    return nnkit__err(NNKIT_E_INVALID, "%s: the dataset holds regression "
                      "targets, not class labels, and IDX labels files hold "
                      "class ids; pass labels_path = NULL", labels_path);
  if (!ds->labels)
    return nnkit__err(NNKIT_E_INVALID, "%s: the dataset has no labels to "
                      "write; pass labels_path = NULL", labels_path);
  for (size_t i = 0; i < ds->count; i++)
    if (ds->labels[i] > 255)
      return nnkit__err(NNKIT_E_INVALID, "%s: sample %zu has label %d but IDX "
                        "labels are bytes (0..255); this set cannot be saved "
                        "as IDX", labels_path, i, (int)ds->labels[i]);
  c->type = IDX_UBYTE;
  c->ndim = 1;
  c->dims[0] = ds->count;
  c->labels = ds->labels;
  c->count = ds->count;
  return NNKIT_OK;
}

/* Renames a finished temporary over dest (path's final target) and frees
 * its name. */
static nnkit_status publish(char **tmp, const char *dest, const char *path)
{
  if (rename(*tmp, dest) != 0)
    return nnkit__err(NNKIT_E_IO, "%s: cannot replace it: %s; check "
                      "permissions", path, strerror(errno));
  sync_dir_of(*tmp);
  nnkit__free(*tmp);
  *tmp = NULL;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_dataset_save_idx(const nnkit_dataset *ds,
                                              const char *images_path,
                                              const char *labels_path,
                                              int gzip)
{
  static const char fn[] = "nnkit_dataset_save_idx";
  if (!ds || !images_path)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn,
                      !ds ? "ds" : "images_path");
  idx_content img, lab;
  nnkit_status st = plan_images(&img, ds, images_path);
  if (st == NNKIT_OK && labels_path)
    st = plan_labels(&lab, ds, labels_path);
  if (st != NNKIT_OK)
    return st;
  /* Both files are complete on disk before either replaces its path, so a
   * failed write leaves the old pair untouched. */
  char *img_tmp = NULL, *lab_tmp = NULL, *img_dest = NULL, *lab_dest = NULL;
  st = write_temp(&img_tmp, &img_dest, images_path, gzip, &img);
  if (st == NNKIT_OK && labels_path)
    st = write_temp(&lab_tmp, &lab_dest, labels_path, gzip, &lab);
  if (st == NNKIT_OK)
    st = publish(&img_tmp, img_dest, images_path);
  if (st == NNKIT_OK && labels_path)
    st = publish(&lab_tmp, lab_dest, labels_path);
  discard_temp(img_tmp); /* only temporaries that were not renamed */
  discard_temp(lab_tmp);
  nnkit__free(img_dest);
  nnkit__free(lab_dest);
  return st;
}
