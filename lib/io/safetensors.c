/* The safetensors container of model files and checkpoints (layout in
 * doc/file-format.md): a list of tensors under a JSON header, written
 * atomically, with an optional CRC-32 over the whole file; and the
 * checked reader. What goes into a file is model_file.c's and
 * checkpoint.c's business.
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
#include <unistd.h>

#include <zlib.h>

#include "io_internal.h"

/* Tensors a file may hold. */
#define MAX_TENSORS 100000
/* The checksum's key as cJSON prints it, and the eight digits that stand
 * in for the stored ones while the CRC is computed (the file is hashed as
 * if "crc32" held zeros). */
#define CRC_KEY "\"crc32\":\""
#define CRC_ZERO "00000000"

/* ---- little-endian values ---------------------------------------------------- */

static void put_le(unsigned char *dst, const void *src, size_t n, size_t esize)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(dst, src, n * esize);
#else
  const unsigned char *s = src;
  for (size_t i = 0; i < n; i++)
    for (size_t b = 0; b < esize; b++)
      dst[esize * i + b] = s[esize * i + esize - 1 - b];
#endif
}

static void get_le(void *dst, const unsigned char *src, size_t n, size_t esize)
{
  put_le(dst, src, n, esize); /* the same byte swap either way */
}

/* ---- writing ----------------------------------------------------------------- */

nnkit_status nnkit__st_nomem(const nnkit__st_writer *w)
{
  return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory while writing the %s", w->path,
                    w->what);
}

nnkit_status nnkit__st_add(nnkit__st_writer *w, const char *prefix, const char *name,
                           const char *dtype, const void *data, size_t ndim,
                           const size_t *dims)
{
  if (w->n == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 16;
    nnkit__st_out *t = nnkit__realloc(w->t, cap * sizeof *t);
    if (!t)
      return nnkit__st_nomem(w);
    w->t = t;
    w->cap = cap;
  }
  const char *outer = w->prefix ? w->prefix : "";
  size_t len = strlen(outer) + strlen(prefix) + strlen(name) + 1;
  char *full = nnkit__malloc(len);
  if (!full)
    return nnkit__st_nomem(w);
  snprintf(full, len, "%s%s%s", outer, prefix, name);
  nnkit__st_out *o = &w->t[w->n++];
  o->name = full;
  o->data = data;
  o->dtype = dtype;
  o->esize = strcmp(dtype, "F32") == 0 ? 4 : 8;
  o->ndim = ndim;
  o->count = 1;
  for (size_t i = 0; i < ndim; i++) {
    o->dims[i] = dims[i];
    o->count *= dims[i];
  }
  return NNKIT_OK;
}

void nnkit__st_writer_free(nnkit__st_writer *w)
{
  for (size_t i = 0; i < w->n; i++)
    nnkit__free(w->t[i].name);
  nnkit__free(w->t);
  w->t = NULL;
  w->n = w->cap = 0;
}

int nnkit__st_add_item(cJSON *obj, const char *key, cJSON *item)
{
  if (item && cJSON_AddItemToObject(obj, key, item))
    return 1;
  cJSON_Delete(item);
  return 0;
}

cJSON *nnkit__st_shape_json(const size_t *dims, size_t ndim)
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

int nnkit__st_add_json_string(cJSON *obj, const char *key, cJSON *item)
{
  char *text = item ? cJSON_PrintUnformatted(item) : NULL;
  cJSON_Delete(item);
  if (!text)
    return 0;
  int ok = cJSON_AddStringToObject(obj, key, text) != NULL;
  cJSON_free(text);
  return ok;
}

enum { CHUNK = 16384 }; /* values per little-endian buffer */

/* Header and tensors: to f when f is not NULL, and into *crc when crc is
 * not NULL. Stream errors are left to nnkit__tfile_commit (ferror). */
