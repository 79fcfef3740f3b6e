/* Model files: a net with its normalizer and class names as a safetensors
 * file with a CRC-32 of the whole file (layout in doc/file-format.md).
 * Per-kind knowledge (add-call arguments, tensor names and shapes) comes
 * from the layer kinds (lib/model/registry.c); this file only writes and
 * validates the container.
 *
 * cJSON keeps its own allocator: nnkit never calls cJSON_InitHooks, which
 * is process-wide and would replace the hooks of a host program that uses
 * cJSON too. Text cJSON prints is released with cJSON_free. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "internal.h"

/* Version 2 added the checksum (required) and class names; version 1
 * files (nnkit 0.1.0) have neither and still load. */
#define FORMAT_VERSION "2"
#define FORMAT_VERSION_NO_CRC "1"
/* The checksum's place in the header, as nnkit writes it: the 8 hex
 * digits follow this key. */
#define CRC_KEY "\"crc32\":\""
#define CRC_BLANK "00000000"
/* safetensors' own limit on the header. */
#define MAX_HEADER ((uint64_t)100 * 1000 * 1000)
/* Tensors a file may hold: every layer's plus the normalizer's. */
#define MAX_TENSORS 100000

static const char *const norm_kinds[] = {NULL, "mean_image", "channel_mean",
                                         "standardize", "pca", "pca_whiten",
                                         "zca_whiten"};
static const char *const norm_settings[] = {NULL, "with_std", "components",
                                            "variance", "epsilon", "fit_samples",
                                            "seed"};
#define NUM_NORM_KINDS 6
#define NUM_NORM_SETTINGS 6

static const char *const norm_arrays[] = {NULL, "mean", "scale", "projection"};

/* ---- little-endian floats ------------------------------------------------ */

static void put_le32(unsigned char *dst, const float *src, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(dst, src, n * sizeof(float));
#else
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &src[i], 4);
    for (int b = 0; b < 4; b++)
      dst[4 * i + b] = (unsigned char)(u >> (8 * b));
  }
#endif
}

static void get_le32(float *dst, const unsigned char *src, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(dst, src, n * sizeof(float));
#else
  for (size_t i = 0; i < n; i++) {
    uint32_t u = 0;
    for (int b = 0; b < 4; b++)
      u |= (uint32_t)src[4 * i + b] << (8 * b);
    memcpy(&dst[i], &u, 4);
  }
#endif
}

/* ---- saving --------------------------------------------------------------- */

/* One tensor to write: name (owned), data (borrowed), shape. */
typedef struct out_tensor {
  char *name;
  const float *data;
  size_t ndim, dims[4], count;
} out_tensor;

typedef struct saver {
  const char *path;
  out_tensor *t;
  size_t n, cap;
  size_t bytes; /* data bytes so far */
} saver;

static nnkit_status nomem(const char *path)
{
  return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory while writing the model file",
                    path);
}

static nnkit_status add_tensor(saver *s, const char *prefix, const char *name,
                               const float *data, size_t ndim, const size_t *dims)
{
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 16;
    out_tensor *t = nnkit__realloc(s->t, cap * sizeof *t);
    if (!t)
      return nomem(s->path);
    s->t = t;
    s->cap = cap;
  }
  size_t len = strlen(prefix) + strlen(name) + 1;
  char *full = nnkit__malloc(len);
  if (!full)
    return nomem(s->path);
  snprintf(full, len, "%s%s", prefix, name);
  out_tensor *o = &s->t[s->n++];
  o->name = full;
  o->data = data;
  o->ndim = ndim;
  o->count = 1;
  for (size_t i = 0; i < ndim; i++) {
    o->dims[i] = dims[i];
    o->count *= dims[i];
  }
  s->bytes += o->count * sizeof(float);
  return NNKIT_OK;
}

/* cJSON_AddItemToObject, deleting item when it cannot be added (cJSON
 * leaves it to the caller when copying the key fails). */
static int add_item(cJSON *obj, const char *key, cJSON *item)
{
  if (item && cJSON_AddItemToObject(obj, key, item))
    return 1;
  cJSON_Delete(item);
  return 0;
}

static cJSON *shape_json(const size_t *dims, size_t ndim)
{
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; a && i < ndim; i++) {
    cJSON *v = cJSON_CreateNumber((double)dims[i]);
    if (!v || !cJSON_AddItemToArray(a, v)) {
      cJSON_Delete(v);
      cJSON_Delete(a);
      return NULL;
    }
  }
  return a;
}

/* Adds key: the unformatted text of item (deleted) as a string. */
static int add_json_string(cJSON *obj, const char *key, cJSON *item)
{
  char *text = item ? cJSON_PrintUnformatted(item) : NULL;
  cJSON_Delete(item);
  if (!text)
    return 0;
  int ok = cJSON_AddStringToObject(obj, key, text) != NULL;
  cJSON_free(text);
  return ok;
}

static const char *loss_name(nnkit_loss l)
{
  return l == NNKIT_LOSS_MSE ? "mse" : "softmax_cross_entropy";
}

/* Model files hold a layer's parameters and running statistics; random
 * stream positions (NNKIT__ROLE_COUNTER) belong in checkpoints. */
#define MODEL_TENSOR(t) (((t)->role & (NNKIT__ROLE_PARAMS | NNKIT__ROLE_STATE)) != 0)

