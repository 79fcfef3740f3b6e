/*
 * The safetensors container shared by model files (model_file.c) and
 * checkpoints (checkpoint.c): writing a list of tensors under a JSON
 * header atomically, optionally with a CRC-32 over header and data, and
 * reading one back with every size, offset and dtype checked. The files'
 * contents (which tensors, which metadata) are the callers'. Never
 * installed; lib/io/ only.
 *
 * `what` in the readers and writers names the kind of file in sentences
 * ("model file", "checkpoint").
 */
#ifndef NNKIT_IO_INTERNAL_H
#define NNKIT_IO_INTERNAL_H

#include <cjson/cJSON.h>

#include "internal.h"

/* safetensors' own limit on the header. */
#define NNKIT__ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

/* ---- writing --------------------------------------------------------------- */

/* One tensor to write: name (owned), data (borrowed, native byte order),
 * dtype "F32", "F64" or "U64". */
typedef struct nnkit__st_out {
  char *name;
  const void *data;
  const char *dtype;
  size_t esize; /* 4 or 8 */
  size_t ndim, dims[4], count;
} nnkit__st_out;

typedef struct nnkit__st_writer {
  const char *path;
  const char *what;
  nnkit__st_out *t;
  size_t n, cap;
  const char *prefix; /* put before every tensor name added, or NULL
                         (an ensemble's "members.<i>.") */
} nnkit__st_writer;

/* Appends tensor prefix+name (dtype as above; count = product of dims,
 * ndim 1..4). NNKIT_E_NOMEM naming the file. */
nnkit_status nnkit__st_add(nnkit__st_writer *w, const char *prefix, const char *name,
                           const char *dtype, const void *data, size_t ndim,
                           const size_t *dims);
/* Adds the tensor entries to header h (whose "__metadata__" the caller
 * filled) and writes the file atomically (temporary file next to path,
 * fsync, rename, fsync of the folder). with_crc: the metadata gets
 * "crc32", eight lowercase hex digits: zlib's CRC-32 of the whole file
 * as written with those eight digits replaced by "00000000". */
nnkit_status nnkit__st_write(nnkit__st_writer *w, cJSON *h, int with_crc);
/* Frees the tensor list (not the borrowed data). */
void nnkit__st_writer_free(nnkit__st_writer *w);
/* NNKIT_E_NOMEM "<path>: out of memory while writing the <what>". */
nnkit_status nnkit__st_nomem(const nnkit__st_writer *w);

/* cJSON helpers of the writers: add item (deleted when it cannot be
 * added), a shape array, and key = the unformatted text of item (deleted). */
int nnkit__st_add_item(cJSON *obj, const char *key, cJSON *item);
cJSON *nnkit__st_shape_json(const size_t *dims, size_t ndim);
int nnkit__st_add_json_string(cJSON *obj, const char *key, cJSON *item);

/* ---- reading --------------------------------------------------------------- */

typedef struct nnkit__st_in {
  const char *name;  /* borrowed from the header */
  const char *dtype; /* "F32", "F64" or "U64" */
  size_t esize;
  size_t ndim, dims[8];
  size_t begin, end; /* byte offsets into the data */
  int used;
} nnkit__st_in;

typedef struct nnkit__st_reader {
  const char *path;
  const char *what;
  unsigned char *buf; /* the whole file (owned) */
  size_t len;
  cJSON *header;      /* owned */
  const cJSON *meta;  /* the header's "__metadata__" */
  nnkit__st_in *t;    /* owned, sorted by offset */
  size_t n;
  const unsigned char *data;
  size_t data_len;
  /* NULL, or what nnkit__st_find (and so every taker) puts before the
   * names it looks up: an ensemble reads member i through a copy of its
   * reader with prefix "members.<i>." and meta that member's metadata. */
  const char *prefix;
} nnkit__st_reader;

/* The last error of a call a reader made for the file (a public call that
 * refused a value read from it) re-labelled as NNKIT_E_FORMAT:
 * "path: what: sentence"; OK and NNKIT_E_NOMEM pass unchanged. */
nnkit_status nnkit__st_relabel(nnkit_status st, const char *path, const char *what);
/* Reads path whole into r->buf: NNKIT_E_IO naming it, NNKIT_E_NOMEM. */
nnkit_status nnkit__st_read_file(nnkit__st_reader *r);
/* Parses r->buf: the header length, the JSON object (padding spaces
 * only), "__metadata__" as a map of strings. NNKIT_E_FORMAT with a
 * sentence naming the file. */
nnkit_status nnkit__st_parse_header(nnkit__st_reader *r);
/* Checks "crc32" of the metadata against the file (see nnkit__st_write):
 * NNKIT_E_FORMAT when it is malformed, misplaced or does not match, and
 * when it is missing while `required` (files of a format that has no
 * checksum, such as model files of version 1, pass 0). */