static void emit(FILE *f, uLong *crc, const nnkit__st_writer *w, const char *text,
                 size_t tlen, size_t hlen, unsigned char *buf)
{
  unsigned char len8[8];
  for (int b = 0; b < 8; b++)
    len8[b] = (unsigned char)((uint64_t)hlen >> (8 * b));
  if (f) {
    fwrite(len8, 1, 8, f);
    fwrite(text, 1, tlen, f);
    for (size_t i = tlen; i < hlen; i++)
      fputc(' ', f);
  }
  if (crc) {
    *crc = crc32(*crc, len8, 8);
    *crc = crc32(*crc, (const Bytef *)text, (uInt)tlen);
    for (size_t i = tlen; i < hlen; i++)
      *crc = crc32(*crc, (const Bytef *)" ", 1);
  }
  for (size_t i = 0; i < w->n && !(f && ferror(f)); i++) {
    const nnkit__st_out *t = &w->t[i];
    for (size_t o = 0; o < t->count; o += CHUNK) {
      size_t m = t->count - o < CHUNK ? t->count - o : CHUNK;
      put_le(buf, (const unsigned char *)t->data + o * t->esize, m, t->esize);
      if (f)
        fwrite(buf, t->esize, m, f);
      if (crc)
        *crc = crc32(*crc, buf, (uInt)(m * t->esize));
    }
  }
}

nnkit_status nnkit__st_write(nnkit__st_writer *w, cJSON *h, int with_crc)
{
  cJSON *meta = cJSON_GetObjectItemCaseSensitive(h, "__metadata__");
  if (!meta || (with_crc && !cJSON_AddStringToObject(meta, "crc32", CRC_ZERO)))
    return nnkit__st_nomem(w);
  size_t off = 0;
  for (size_t i = 0; i < w->n; i++) {
    const nnkit__st_out *t = &w->t[i];
    cJSON *o = cJSON_AddObjectToObject(h, t->name);
    cJSON *offs = NULL;
    size_t end = off + t->count * t->esize;
    if (!o || !cJSON_AddStringToObject(o, "dtype", t->dtype) ||
        !nnkit__st_add_item(o, "shape", nnkit__st_shape_json(t->dims, t->ndim)) ||
        !(offs = cJSON_AddArrayToObject(o, "data_offsets")) ||
        !cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) ||
        !cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)end)))
      return nnkit__st_nomem(w);
    off = end;
  }
  char *text = cJSON_PrintUnformatted(h);
  if (!text)
    return nnkit__st_nomem(w);
  unsigned char *buf = nnkit__malloc(CHUNK * 8);
  if (!buf) {
    cJSON_free(text);
    return nnkit__st_nomem(w);
  }
  size_t tlen = strlen(text), hlen = (tlen + 7) / 8 * 8;
  if (with_crc) {
    /* The metadata object is printed before the tensor entries, so the
     * first occurrence is its own. */
    char *z = strstr(text, CRC_KEY CRC_ZERO "\"");
    uLong crc = crc32(0L, Z_NULL, 0);
    emit(NULL, &crc, w, text, tlen, hlen, buf);
    char hex[9];
    snprintf(hex, sizeof hex, "%08lx", (unsigned long)(crc & 0xffffffffUL));
    memcpy(z + strlen(CRC_KEY), hex, 8);
  }
  nnkit__tfile tf;
  nnkit_status st = nnkit__tfile_open(&tf, w->path);
  if (st == NNKIT_OK) {
    emit(tf.f, NULL, w, text, tlen, hlen, buf);
    st = nnkit__tfile_commit(&tf, 1);
  }
  nnkit__free(buf);
  cJSON_free(text);
  return st;
}

/* ---- telling bad JSON from a failed allocation ------------------------------ */

/* cJSON returns NULL both for bad JSON and when its own malloc fails, and
 * nnkit must not install cJSON hooks (they are process-wide). So after a
 * NULL parse nnkit checks the same bytes with this validator, which
 * allocates nothing and accepts only a subset of what cJSON 1.7 parses:
 * RFC 8259 JSON with whitespace limited to space, tab, CR and LF, no raw
 * control characters in strings, numbers of at most 63 characters (cJSON
 * copies a number into a 64-byte buffer), \u escapes that form valid
 * UTF-16 (cJSON rejects lone surrogates), nesting below 1000 (cJSON's
 * CJSON_NESTING_LIMIT). If the validator accepts text that cJSON refused,
 * the only reason left is memory, so the answer is NNKIT_E_NOMEM;
 * anything it rejects is NNKIT_E_FORMAT. Like cJSON with
 * require_null_terminated = 0, bytes after the value are not looked at. */
typedef struct jscan {
  const unsigned char *p, *end;
  int depth;
} jscan;

static void js_ws(jscan *j)
{
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
                           *j->p == '\r'))
    j->p++;
}

static int js_hex4(jscan *j, unsigned *out)
{
  if (j->end - j->p < 4)
    return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = j->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= c - '0';
    else if (c >= 'a' && c <= 'f')
      v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v |= c - 'A' + 10;
    else
      return 0;
  }
  j->p += 4;
  *out = v;
  return 1;
}