/* The "architecture" array; tensors of each layer go into s. */
static cJSON *architecture(saver *s, nnkit_net *net, nnkit_status *st)
{
  cJSON *arch = cJSON_CreateArray();
  if (!arch)
    goto nomem;
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    const nnkit__layer_kind *k = l->ops;
    if (!k->add || nnkit__layer_kind_named(k->name) != k) {
      *st = nnkit__err(NNKIT_E_INVALID, "%s: layer %zu is a %s layer, which model "
                       "files cannot store yet", s->path, i, l->ops->name);
      cJSON_Delete(arch);
      return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arch, o)) {
      cJSON_Delete(o);
      goto nomem;
    }
    if (!cJSON_AddStringToObject(o, "kind", l->ops->name))
      goto nomem;
    double v[NNKIT__MAX_LAYER_ARGS];
    if (k->get_opts)
      k->get_opts(l, v);
    for (size_t a = 0; a < k->num_opts; a++)
      if (!cJSON_AddNumberToObject(o, k->opts[a].name, v[a]))
        goto nomem;
    if (!cJSON_AddBoolToObject(o, "trainable", !l->frozen) ||
        !cJSON_AddNumberToObject(o, "lr_multiplier", (double)l->lr_mult))
      goto nomem;
    nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
    size_t nt = k->tensors ? k->tensors(l, t) : 0;
    char prefix[48];
    snprintf(prefix, sizeof prefix, "layers.%zu.", i);
    for (size_t j = 0; j < nt; j++)
      if (MODEL_TENSOR(&t[j]) &&
          (*st = add_tensor(s, prefix, t[j].name, t[j].data, t[j].ndim, t[j].dims)) !=
          NNKIT_OK) {
        cJSON_Delete(arch);
        return NULL;
      }
  }
  return arch;
nomem:
  cJSON_Delete(arch);
  *st = nomem(s->path);
  return NULL;
}

/* The "normalizer" object; its arrays (copied into *arrays, owned by the
 * caller) go into s. */
static cJSON *normalizer_json(saver *s, const nnkit_normalizer *nz, float **arrays,
                              nnkit_status *st)
{
  cJSON *o = cJSON_CreateObject();
  size_t dims[NNKIT_MAX_SAMPLE_DIMS], ndim = 0;
  nnkit_norm_kind kind = nnkit_normalizer_kind(nz);
  size_t in = nnkit_normalizer_in_size(nz), out = nnkit_normalizer_out_size(nz);
  *st = nnkit_normalizer_shape(dims, NNKIT_MAX_SAMPLE_DIMS, &ndim, nz);
  if (*st != NNKIT_OK) {
    cJSON_Delete(o);
    return NULL;
  }
  if (!o || !cJSON_AddStringToObject(o, "kind", norm_kinds[kind]) ||
      !add_item(o, "input_shape", shape_json(dims, ndim)) ||
      !cJSON_AddNumberToObject(o, "out_size", (double)out))
    goto nomem;
  cJSON *set = cJSON_AddObjectToObject(o, "settings");
  if (!set)
    goto nomem;
  for (int key = 1; key <= NUM_NORM_SETTINGS; key++) {
    double v;
    if (nnkit_normalizer_get(&v, nz, (nnkit_norm_param)key) == NNKIT_OK &&
        !cJSON_AddNumberToObject(set, norm_settings[key], v))
      goto nomem;
  }
  nnkit_clear_error(); /* the keys this kind lacks */
  for (int a = NNKIT_NORM_ARRAY_MEAN; a <= NNKIT_NORM_ARRAY_PROJECTION; a++) {
    size_t len = nnkit_normalizer_array_len(nz, (nnkit_norm_array)a);
    if (len == 0)
      continue;
    float *buf = nnkit__malloc(len * sizeof(float));
    if (!buf)
      goto nomem;
    arrays[a] = buf;
    *st = nnkit_normalizer_get_array(buf, len, nz, (nnkit_norm_array)a);
    if (*st == NNKIT_OK) {
      size_t shape[2] = {len, 0};
      size_t nd = 1;
      if (a == NNKIT_NORM_ARRAY_PROJECTION) {
        shape[0] = in;
        shape[1] = out;
        nd = 2;
      }
      *st = add_tensor(s, "normalizer.", norm_arrays[a], buf, nd, shape);
    }
    if (*st != NNKIT_OK) {
      cJSON_Delete(o);
      return NULL;
    }
  }
  return o;
nomem:
  cJSON_Delete(o);
  *st = nomem(s->path);
  return NULL;
}

