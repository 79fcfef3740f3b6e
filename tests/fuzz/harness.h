/* The fuzz harnesses: one function per loader that writes an input to a
 * scratch file, loads it and answers 1 when the answer was clean (success,
 * or an error status with a sentence; the objects freed). The libFuzzer
 * targets (fuzz_target.c, one executable per harness) and the replay test
 * of tests/corpus (test_corpus.c) both call these, so a crash input found
 * by fuzzing is replayed by the normal test run exactly as it was found.
 *
 * The first input byte chooses options where a loader has them (CSV
 * delimiter and header mode, IDX labels file, image extension, channels
 * and resizing); model files and checkpoints carry a CRC-32, so for
 * inputs whose first byte is odd the harness rewrites the stored checksum
 * to match the mutated bytes, letting mutations reach the parser behind
 * the check. */
#ifndef NNKIT_FUZZ_HARNESS_H
#define NNKIT_FUZZ_HARNESS_H

#include "../reliability/rel_world.h"

#include <zlib.h>

/* Writes the input's bytes to <scratch>/name (folders made as needed by
 * the caller); the path in path. */
static inline void fz_put(char *path, size_t len, const char *name, const uint8_t *b,
                          size_t n)
{
  snprintf(path, len, "%s/%s", rel_scratch(), name);
  if (!rel_write(path, b, n)) {
    fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    exit(2);
  }
}

/* Rewrites a model file's or checkpoint's "crc32":"xxxxxxxx" (as nnkit
 * writes it: computed over the file with the 8 digits as '0') to match
 * the bytes; does nothing when the key is absent. */
static inline void fz_fix_crc(uint8_t *b, size_t n)
{
  static const char key[] = "\"crc32\":\"";
  size_t kl = sizeof key - 1;
  for (size_t i = 8; i + kl + 9 <= n; i++) {
    if (memcmp(b + i, key, kl) != 0)
      continue;
    uint8_t *d = b + i + kl;
    memset(d, '0', 8);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, b, (uInt)n);
    char hex[9];
    snprintf(hex, sizeof hex, "%08lx", (unsigned long)(crc & 0xffffffffUL));
    memcpy(d, hex, 8);
    return;
  }
}

/* A copy of data[1..n) with its CRC fixed when data[0] is odd. */
static inline uint8_t *fz_body(const uint8_t *data, size_t n, size_t *m)
{
  *m = n > 0 ? n - 1 : 0;
  uint8_t *b = malloc(*m ? *m : 1);
  if (!b)
    exit(2);
  if (*m)
    memcpy(b, data + 1, *m);
  if (n > 0 && (data[0] & 1))
    fz_fix_crc(b, *m);
  return b;
}

static inline int fuzz_model(const uint8_t *data, size_t n)
{
  size_t m;
  uint8_t *b = fz_body(data, n, &m);
  char path[600];
  fz_put(path, sizeof path, "m.safetensors", b, m);
  free(b);
  nnkit_net *net = NULL;
  nnkit_normalizer *nz = NULL;
  nnkit_status st = nnkit_net_load(&net, (n > 0 && (data[0] & 2)) ? &nz : NULL, path);
  int ok = rel_clean(st) && (st == NNKIT_OK) == (net != NULL);
  if (st == NNKIT_OK && net) {
    /* A loaded net must run. */
    size_t in = nnkit_net_input_size(net);
    float *x = calloc(in ? in : 1, sizeof *x);
    int32_t cls = -1;
    if (x && in)
      ok = ok && rel_clean(nnkit_net_predict(&cls, net, x, 1));
    free(x);
  }
  nnkit_normalizer_free(nz);
  nnkit_net_free(net);
  return ok;
}

static inline int fuzz_checkpoint(const uint8_t *data, size_t n)
{
  static rel_world w;
  static int made;
  if (!made) {
    REL_OK(rel_world_make(&w, 0));
    made = 1;
  }
  size_t m;
  uint8_t *b = fz_body(data, n, &m);
  char path[600];
  fz_put(path, sizeof path, "c.ckpt", b, m);
  free(b);
  return rel_clean(nnkit_trainer_resume(w.tr, path));
}