static int js_string(jscan *j)
{
  if (j->p >= j->end || *j->p != '"')
    return 0;
  j->p++;
  while (j->p < j->end) {
    unsigned char c = *j->p++;
    if (c == '"')
      return 1;
    if (c < 0x20)
      return 0;
    if (c != '\\')
      continue;
    if (j->p >= j->end)
      return 0;
    c = *j->p++;
    if (strchr("\"\\/bfnrt", c) && c)
      continue;
    if (c != 'u')
      return 0;
    unsigned u, lo;
    if (!js_hex4(j, &u) || (u >= 0xDC00 && u <= 0xDFFF))
      return 0;
    if (u >= 0xD800 && u <= 0xDBFF) { /* a high surrogate needs its low half */
      if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
        return 0;
      j->p += 2;
      if (!js_hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF)
        return 0;
    }
  }
  return 0;
}

static int js_digits(jscan *j)
{
  const unsigned char *b = j->p;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
    j->p++;
  return j->p > b;
}

static int js_number(jscan *j)
{
  const unsigned char *b = j->p;
  if (j->p < j->end && *j->p == '-')
    j->p++;
  if (j->p < j->end && *j->p == '0')
    j->p++;
  else if (!js_digits(j))
    return 0;
  if (j->p < j->end && *j->p == '.') {
    j->p++;
    if (!js_digits(j))
      return 0;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
      j->p++;
    if (!js_digits(j))
      return 0;
  }
  /* cJSON reads at most 63 characters, and only these after a number. */
  if (j->p - b > 63)
    return 0;
  return j->p == j->end || !strchr("0123456789+-eE.", *j->p) || !*j->p;
}

static int js_word(jscan *j, const char *w)
{
  size_t n = strlen(w);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
    return 0;
  j->p += n;
  return 1;
}

static int js_value(jscan *j)
{
  if (j->p >= j->end)
    return 0;
  unsigned char c = *j->p;
  if (c == '"')
    return js_string(j);
  if (c == '-' || (c >= '0' && c <= '9'))
    return js_number(j);
  if (c == 'n')
    return js_word(j, "null");
  if (c == 't')
    return js_word(j, "true");
  if (c == 'f')
    return js_word(j, "false");
  if (c != '[' && c != '{')
    return 0;
  if (++j->depth >= 1000)
    return 0;
  int obj = c == '{';
  j->p++;
  js_ws(j);
  if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
    j->p++;
    j->depth--;
    return 1;
  }
  for (;;) {
    if (obj) {
      if (!js_string(j))
        return 0;
      js_ws(j);
      if (j->p >= j->end || *j->p != ':')
        return 0;
      j->p++;
      js_ws(j);
    }
    if (!js_value(j))
      return 0;
    js_ws(j);
    if (j->p >= j->end)
      return 0;
    if (*j->p == ',') {
      j->p++;
      js_ws(j);
      continue;
    }
    if (*j->p != (obj ? '}' : ']'))
      return 0;
    j->p++;
    j->depth--;
    return 1;
  }
}

int nnkit__json_valid(const char *text, size_t len)
{
  jscan j = {(const unsigned char *)text, (const unsigned char *)text + len, 0};
  js_ws(&j);
  return js_value(&j);
}

nnkit_status nnkit__json_parse_failed(const char *path, const char *text, size_t len,
                                      const char *what)
{
  if (nnkit__json_valid(text, len))
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory parsing %s", path, what);
  return nnkit__err(NNKIT_E_FORMAT, "%s: %s is not valid JSON", path, what);
}

/* ---- reading ----------------------------------------------------------------- */

#define BAD(...) nnkit__err(NNKIT_E_FORMAT, __VA_ARGS__)

void nnkit__st_shape_text(char *buf, size_t len, const size_t *d, size_t n)
{
  size_t o = (size_t)snprintf(buf, len, "[");
  for (size_t i = 0; i < n && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, "%s%zu", i ? ", " : "", d[i]);
  if (o < len)
    snprintf(buf + o, len - o, "]");
}

int nnkit__st_whole(const cJSON *v, double max, size_t *out)
{
  if (!cJSON_IsNumber(v))
    return 0;
  double d = v->valuedouble;
  if (!(d >= 0 && d <= max) || d != floor(d))
    return 0;
  *out = (size_t)d;
  return 1;
}