/* The whole JSON header text, unpadded. */
static char *header_text(saver *s, nnkit_net *net, const nnkit_normalizer *nz,
                         float **arrays, nnkit_status *st)
{
  char *text = NULL;
  cJSON *h = cJSON_CreateObject();
  cJSON *meta = h ? cJSON_AddObjectToObject(h, "__metadata__") : NULL;
  if (!meta)
    goto nomem;
  char seed[32];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)net->seed);
  if (!cJSON_AddStringToObject(meta, "format", "nnkit") ||
      !cJSON_AddStringToObject(meta, "format_version", FORMAT_VERSION) ||
      !cJSON_AddStringToObject(meta, "nnkit_version", nnkit_version()) ||
      !add_json_string(meta, "input_shape", shape_json(net->in.d, net->in.ndim)) ||
      !cJSON_AddStringToObject(meta, "seed", seed) ||
      !cJSON_AddStringToObject(meta, "loss", loss_name(net->loss)))
    goto nomem;
  cJSON *arch = architecture(s, net, st);
  if (!arch)
    goto fail;
  if (!add_json_string(meta, "architecture", arch))
    goto nomem;
  if (nz) {
    cJSON *n = normalizer_json(s, nz, arrays, st);
    if (!n)
      goto fail;
    if (!add_json_string(meta, "normalizer", n))
      goto nomem;
  }
  if (net->class_names) {
    cJSON *names = cJSON_CreateStringArray((const char *const *)net->class_names,
                                           (int)net->num_names);
    if (!add_json_string(meta, "class_names", names))
      goto nomem;
  }
  /* Written as zeros; save() puts the checksum in their place. */
  if (!cJSON_AddStringToObject(meta, "crc32", CRC_BLANK))
    goto nomem;
  size_t off = 0;
  for (size_t i = 0; i < s->n; i++) {
    const out_tensor *t = &s->t[i];
    cJSON *o = cJSON_AddObjectToObject(h, t->name);
    cJSON *offs = NULL;
    size_t end = off + t->count * sizeof(float);
    if (!o || !cJSON_AddStringToObject(o, "dtype", "F32") ||
        !add_item(o, "shape", shape_json(t->dims, t->ndim)) ||
        !(offs = cJSON_AddArrayToObject(o, "data_offsets")) ||
        !cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) ||
        !cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)end)))
      goto nomem;
    off = end;
  }
  text = cJSON_PrintUnformatted(h);
  if (!text)
    goto nomem;
  cJSON_Delete(h);
  return text;
nomem:
  *st = nomem(s->path);
fail:
  cJSON_Delete(h);
  return NULL;
}

/* The header as written: 8 length bytes, text, spaces up to a multiple
 * of 8. */
static size_t padded(size_t tlen) { return (tlen + 7) / 8 * 8; }

/* Passes over the tensors' little-endian bytes in chunks of buf (CHUNK
 * floats): into the CRC (f NULL) or to f. */
enum { CHUNK = 16384 };
static uLong tensor_bytes(const saver *s, unsigned char *buf, uLong crc, FILE *f)
{
  for (size_t i = 0; i < s->n && !(f && ferror(f)); i++)
    for (size_t o = 0; o < s->t[i].count; o += CHUNK) {
      size_t m = s->t[i].count - o < CHUNK ? s->t[i].count - o : CHUNK;
      put_le32(buf, s->t[i].data + o, m);
      if (f)
        fwrite(buf, sizeof(float), m, f);
      else
        crc = crc32(crc, buf, (uInt)(m * sizeof(float)));
    }
  return crc;
}

/* Fills the checksum into text (whose "crc32" holds CRC_BLANK): the CRC-32
 * of the whole file with those 8 digits as zeros. */
static void put_crc(const saver *s, char *text, unsigned char *buf)
{
  size_t tlen = strlen(text), hlen = padded(tlen);
  unsigned char len8[8];
  for (int b = 0; b < 8; b++)
    len8[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, len8, 8);
  crc = crc32(crc, (const Bytef *)text, (uInt)tlen);
  for (size_t i = tlen; i < hlen; i++)
    crc = crc32(crc, (const Bytef *)" ", 1);
  crc = tensor_bytes(s, buf, crc, NULL);
  char *at = strstr(text, CRC_KEY CRC_BLANK "\"");
  char hex[9];
  snprintf(hex, sizeof hex, "%08lx", (unsigned long)(crc & 0xffffffffUL));
  memcpy(at + strlen(CRC_KEY), hex, 8);
}

/* Writes header and tensors to f; stream errors are left to
 * nnkit__tfile_commit, which sees them with ferror. */