/* data[0] bit 0: a labels file too, split off at the offset data[1..2]. */
static inline int fuzz_idx(const uint8_t *data, size_t n)
{
  char ipath[600], lpath[600];
  const uint8_t *img = n ? data + 1 : data;
  size_t ni = n ? n - 1 : 0, nl = 0;
  int labels = n >= 3 && (data[0] & 1);
  if (labels) {
    size_t rest = n - 3, split = ((size_t)data[1] << 8 | data[2]) % (rest + 1);
    img = data + 3;
    ni = split;
    nl = rest - split;
    fz_put(lpath, sizeof lpath, "labels.idx", data + 3 + split, nl);
  }
  fz_put(ipath, sizeof ipath, "images.idx", img, ni);
  nnkit_dataset *ds = NULL;
  nnkit_status st = nnkit_dataset_load_idx(&ds, ipath, labels ? lpath : NULL,
                                           n > 0 && (data[0] & 2) ? 10 : 0);
  int ok = rel_clean(st) && (st == NNKIT_OK) == (ds != NULL);
  nnkit_dataset_free(ds);
  return ok;
}

/* data[0]: delimiter (bits 0-1), header mode (bits 2-3), label column
 * (bits 4-5: last, first, "label" by name, none). */
static inline int fuzz_csv(const uint8_t *data, size_t n)
{
  static const char delims[4] = {',', ';', '\t', '|'};
  uint8_t o = n ? data[0] : 0;
  char path[600];
  fz_put(path, sizeof path, "d.csv", n ? data + 1 : data, n ? n - 1 : 0);
  nnkit_csv_header header = (nnkit_csv_header)((o >> 2) % 3);
  int lab = (o >> 4) & 3;
  const char *name = lab == 2 && header != NNKIT_CSV_HEADER_NO ? "label" : NULL;
  int64_t index = lab == 0 ? -1 : lab == 1 ? 0 : NNKIT_CSV_NO_LABEL;
  nnkit_dataset *ds = NULL;
  nnkit_status st = nnkit_dataset_load_csv(&ds, path, delims[o & 3], header, name, index);
  int ok = rel_clean(st) && (st == NNKIT_OK) == (ds != NULL);
  nnkit_dataset_free(ds);
  return ok;
}

/* data[0]: bit 0 .jpg (else .png), bit 1 three channels, bit 2 resize to
 * 8x8 (else the image's own size). */
static inline int fuzz_image(const uint8_t *data, size_t n)
{
  uint8_t o = n ? data[0] : 0;
  char root[600], dir[700], path[800];
  snprintf(root, sizeof root, "%s/images", rel_scratch());
  snprintf(dir, sizeof dir, "%s/a", root);
  mkdir(root, 0700);
  mkdir(dir, 0700);
  snprintf(path, sizeof path, "%s/x.%s", dir, (o & 1) ? "png" : "jpg");
  char other[800];
  snprintf(other, sizeof other, "%s/x.%s", dir, (o & 1) ? "jpg" : "png");
  unlink(other);
  if (!rel_write(path, n ? data + 1 : data, n ? n - 1 : 0)) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
  size_t side = (o & 4) ? 8 : 0;
  nnkit_dataset *ds = NULL;
  nnkit_status st =
      nnkit_dataset_load_image_folder(&ds, root, (o & 2) ? 3 : 1, side, side, (o & 4) != 0);
  int ok = rel_clean(st) && (st == NNKIT_OK) == (ds != NULL);
  nnkit_dataset_free(ds);
  return ok;
}

typedef int (*fz_fn)(const uint8_t *data, size_t n);

static const struct {
  const char *name;
  fz_fn fn;
} fz_targets[] = {
    {"model", fuzz_model}, {"checkpoint", fuzz_checkpoint}, {"idx", fuzz_idx},
    {"csv", fuzz_csv},     {"image", fuzz_image},
};

#endif