int nnkit__st_shape_of(const cJSON *a, size_t max_dims, size_t *dims, size_t *ndim)
{
  if (!cJSON_IsArray(a))
    return 0;
  size_t n = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, a) {
    if (n == max_dims || !nnkit__st_whole(v, (double)((size_t)1 << 31), &dims[n]) ||
        !dims[n])
      return 0;
    n++;
  }
  *ndim = n;
  return n > 0;
}

const char *nnkit__st_meta_string(const cJSON *meta, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *nnkit__st_meta_json(const nnkit__st_reader *r, const char *key,
                           nnkit_status *st)
{
  const char *s = nnkit__st_meta_string(r->meta, key);
  if (!s) {
    *st = BAD("%s: the metadata lacks \"%s\"", r->path, key);
    return NULL;
  }
  cJSON *j = cJSON_Parse(s);
  if (!j) {
    char what[96];
    snprintf(what, sizeof what, "the metadata's \"%s\"", key);
    *st = nnkit__json_parse_failed(r->path, s, strlen(s), what);
  }
  return j;
}

nnkit_status nnkit__st_relabel(nnkit_status st, const char *path, const char *what)
{
  if (st == NNKIT_E_NOMEM || st == NNKIT_OK)
    return st;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", nnkit_last_error());
  return BAD("%s: %s: %s", path, what, msg);
}

nnkit_status nnkit__st_read_file(nnkit__st_reader *r)
{
  unsigned char *b;
  nnkit_status st = nnkit__read_file(&b, &r->len, r->path, r->what, 0);
  if (st == NNKIT_OK)
    r->buf = b;
  return st;
}

nnkit_status nnkit__st_parse_header(nnkit__st_reader *r)
{
  const unsigned char *buf = r->buf;
  size_t len = r->len;
  if (len < 8)
    return BAD("%s: %zu bytes is too short for a %s (the header length alone takes "
               "8)", r->path, len, r->what);
  uint64_t hlen = 0;
  for (int b = 0; b < 8; b++)
    hlen |= (uint64_t)buf[b] << (8 * b);
  if (hlen > len - 8 || hlen > NNKIT__ST_MAX_HEADER)
    return BAD("%s: the header claims %llu bytes but the file has %zu after the "
               "length (truncated, or not a safetensors file)", r->path,
               (unsigned long long)hlen, len - 8);
  const char *end = NULL;
  r->header = cJSON_ParseWithLengthOpts((const char *)buf + 8, (size_t)hlen, &end, 0);
  if (!r->header)
    return nnkit__json_parse_failed(r->path, (const char *)buf + 8, (size_t)hlen,
                                    "the header");
  for (const char *p = end; p < (const char *)buf + 8 + hlen; p++)
    if (*p != ' ')
      return BAD("%s: the header has bytes after its JSON object", r->path);
  if (!cJSON_IsObject(r->header))
    return BAD("%s: the header is not a JSON object", r->path);
  const cJSON *meta = cJSON_GetObjectItemCaseSensitive(r->header, "__metadata__");
  if (!cJSON_IsObject(meta))
    return BAD("%s: the header has no \"__metadata__\"; not an nnkit %s", r->path,
               r->what);
  const cJSON *m;
  cJSON_ArrayForEach(m, meta) {
    if (!cJSON_IsString(m))
      return BAD("%s: metadata \"%s\" is not a string", r->path, m->string);
  }
  r->meta = meta;
  r->data = buf + 8 + hlen;
  r->data_len = len - 8 - (size_t)hlen;
  return NNKIT_OK;
}

nnkit_status nnkit__st_check_crc(const nnkit__st_reader *r, int required)
{
  const char *stored = nnkit__st_meta_string(r->meta, "crc32");
  if (!stored) {
    if (!required)
      return NNKIT_OK;
    return BAD("%s: the metadata lacks \"crc32\" (every %s nnkit writes carries a "
               "checksum); the file is corrupt", r->path, r->what);
  }
  if (strlen(stored) != 8 || strspn(stored, "0123456789abcdef") != 8)
    return BAD("%s: the metadata's \"crc32\" must be 8 lowercase hex digits; the "
               "file is corrupt", r->path);
  /* The digits' place in the raw header: right after the key, as cJSON
   * prints it, and followed by the closing quote. */
  char pat[32];
  snprintf(pat, sizeof pat, "%s%s\"", CRC_KEY, stored);
  size_t hlen = (size_t)(r->data - r->buf) - 8, plen = strlen(pat), pos = 0;
  for (size_t i = 8; !pos && i + plen <= 8 + hlen; i++)
    if (r->buf[i] == '"' && memcmp(r->buf + i, pat, plen) == 0)
      pos = i + strlen(CRC_KEY);
  if (!pos)
    return BAD("%s: the header does not hold \"crc32\" the way nnkit writes it "
               "(rewritten by another tool?); the file cannot be checked", r->path);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, r->buf, (uInt)pos);
  crc = crc32(crc, (const Bytef *)CRC_ZERO, 8);
  for (size_t o = pos + 8; o < r->len; o += (size_t)1 << 30) {
    size_t m = r->len - o < ((size_t)1 << 30) ? r->len - o : ((size_t)1 << 30);
    crc = crc32(crc, r->buf + o, (uInt)m);
  }
  char computed[9];
  snprintf(computed, sizeof computed, "%08lx", (unsigned long)(crc & 0xffffffffUL));
  if (strcmp(computed, stored) != 0)
    return BAD("%s: checksum mismatch: the file is corrupt (stored %s, computed %s)",
               r->path, stored, computed);
  return NNKIT_OK;
}