static void write_file(FILE *f, const saver *s, const char *text, unsigned char *buf)
{
  size_t tlen = strlen(text), hlen = padded(tlen);
  unsigned char len8[8];
  for (int b = 0; b < 8; b++)
    len8[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
  fwrite(len8, 1, 8, f);
  fwrite(text, 1, tlen, f);
  for (size_t i = tlen; i < hlen; i++)
    fputc(' ', f);
  tensor_bytes(s, buf, 0, f);
}

NNKIT_API nnkit_status nnkit_net_save(const nnkit_net *cnet, const nnkit_normalizer *nz,
                                      const char *path)
{
  if (!cnet || !path)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_save: net and path must be non-NULL");
  if (cnet->num_layers == 0)
    return nnkit__err(NNKIT_E_INVALID, "%s: the net has no layers; add some before "
                      "saving it", path);
  if (!nz)
    nz = cnet->nz; /* the net's own, or none */
  if (cnet->class_names && cnet->num_names != nnkit_net_output_size(cnet))
    return nnkit__err(NNKIT_E_STATE, "%s: the net has %zu class names but %zu "
                      "outputs (layers were added after naming them); set the names "
                      "again with nnkit_net_set_class_names", path, cnet->num_names,
                      nnkit_net_output_size(cnet));
  if (nz && !nnkit_normalizer_is_fitted(nz))
    return nnkit__err(NNKIT_E_STATE, "%s: the normalizer is not fitted; fit it (or "
                      "pass NULL) before saving", path);
  if (nz && nnkit_normalizer_out_size(nz) != nnkit_net_input_size(cnet))
    return nnkit__err(NNKIT_E_SHAPE, "%s: the normalizer gives %zu values per "
                      "sample but the net takes %zu; save the normalizer the net "
                      "was trained with", path, nnkit_normalizer_out_size(nz),
                      nnkit_net_input_size(cnet));
  /* Parameters never drawn yet are drawn now, as nnkit_net_params() does:
   * lazy initialization, not a change the caller can tell from a copy. */
  nnkit_net *net = (nnkit_net *)cnet;
  nnkit_status st = nnkit__net_build(net);
  if (st != NNKIT_OK)
    return st;
  saver s = {path, NULL, 0, 0, 0};
  float *arrays[4] = {NULL, NULL, NULL, NULL};
  char *text = header_text(&s, net, nz, arrays, &st);
  /* Tensors go out through a bounded little-endian buffer. */
  unsigned char *buf = text ? nnkit__malloc(CHUNK * sizeof(float)) : NULL;
  if (text && !buf)
    st = nomem(path);
  if (buf) {
    put_crc(&s, text, buf);
    nnkit__tfile tf;
    st = nnkit__tfile_open(&tf, path);
    if (st == NNKIT_OK) {
      write_file(tf.f, &s, text, buf);
      st = nnkit__tfile_commit(&tf, 1);
    }
  }
  nnkit__free(buf);
  cJSON_free(text);
  for (size_t i = 0; i < s.n; i++)
    nnkit__free(s.t[i].name);
  nnkit__free(s.t);
  for (int a = 0; a < 4; a++)
    nnkit__free(arrays[a]);
  return st;
}

/* ---- loading --------------------------------------------------------------- */

typedef struct in_tensor {
  const char *name; /* borrowed from the header */
  size_t ndim, dims[8];
  size_t begin, end; /* byte offsets into the data */
  int used;
} in_tensor;

typedef struct loader {
  const char *path;
  cJSON *header;
  in_tensor *t;
  size_t n;
  const unsigned char *data;
  size_t data_len;
} loader;

#define BAD(...) nnkit__err(NNKIT_E_FORMAT, __VA_ARGS__)

static void shape_text(char *buf, size_t len, const size_t *d, size_t n)
{
  size_t o = (size_t)snprintf(buf, len, "[");
  for (size_t i = 0; i < n && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, "%s%zu", i ? ", " : "", d[i]);
  if (o < len)
    snprintf(buf + o, len - o, "]");
}

/* A JSON number that is a whole number in [0, max]. */
static int whole(const cJSON *v, double max, size_t *out)
{
  if (!cJSON_IsNumber(v))
    return 0;
  double d = v->valuedouble;
  if (!(d >= 0 && d <= max) || d != floor(d))
    return 0;
  *out = (size_t)d;
  return 1;
}

/* A shape array of 1..max_dims positive whole numbers below 2^31. */
static int shape_of(const cJSON *a, size_t max_dims, size_t *dims, size_t *ndim)
{
  if (!cJSON_IsArray(a))
    return 0;
  size_t n = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, a) {
    if (n == max_dims || !whole(v, (double)((size_t)1 << 31), &dims[n]) || !dims[n])
      return 0;
    n++;
  }
  *ndim = n;
  return n > 0;
}

static int by_begin(const void *a, const void *b)
{
  const in_tensor *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Checks the tensor entries of the header and fills l->t (sorted by
 * offset: they must tile the data exactly). */
static nnkit_status read_tensors(loader *l)
{
  const cJSON *e;
  size_t n = 0;
  cJSON_ArrayForEach(e, l->header) n += strcmp(e->string, "__metadata__") != 0;
  if (n > MAX_TENSORS)
    return BAD("%s: the header lists %zu tensors, more than the %d a model file "
               "may hold", l->path, n, MAX_TENSORS);
  l->t = nnkit__calloc(n ? n : 1, sizeof *l->t);
  if (!l->t)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu tensors", l->path, n);
  cJSON_ArrayForEach(e, l->header) {
    if (strcmp(e->string, "__metadata__") == 0)
      continue;
    in_tensor *t = &l->t[l->n++];
    t->name = e->string;
    const cJSON *dt = NULL, *sh = NULL, *of = NULL;
    if (cJSON_IsObject(e)) {
      dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
      sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
      of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    }
    if (!cJSON_IsString(dt) || !sh || !of)
      return BAD("%s: tensor %s needs \"dtype\", \"shape\" and \"data_offsets\"",
                 l->path, t->name);
    if (strcmp(dt->valuestring, "F32") != 0)
      return BAD("%s: tensor %s has dtype %s; nnkit model files hold F32 only",
                 l->path, t->name, dt->valuestring);
    if (!shape_of(sh, sizeof t->dims / sizeof t->dims[0], t->dims, &t->ndim))
      return BAD("%s: tensor %s has a bad shape (1 to 8 positive whole numbers "
                 "below 2^31 expected)", l->path, t->name);
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
        !whole(cJSON_GetArrayItem(of, 0), (double)l->data_len, &t->begin) ||
        !whole(cJSON_GetArrayItem(of, 1), (double)l->data_len, &t->end) ||
        t->end < t->begin)
      return BAD("%s: tensor %s has data_offsets outside the %zu bytes of data "
                 "(truncated file?)", l->path, t->name, l->data_len);
    size_t count = 1;
    int ovf = 0;
    for (size_t i = 0; i < t->ndim; i++)
      count = nnkit__mul_size(count, t->dims[i], &ovf);
    if (ovf || count > SIZE_MAX / sizeof(float) ||
        t->end - t->begin != count * sizeof(float)) {
      char sbuf[128];
      shape_text(sbuf, sizeof sbuf, t->dims, t->ndim);
      return BAD("%s: tensor %s has shape %s but %zu bytes of data", l->path,
                 t->name, sbuf, t->end - t->begin);
    }
  }
  qsort(l->t, l->n, sizeof *l->t, by_begin);
  size_t at = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (l->t[i].begin != at)
      return BAD("%s: tensor %s starts at byte %zu of the data but the previous "
                 "one ends at %zu (tensors must not overlap or leave gaps)", l->path,
                 l->t[i].name, l->t[i].begin, at);
    at = l->t[i].end;
  }
  if (at != l->data_len)
    return BAD("%s: the tensors cover %zu bytes but the file holds %zu bytes of "
               "data", l->path, at, l->data_len);
  return NNKIT_OK;
}