nnkit_status nnkit__st_check_crc(const nnkit__st_reader *r, int required);
/* Checks the tensor entries (dtype one of the `dtypes`, NULL-terminated;
 * shape; offsets tiling the data exactly) and fills r->t. */
nnkit_status nnkit__st_read_tensors(nnkit__st_reader *r, const char *const *dtypes);
/* Tensor `name`, or NULL. */
nnkit__st_in *nnkit__st_find(nnkit__st_reader *r, const char *name);
/* Copies F32 tensor `name` of shape dims[0..ndim) into dst, checking the
 * values are finite; `need` names who needs it in the sentences. */
nnkit_status nnkit__st_take_f32(nnkit__st_reader *r, const char *name, float *dst,
                                const size_t *dims, size_t ndim, const char *need);
/* The checks of nnkit__st_take_f32 (present, F32, that shape; the same
 * sentences) without copying anything. */
nnkit_status nnkit__st_check_f32(nnkit__st_reader *r, const char *name,
                                 const size_t *dims, size_t ndim, const char *need);
/* As nnkit__st_take_f32 for F64 (NaN and infinities allowed) and U64. */
nnkit_status nnkit__st_take_f64(nnkit__st_reader *r, const char *name, double *dst,
                                const size_t *dims, size_t ndim, const char *need);
nnkit_status nnkit__st_take_u64(nnkit__st_reader *r, const char *name,
                                uint64_t *dst, const size_t *dims, size_t ndim,
                                const char *need);
/* A metadata string holding JSON, parsed (owned by the caller); NULL with
 * *st set (NNKIT_E_FORMAT naming the key, or NNKIT_E_NOMEM) when it is
 * absent or cannot be parsed. */
cJSON *nnkit__st_meta_json(const nnkit__st_reader *r, const char *key,
                           nnkit_status *st);
/* A metadata string, or NULL. */
const char *nnkit__st_meta_string(const cJSON *meta, const char *key);
/* A JSON number that is a whole number in [0, max]. */
int nnkit__st_whole(const cJSON *v, double max, size_t *out);
/* A shape array of 1..max_dims positive whole numbers below 2^31. */
int nnkit__st_shape_of(const cJSON *a, size_t max_dims, size_t *dims, size_t *ndim);
/* "[2, 3]" */
void nnkit__st_shape_text(char *buf, size_t len, const size_t *d, size_t n);
/* Frees what the reader holds. */
void nnkit__st_reader_free(nnkit__st_reader *r);

/* ---- JSON parse failures ------------------------------------------------- */

/* 1 when text[0..len) starts with a JSON value that cJSON 1.7 is sure to
 * parse given memory (a strict subset of what it accepts; see
 * safetensors.c); allocates nothing. */
int nnkit__json_valid(const char *text, size_t len);
/* After cJSON returned NULL on text[0..len): NNKIT_E_NOMEM when the text is
 * valid (so cJSON's allocation failed), else NNKIT_E_FORMAT "<path>: <what>
 * is not valid JSON". */
nnkit_status nnkit__json_parse_failed(const char *path, const char *text, size_t len,
                                      const char *what);

/* ---- the net's architecture (model_file.c) ------------------------------------ */

/* The "architecture" array of net (kinds, options, trainable,
 * lr_multiplier); when w is not NULL, the layers' tensors whose roles are
 * in `roles` go into w as "layers.<i>.<name>" (COUNTER tensors as U64 of
 * shape [1]). NULL with *st set on failure. */
cJSON *nnkit__st_architecture(nnkit__st_writer *w, const char *path, nnkit_net *net,
                              int roles, nnkit_status *st);

/* ---- a net in a file (model_file.c; ensembles reuse it) ------------------- */

/* The checks nnkit_net_save makes before writing net with nz (NULL or
 * fitted) to path, and the lazy build of its parameters. */
nnkit_status nnkit__model_check_save(const nnkit_net *net, const nnkit_normalizer *nz,
                                     const char *path);
/* Adds a model file's per-net metadata ("input_shape", "seed", "loss",
 * "architecture", "normalizer", "class_names") to meta and the net's
 * tensors to s (under s->prefix); *arrays (4 pointers, NULL-initialized)
 * receives the normalizer's copied arrays, freed by the caller after the
 * write. Returns meta, or NULL with *st set. */
cJSON *nnkit__model_meta(cJSON *meta, nnkit__st_writer *s, nnkit_net *net,
                         const nnkit_normalizer *nz, float **arrays, nnkit_status *st);
/* Builds the net described by r->meta (the keys above) from r's tensors
 * (found under r->prefix), with its normalizer attached (and a second
 * copy in *nz_out, NULL without one, owned by the caller) and its class
 * names; the net is in evaluation mode. r's tensors must have been read
 * (nnkit__st_read_tensors); the ones taken are marked used. */
nnkit_status nnkit__model_read(nnkit__st_reader *r, nnkit_net **net_out,
                               nnkit_normalizer **nz_out);

#endif /* NNKIT_IO_INTERNAL_H */