static int by_begin(const void *a, const void *b)
{
  const nnkit__st_in *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin;
}

nnkit_status nnkit__st_read_tensors(nnkit__st_reader *r, const char *const *dtypes)
{
  const cJSON *e;
  size_t n = 0;
  cJSON_ArrayForEach(e, r->header) n += strcmp(e->string, "__metadata__") != 0;
  if (n > MAX_TENSORS)
    return BAD("%s: the header lists %zu tensors, more than the %d a %s may hold",
               r->path, n, MAX_TENSORS, r->what);
  r->t = nnkit__calloc(n ? n : 1, sizeof *r->t);
  if (!r->t)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu tensors", r->path, n);
  cJSON_ArrayForEach(e, r->header) {
    if (strcmp(e->string, "__metadata__") == 0)
      continue;
    nnkit__st_in *t = &r->t[r->n++];
    t->name = e->string;
    const cJSON *dt = NULL, *sh = NULL, *of = NULL;
    if (cJSON_IsObject(e)) {
      dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
      sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
      of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    }
    if (!cJSON_IsString(dt) || !sh || !of)
      return BAD("%s: tensor %s needs \"dtype\", \"shape\" and \"data_offsets\"",
                 r->path, t->name);
    for (size_t i = 0; dtypes[i] && !t->dtype; i++)
      if (strcmp(dt->valuestring, dtypes[i]) == 0)
        t->dtype = dtypes[i];
    if (!t->dtype) {
      char list[64] = "";
      for (size_t i = 0; dtypes[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 i == 0 ? "" : dtypes[i + 1] ? ", " : " and ", dtypes[i]);
      return BAD("%s: tensor %s has dtype %s; nnkit %ss hold %s only", r->path,
                 t->name, dt->valuestring, r->what, list);
    }
    t->esize = strcmp(t->dtype, "F32") == 0 ? 4 : 8;
    if (!nnkit__st_shape_of(sh, sizeof t->dims / sizeof t->dims[0], t->dims, &t->ndim))
      return BAD("%s: tensor %s has a bad shape (1 to 8 positive whole numbers "
                 "below 2^31 expected)", r->path, t->name);
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
        !nnkit__st_whole(cJSON_GetArrayItem(of, 0), (double)r->data_len, &t->begin) ||
        !nnkit__st_whole(cJSON_GetArrayItem(of, 1), (double)r->data_len, &t->end) ||
        t->end < t->begin)
      return BAD("%s: tensor %s has data_offsets outside the %zu bytes of data "
                 "(truncated file?)", r->path, t->name, r->data_len);
    size_t count = 1;
    int ovf = 0;
    for (size_t i = 0; i < t->ndim; i++)
      count = nnkit__mul_size(count, t->dims[i], &ovf);
    if (ovf || count > SIZE_MAX / t->esize || t->end - t->begin != count * t->esize) {
      char sbuf[128];
      nnkit__st_shape_text(sbuf, sizeof sbuf, t->dims, t->ndim);
      return BAD("%s: tensor %s has shape %s but %zu bytes of data", r->path, t->name,
                 sbuf, t->end - t->begin);
    }
  }
  qsort(r->t, r->n, sizeof *r->t, by_begin);
  size_t at = 0;
  for (size_t i = 0; i < r->n; i++) {
    if (r->t[i].begin != at)
      return BAD("%s: tensor %s starts at byte %zu of the data but the previous "
                 "one ends at %zu (tensors must not overlap or leave gaps)", r->path,
                 r->t[i].name, r->t[i].begin, at);
    at = r->t[i].end;
  }
  if (at != r->data_len)
    return BAD("%s: the tensors cover %zu bytes but the file holds %zu bytes of "
               "data", r->path, at, r->data_len);
  return NNKIT_OK;
}