static in_tensor *find_tensor(loader *l, const char *name)
{
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->t[i].name, name) == 0)
      return &l->t[i];
  return NULL;
}

/* Copies tensor `name` of shape dims[0..ndim) into dst; `what` names the
 * layer or array that needs it. */
static nnkit_status take_tensor(loader *l, const char *name, float *dst,
                                const size_t *dims, size_t ndim, const char *what)
{
  in_tensor *t = find_tensor(l, name);
  char want[128], got[128];
  shape_text(want, sizeof want, dims, ndim);
  if (!t)
    return BAD("%s: tensor %s is missing; %s needs one of shape %s", l->path, name,
               what, want);
  if (t->ndim != ndim || memcmp(t->dims, dims, ndim * sizeof *dims) != 0) {
    shape_text(got, sizeof got, t->dims, t->ndim);
    return BAD("%s: tensor %s has shape %s but %s needs %s", l->path, name, got, what,
               want);
  }
  size_t count = (t->end - t->begin) / sizeof(float);
  get_le32(dst, l->data + t->begin, count);
  for (size_t i = 0; i < count; i++)
    if (!isfinite(dst[i]))
      return BAD("%s: tensor %s holds a NaN or infinite value at index %zu; the "
                 "file is damaged", l->path, name, i);
  t->used = 1;
  return NNKIT_OK;
}

static const char *meta_string(const cJSON *meta, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Re-labels the last error of a public call as a format error of the file. */
static nnkit_status relabel(nnkit_status st, const char *path, const char *what)
{
  if (st == NNKIT_E_NOMEM || st == NNKIT_OK)
    return st;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", nnkit_last_error());
  return BAD("%s: %s: %s", path, what, msg);
}

/* One layer of the architecture, appended to net and given its tensors
 * later. */
static nnkit_status add_layer(loader *l, nnkit_net *net, const cJSON *o, size_t i)
{
  char what[64];
  snprintf(what, sizeof what, "layer %zu", i);
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
  if (!cJSON_IsObject(o) || !cJSON_IsString(kind))
    return BAD("%s: layer %zu of the architecture has no \"kind\"", l->path, i);
  const nnkit__layer_kind *k = nnkit__layer_kind_named(kind->valuestring);
  if (!k)
    return BAD("%s: layer %zu has the unknown kind \"%s\" (a newer nnkit's file?)",
               l->path, i, kind->valuestring);
  double v[NNKIT__MAX_LAYER_ARGS] = {0};
  for (size_t a = 0; a < k->num_opts; a++) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k->opts[a].name);
    double d = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    int real = !(k->opts[a].flags & NNKIT_BOUND_INTEGER);
    if (!isfinite(d) || (!real && (d != floor(d) || d < -1 || d > 9007199254740992.0)))
      return BAD("%s: layer %zu (%s) needs \"%s\", %s", l->path, i, k->name,
                 k->opts[a].name, real ? "a finite number" : "a whole number >= -1");
    v[a] = d;
  }
  nnkit_status st = relabel(k->add(net, v), l->path, what);
  if (st != NNKIT_OK)
    return st;
  const cJSON *tr = cJSON_GetObjectItemCaseSensitive(o, "trainable");
  const cJSON *lr = cJSON_GetObjectItemCaseSensitive(o, "lr_multiplier");
  if (!cJSON_IsBool(tr) || !cJSON_IsNumber(lr))
    return BAD("%s: layer %zu (%s) needs \"trainable\" (true or false) and "
               "\"lr_multiplier\" (a number)", l->path, i, k->name);
  st = nnkit_net_set_trainable(net, i, cJSON_IsTrue(tr));
  if (st == NNKIT_OK)
    st = nnkit_net_set_lr_multiplier(net, i, lr->valuedouble);
  return relabel(st, l->path, what);
}

/* Parses a metadata string holding JSON; NULL with an error when absent or
 * malformed. */
static cJSON *meta_json(const loader *l, const cJSON *meta, const char *key,
                        nnkit_status *st)
{
  const char *s = meta_string(meta, key);
  if (!s) {
    *st = BAD("%s: the metadata lacks \"%s\"", l->path, key);
    return NULL;
  }
  cJSON *j = cJSON_Parse(s);
  if (!j)
    *st = BAD("%s: the metadata's \"%s\" is not valid JSON", l->path, key);
  return j;
}

static nnkit_status build_net(loader *l, const cJSON *meta, nnkit_net **out)
{
  nnkit_status st = NNKIT_OK;
  size_t dims[NNKIT_MAX_SAMPLE_DIMS], ndim = 0;
  cJSON *shape = meta_json(l, meta, "input_shape", &st);
  if (!shape)
    return st;
  int ok = shape_of(shape, NNKIT_MAX_SAMPLE_DIMS, dims, &ndim);
  cJSON_Delete(shape);
  if (!ok)
    return BAD("%s: the input shape must be 1 to %d positive whole numbers", l->path,
               NNKIT_MAX_SAMPLE_DIMS);
  const char *seed_s = meta_string(meta, "seed"), *loss_s = meta_string(meta, "loss");
  char *end = NULL;
  errno = 0;
  unsigned long long seed = seed_s ? strtoull(seed_s, &end, 10) : 0;
  if (!seed_s || end == seed_s || *end || errno || seed_s[0] == '-')
    return BAD("%s: the metadata's \"seed\" must be a decimal number", l->path);
  nnkit_loss loss;
  if (loss_s && strcmp(loss_s, "softmax_cross_entropy") == 0)
    loss = NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY;
  else if (loss_s && strcmp(loss_s, "mse") == 0)
    loss = NNKIT_LOSS_MSE;
  else
    return BAD("%s: the metadata's \"loss\" must be \"softmax_cross_entropy\" or "
               "\"mse\"", l->path);
  cJSON *arch = meta_json(l, meta, "architecture", &st);
  if (!arch)
    return st;
  nnkit_net *net = NULL;
  if (!cJSON_IsArray(arch) || cJSON_GetArraySize(arch) == 0) {
    st = BAD("%s: the architecture must be a non-empty array of layers", l->path);
    goto done;
  }
  st = relabel(nnkit_net_create(&net, dims, ndim, (uint64_t)seed), l->path,
               "input shape");
  if (st == NNKIT_OK)
    st = nnkit_net_set_loss(net, loss);
  size_t i = 0;
  const cJSON *o;
  cJSON_ArrayForEach(o, arch) {
    if (st != NNKIT_OK)
      break;
    st = add_layer(l, net, o, i++);
  }
  if (st == NNKIT_OK)
    st = nnkit__net_build(net);
  for (i = 0; st == NNKIT_OK && i < net->num_layers; i++) {
    nnkit__layer *ly = &net->layers[i];
    const nnkit__layer_kind *k = ly->ops;
    nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
    size_t nt = k->tensors ? k->tensors(ly, t) : 0;
    char what[64];
    snprintf(what, sizeof what, "the architecture's %s layer %zu", ly->ops->name, i);
    for (size_t j = 0; st == NNKIT_OK && j < nt; j++) {
      if (!MODEL_TENSOR(&t[j]))
        continue;
      char name[96];
      snprintf(name, sizeof name, "layers.%zu.%s", i, t[j].name);
      st = take_tensor(l, name, t[j].data, t[j].dims, t[j].ndim, what);
    }
  }
  if (st == NNKIT_OK)
    nnkit_net_set_training(net, 0);
done:
  cJSON_Delete(arch);
  if (st != NNKIT_OK) {
    nnkit_net_free(net);
    return st;
  }
  *out = net;
  return NNKIT_OK;
}

static nnkit_status build_normalizer(loader *l, const cJSON *meta,
                                     nnkit_normalizer **out)
{
  *out = NULL;
  if (!cJSON_GetObjectItemCaseSensitive(meta, "normalizer"))
    return NNKIT_OK;
  nnkit_status st = NNKIT_OK;
  cJSON *o = meta_json(l, meta, "normalizer", &st);
  if (!o)
    return st;
  float *arr[4] = {NULL, NULL, NULL, NULL};
  size_t len[4] = {0, 0, 0, 0};
  nnkit_normalizer *nz = NULL;
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
  int k = 0;
  for (int i = 1; i <= NUM_NORM_KINDS && cJSON_IsString(kind); i++)
    if (strcmp(kind->valuestring, norm_kinds[i]) == 0)
      k = i;
  size_t dims[NNKIT_MAX_SAMPLE_DIMS], ndim = 0, out_size = 0;
  const cJSON *settings = cJSON_GetObjectItemCaseSensitive(o, "settings");
  if (!k) {
    st = BAD("%s: the normalizer has an unknown \"kind\"", l->path);
    goto done;
  }
  if (!shape_of(cJSON_GetObjectItemCaseSensitive(o, "input_shape"),
                NNKIT_MAX_SAMPLE_DIMS, dims, &ndim) ||
      !whole(cJSON_GetObjectItemCaseSensitive(o, "out_size"), (double)(1u << 31),
             &out_size) ||
      !cJSON_IsObject(settings)) {
    st = BAD("%s: the normalizer needs \"input_shape\", \"out_size\" and "
             "\"settings\"", l->path);
    goto done;
  }
  for (int a = 1; a <= 3; a++) {
    char name[32];
    snprintf(name, sizeof name, "normalizer.%s", norm_arrays[a]);
    in_tensor *t = find_tensor(l, name);
    if (!t)
      continue;
    len[a] = (t->end - t->begin) / sizeof(float);
    arr[a] = nnkit__malloc(len[a] ? len[a] * sizeof(float) : 1);
    if (!arr[a]) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %s", l->path, name);
      goto done;
    }
    /* Shapes are checked against the kind by nnkit_normalizer_from_arrays. */
    if ((st = take_tensor(l, name, arr[a], t->dims, t->ndim, "the normalizer")) !=
        NNKIT_OK)
      goto done;
  }
  st = relabel(nnkit_normalizer_from_arrays(&nz, (nnkit_norm_kind)k, dims, ndim,
                                            out_size, arr[1], len[1], arr[2], len[2],
                                            arr[3], len[3]),
               l->path, "normalizer");
  const cJSON *s;
  cJSON_ArrayForEach(s, settings) {
    if (st != NNKIT_OK)
      break;
    int key = 0;
    for (int i = 1; i <= NUM_NORM_SETTINGS; i++)
      if (strcmp(s->string, norm_settings[i]) == 0)
        key = i;
    if (!key || !cJSON_IsNumber(s))
      st = BAD("%s: the normalizer has an unknown or non-numeric setting \"%s\"",
               l->path, s->string);
    else
      st = relabel(nnkit_normalizer_set(nz, (nnkit_norm_param)key, s->valuedouble),
                   l->path, "normalizer");
  }