nnkit__st_in *nnkit__st_find(nnkit__st_reader *r, const char *name)
{
  const char *pre = r->prefix ? r->prefix : "";
  size_t plen = strlen(pre);
  for (size_t i = 0; i < r->n; i++)
    if (strncmp(r->t[i].name, pre, plen) == 0 && strcmp(r->t[i].name + plen, name) == 0)
      return &r->t[i];
  return NULL;
}

/* The tensor `name` of dtype and shape dims, or NULL with the sentence. */
static nnkit__st_in *want_tensor(nnkit__st_reader *r, const char *name,
                                 const char *dtype, const size_t *dims, size_t ndim,
                                 const char *need, nnkit_status *st)
{
  nnkit__st_in *t = nnkit__st_find(r, name);
  char want[128], got[128];
  nnkit__st_shape_text(want, sizeof want, dims, ndim);
  if (!t) {
    *st = BAD("%s: tensor %s%s is missing; %s needs one of shape %s", r->path,
              r->prefix ? r->prefix : "", name, need, want);
    return NULL;
  }
  if (strcmp(t->dtype, dtype) != 0) {
    *st = BAD("%s: tensor %s has dtype %s but %s needs %s", r->path, name, t->dtype,
              need, dtype);
    return NULL;
  }
  if (t->ndim != ndim || memcmp(t->dims, dims, ndim * sizeof *dims) != 0) {
    nnkit__st_shape_text(got, sizeof got, t->dims, t->ndim);
    *st = BAD("%s: tensor %s has shape %s but %s needs %s", r->path, name, got, need,
              want);
    return NULL;
  }
  t->used = 1;
  return t;
}

nnkit_status nnkit__st_check_f32(nnkit__st_reader *r, const char *name,
                                 const size_t *dims, size_t ndim, const char *need)
{
  nnkit_status st = NNKIT_OK;
  nnkit__st_in *t = want_tensor(r, name, "F32", dims, ndim, need, &st);
  if (t)
    t->used = 0; /* taken later */
  return st;
}

nnkit_status nnkit__st_take_f32(nnkit__st_reader *r, const char *name, float *dst,
                                const size_t *dims, size_t ndim, const char *need)
{
  nnkit_status st = NNKIT_OK;
  nnkit__st_in *t = want_tensor(r, name, "F32", dims, ndim, need, &st);
  if (!t)
    return st;
  t->used = 0;
  size_t count = (t->end - t->begin) / sizeof(float);
  get_le(dst, r->data + t->begin, count, 4);
  for (size_t i = 0; i < count; i++)
    if (!isfinite(dst[i]))
      return BAD("%s: tensor %s holds a NaN or infinite value at index %zu; the "
                 "file is damaged", r->path, name, i);
  t->used = 1;
  return NNKIT_OK;
}

nnkit_status nnkit__st_take_f64(nnkit__st_reader *r, const char *name, double *dst,
                                const size_t *dims, size_t ndim, const char *need)
{
  nnkit_status st = NNKIT_OK;
  nnkit__st_in *t = want_tensor(r, name, "F64", dims, ndim, need, &st);
  if (t)
    get_le(dst, r->data + t->begin, (t->end - t->begin) / 8, 8);
  return st;
}

nnkit_status nnkit__st_take_u64(nnkit__st_reader *r, const char *name,
                                uint64_t *dst, const size_t *dims, size_t ndim,
                                const char *need)
{
  nnkit_status st = NNKIT_OK;
  nnkit__st_in *t = want_tensor(r, name, "U64", dims, ndim, need, &st);
  if (t)
    get_le(dst, r->data + t->begin, (t->end - t->begin) / 8, 8);
  return st;
}

void nnkit__st_reader_free(nnkit__st_reader *r)
{
  cJSON_Delete(r->header);
  nnkit__free(r->t);
  nnkit__free(r->buf);
  r->header = NULL;
  r->t = NULL;
  r->buf = NULL;
}