done:
  for (int a = 0; a < 4; a++)
    nnkit__free(arr[a]);
  cJSON_Delete(o);
  if (st != NNKIT_OK) {
    nnkit_normalizer_free(nz);
    return st;
  }
  *out = nz;
  return NNKIT_OK;
}

/* Reads the whole file into *buf (owned by the caller). */
static nnkit_status read_file(const char *path, unsigned char **buf, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return nnkit__err(NNKIT_E_IO, "%s: cannot open the model file: %s", path,
                      strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return nnkit__err(NNKIT_E_IO, "%s: not a regular file", path);
  }
  size_t n = (size_t)sb.st_size;
  unsigned char *b = nnkit__malloc(n ? n : 1);
  if (!b) {
    fclose(f);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu bytes", path, n);
  }
  size_t got = fread(b, 1, n, f);
  int err = ferror(f);
  fclose(f);
  if (got != n || err) {
    nnkit__free(b);
    return nnkit__err(NNKIT_E_IO, "%s: reading the model file failed", path);
  }
  *buf = b;
  *len = n;
  return NNKIT_OK;
}

/* Checks the "crc32" of a file of len bytes in buf whose header (hlen
 * bytes from buf + 8) has been parsed into meta: required from format
 * version 2 on, checked whenever present. */
static nnkit_status check_crc(const loader *l, const cJSON *meta,
                              const unsigned char *buf, size_t len, size_t hlen,
                              int required)
{
  const char *stored = meta_string(meta, "crc32");
  if (!stored) {
    if (!required)
      return NNKIT_OK;
    return BAD("%s: the metadata lacks \"crc32\" (format version %s files carry "
               "a checksum); the file is corrupt", l->path, FORMAT_VERSION);
  }
  int ok = strlen(stored) == 8;
  for (size_t i = 0; ok && i < 8; i++)
    ok = (stored[i] >= '0' && stored[i] <= '9') || (stored[i] >= 'a' && stored[i] <= 'f');
  if (!ok)
    return BAD("%s: the metadata's \"crc32\" must be 8 lowercase hex digits; the "
               "file is corrupt", l->path);
  /* Where the digits are: right after the key, as nnkit writes it. */
  char pat[32];
  snprintf(pat, sizeof pat, "%s%s\"", CRC_KEY, stored);
  size_t plen = strlen(pat), at = 0;
  int found = 0;
  for (size_t i = 8; !found && i + plen <= 8 + hlen; i++)
    if (buf[i] == '"' && memcmp(buf + i, pat, plen) == 0) {
      found = 1;
      at = i + strlen(CRC_KEY);
    }
  if (!found)
    return BAD("%s: the header does not hold \"crc32\" the way nnkit writes it "
               "(rewritten by another tool?); the file cannot be checked", l->path);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, buf, (uInt)at);
  crc = crc32(crc, (const Bytef *)CRC_BLANK, 8);
  for (size_t o = at + 8; o < len;) { /* uInt-sized pieces */
    size_t m = len - o < ((size_t)1 << 30) ? len - o : ((size_t)1 << 30);
    crc = crc32(crc, buf + o, (uInt)m);
    o += m;
  }
  char computed[9];
  snprintf(computed, sizeof computed, "%08lx", (unsigned long)(crc & 0xffffffffUL));
  if (strcmp(computed, stored) != 0)
    return BAD("%s: checksum mismatch: the file is corrupt (stored %s, computed %s)",
               l->path, stored, computed);
  return NNKIT_OK;
}

/* The class names of the metadata, if any, given to net. */
static nnkit_status read_class_names(const loader *l, const cJSON *meta,
                                     nnkit_net *net)
{
  if (!cJSON_GetObjectItemCaseSensitive(meta, "class_names"))
    return NNKIT_OK;
  nnkit_status st = NNKIT_OK;
  cJSON *a = meta_json(l, meta, "class_names", &st);
  if (!a)
    return st;
  size_t n = cJSON_IsArray(a) ? (size_t)cJSON_GetArraySize(a) : 0;
  size_t outw = nnkit_net_output_size(net);
  const char **names = n == outw ? nnkit__calloc(n, sizeof *names) : NULL;
  if (n != outw || !cJSON_IsArray(a))
    st = BAD("%s: the metadata's \"class_names\" must be an array of %zu strings, "
             "one per output", l->path, outw);
  else if (!names)
    st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu class names", l->path, n);
  size_t i = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, a) {
    if (st != NNKIT_OK)
      break;
    if (!cJSON_IsString(v))
      st = BAD("%s: class name %zu in the metadata is not a string", l->path, i);
    else
      names[i++] = v->valuestring;
  }
  if (st == NNKIT_OK)
    st = relabel(nnkit_net_set_class_names(net, names, n), l->path, "class names");
  nnkit__free(names);
  cJSON_Delete(a);
  return st;
}

static nnkit_status load(loader *l, const unsigned char *buf, size_t len,
                         nnkit_net **net_out, nnkit_normalizer **nz_out)
{
  if (len < 8)
    return BAD("%s: %zu bytes is too short for a model file (the header length "
               "alone takes 8)", l->path, len);
  uint64_t hlen = 0;
  for (int b = 0; b < 8; b++)
    hlen |= (uint64_t)buf[b] << (8 * b);
  if (hlen > len - 8 || hlen > MAX_HEADER)
    return BAD("%s: the header claims %llu bytes but the file has %zu after the "
               "length (truncated, or not a safetensors file)", l->path,
               (unsigned long long)hlen, len - 8);
  const char *end = NULL;
  l->header = cJSON_ParseWithLengthOpts((const char *)buf + 8, (size_t)hlen, &end, 0);
  if (!l->header)
    return BAD("%s: the header is not valid JSON (or memory ran out parsing it)",
               l->path);
  for (const char *p = end; p < (const char *)buf + 8 + hlen; p++)
    if (*p != ' ')
      return BAD("%s: the header has bytes after its JSON object", l->path);
  if (!cJSON_IsObject(l->header))
    return BAD("%s: the header is not a JSON object", l->path);
  const cJSON *meta = cJSON_GetObjectItemCaseSensitive(l->header, "__metadata__");
  if (!cJSON_IsObject(meta))
    return BAD("%s: the header has no \"__metadata__\"; not an nnkit model file",
               l->path);
  const cJSON *m;
  cJSON_ArrayForEach(m, meta) {
    if (!cJSON_IsString(m))
      return BAD("%s: metadata \"%s\" is not a string", l->path, m->string);
  }
  const char *fmt = meta_string(meta, "format"), *ver = meta_string(meta, "format_version");
  if (!fmt || strcmp(fmt, "nnkit") != 0)
    return BAD("%s: the metadata's \"format\" is not \"nnkit\"; not an nnkit model "
               "file", l->path);
  int v1 = ver && strcmp(ver, FORMAT_VERSION_NO_CRC) == 0;
  if (!ver || (!v1 && strcmp(ver, FORMAT_VERSION) != 0))
    return BAD("%s: format version %s; this nnkit (%s) reads versions %s and %s, "
               "upgrade nnkit to load it", l->path, ver ? ver : "(missing)",
               nnkit_version(), FORMAT_VERSION_NO_CRC, FORMAT_VERSION);
  nnkit_status st = check_crc(l, meta, buf, len, (size_t)hlen, !v1);
  if (st != NNKIT_OK)
    return st;
  l->data = buf + 8 + hlen;
  l->data_len = len - 8 - (size_t)hlen;
  st = read_tensors(l);
  nnkit_net *net = NULL;
  nnkit_normalizer *nz = NULL;
  if (st == NNKIT_OK)
    st = build_net(l, meta, &net);
  if (st == NNKIT_OK)
    st = build_normalizer(l, meta, &nz);
  if (st == NNKIT_OK && nz &&
      nnkit_normalizer_out_size(nz) != nnkit_net_input_size(net))
    st = BAD("%s: the normalizer gives %zu values per sample but the net takes %zu",
             l->path, nnkit_normalizer_out_size(nz), nnkit_net_input_size(net));
  /* The net owns a copy; nz itself goes to the caller (or is freed). */
  if (st == NNKIT_OK && nz)
    st = nnkit_net_set_normalizer(net, nz);
  if (st == NNKIT_OK)
    st = read_class_names(l, meta, net);
  for (size_t i = 0; st == NNKIT_OK && i < l->n; i++)
    if (!l->t[i].used)
      st = BAD("%s: tensor %s belongs to no layer of the architecture", l->path,
               l->t[i].name);
  if (st != NNKIT_OK) {
    nnkit_net_free(net);
    nnkit_normalizer_free(nz);
    return st;
  }
  *net_out = net;
  if (nz_out)
    *nz_out = nz;
  else
    nnkit_normalizer_free(nz);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_load(nnkit_net **net_out, nnkit_normalizer **nz_out,
                                      const char *path)
{
  if (nz_out)
    *nz_out = NULL;
  if (!net_out || !path)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_load: net_out and path must be non-NULL");
  *net_out = NULL;
  unsigned char *buf = NULL;
  size_t len = 0;
  nnkit_status st = read_file(path, &buf, &len);
  if (st != NNKIT_OK)
    return st;
  loader l = {path, NULL, NULL, 0, NULL, 0};
  st = load(&l, buf, len, net_out, nz_out);
  cJSON_Delete(l.header);
  nnkit__free(l.t);
  nnkit__free(buf);
  return st;
}
