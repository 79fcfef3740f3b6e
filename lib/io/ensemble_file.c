/* Ensemble files: one safetensors file of the model files' family with a
 * CRC-32, holding each member as a model file would (model_file.c's
 * metadata under "member.<i>", its tensors under "members.<i>."), the
 * combination and the weights (layout in doc/file-format.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "io_internal.h"

#define ENSEMBLE_VERSION "1"
#define MAX_MEMBERS 100000

#define BAD(...) nnkit__err(NNKIT_E_FORMAT, __VA_ARGS__)

static const char *kind_name(nnkit_ensemble_kind k)
{
  return k == NNKIT_ENSEMBLE_VOTE ? "vote" : "mean";
}

NNKIT_API nnkit_status nnkit_ensemble_save(const nnkit_ensemble *ens, const char *path)
{
  if (!ens || !path)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_ensemble_save: ens and path must be "
                      "non-NULL");
  if (ens->n == 0)
    return nnkit__err(NNKIT_E_STATE, "%s: the ensemble has no members; add nets "
                      "before saving it", path);
  nnkit_status st = NNKIT_OK;
  for (size_t i = 0; i < ens->n && st == NNKIT_OK; i++)
    st = nnkit__model_check_save(ens->nets[i], ens->nets[i]->nz, path);
  if (st != NNKIT_OK)
    return st;
  nnkit__st_writer s = {path, "ensemble file", NULL, 0, 0, NULL};
  float **arrays = nnkit__calloc(4 * ens->n, sizeof *arrays);
  char prefix[48];
  cJSON *h = cJSON_CreateObject();
  cJSON *meta = h ? cJSON_AddObjectToObject(h, "__metadata__") : NULL;
  char count[32];
  snprintf(count, sizeof count, "%zu", ens->n);
  if (!arrays || !meta || !cJSON_AddStringToObject(meta, "format", "nnkit") ||
      !cJSON_AddStringToObject(meta, "kind", "ensemble") ||
      !cJSON_AddStringToObject(meta, "format_version", ENSEMBLE_VERSION) ||
      !cJSON_AddStringToObject(meta, "nnkit_version", nnkit_version()) ||
      !cJSON_AddStringToObject(meta, "combine", kind_name(ens->kind)) ||
      !cJSON_AddStringToObject(meta, "members", count) ||
      !nnkit__st_add_json_string(meta, "weights",
                                 cJSON_CreateDoubleArray(ens->w, (int)ens->n)))
    st = nnkit__st_nomem(&s);
  for (size_t i = 0; i < ens->n && st == NNKIT_OK; i++) {
    snprintf(prefix, sizeof prefix, "members.%zu.", i);
    char key[48];
    snprintf(key, sizeof key, "member.%zu", i);
    s.prefix = prefix;
    cJSON *m = cJSON_CreateObject();
    if (!m) {
      st = nnkit__st_nomem(&s);
      break;
    }
    if (!nnkit__model_meta(m, &s, ens->nets[i], ens->nets[i]->nz, arrays + 4 * i, &st))
      cJSON_Delete(m);
    else if (!nnkit__st_add_json_string(meta, key, m))
      st = nnkit__st_nomem(&s);
    /* The tensor names are copied when added: the prefix may change. */
  }
  s.prefix = NULL;
  if (st == NNKIT_OK)
    st = nnkit__st_write(&s, h, 1);
  cJSON_Delete(h);
  nnkit__st_writer_free(&s);
  for (size_t i = 0; arrays && i < 4 * ens->n; i++)
    nnkit__free(arrays[i]);
  nnkit__free(arrays);
  return st;
}

static nnkit_status load(nnkit__st_reader *r, nnkit_ensemble **out)
{
  nnkit_status st = nnkit__st_parse_header(r);
  if (st != NNKIT_OK)
    return st;
  const char *fmt = nnkit__st_meta_string(r->meta, "format");
  const char *kind = nnkit__st_meta_string(r->meta, "kind");
  const char *ver = nnkit__st_meta_string(r->meta, "format_version");
  if (!fmt || strcmp(fmt, "nnkit") != 0)
    return BAD("%s: the metadata's \"format\" is not \"nnkit\"; not an nnkit "
               "ensemble file", r->path);
  if (!kind || strcmp(kind, "ensemble") != 0)
    return BAD("%s is %s, not an ensemble file; load it with %s", r->path,
               kind && strcmp(kind, "checkpoint") == 0 ? "a training checkpoint"
                                                        : "a model file of one net",
               kind && strcmp(kind, "checkpoint") == 0 ? "nnkit_trainer_resume"
                                                        : "nnkit_net_load");
  if (!ver || strcmp(ver, ENSEMBLE_VERSION) != 0)
    return BAD("%s: ensemble format version %s; this nnkit (%s) reads version %s, "
               "upgrade nnkit to load it", r->path, ver ? ver : "(missing)",
               nnkit_version(), ENSEMBLE_VERSION);
  st = nnkit__st_check_crc(r, 1);
  if (st != NNKIT_OK)
    return st;
  static const char *const dtypes[] = {"F32", NULL};
  st = nnkit__st_read_tensors(r, dtypes);
  if (st != NNKIT_OK)
    return st;
  const char *comb = nnkit__st_meta_string(r->meta, "combine");
  const char *count_s = nnkit__st_meta_string(r->meta, "members");
  nnkit_ensemble_kind k = comb && strcmp(comb, "mean") == 0   ? NNKIT_ENSEMBLE_MEAN
                          : comb && strcmp(comb, "vote") == 0 ? NNKIT_ENSEMBLE_VOTE
                                                              : (nnkit_ensemble_kind)0;
  if (!k)
    return BAD("%s: the metadata's \"combine\" must be \"mean\" or \"vote\"", r->path);
  char *end = NULL;
  unsigned long n = count_s ? strtoul(count_s, &end, 10) : 0;
  if (!count_s || end == count_s || *end || n == 0 || n > MAX_MEMBERS)
    return BAD("%s: the metadata's \"members\" must be a count in [1, %d]", r->path,
               MAX_MEMBERS);
  cJSON *w = nnkit__st_meta_json(r, "weights", &st);
  if (!w)
    return st;
  nnkit_ensemble *ens = NULL;
  if (!cJSON_IsArray(w) || (unsigned long)cJSON_GetArraySize(w) != n)
    st = BAD("%s: the metadata's \"weights\" must be an array of %lu numbers, one "
             "per member", r->path, n);
  if (st == NNKIT_OK)
    st = nnkit_ensemble_create(&ens, k);
  for (unsigned long i = 0; st == NNKIT_OK && i < n; i++) {
    char key[48], prefix[48];
    snprintf(key, sizeof key, "member.%lu", i);
    snprintf(prefix, sizeof prefix, "members.%lu.", i);
    const cJSON *wi = cJSON_GetArrayItem(w, (int)i);
    double weight = cJSON_IsNumber(wi) ? wi->valuedouble : NAN;
    if (!(weight > 0 && weight <= 1e6)) {
      st = BAD("%s: weight %lu of the metadata is not a number in (0, 1e6]", r->path, i);
      break;
    }
    cJSON *m = nnkit__st_meta_json(r, key, &st);
    if (!m)
      break;
    nnkit__st_reader sub = *r;
    sub.meta = m;
    sub.prefix = prefix;
    nnkit_net *net = NULL;
    nnkit_normalizer *nz = NULL;
    st = nnkit__model_read(&sub, &net, &nz);
    nnkit_normalizer_free(nz);
    cJSON_Delete(m);
    if (st == NNKIT_OK) {
      char what[48];
      snprintf(what, sizeof what, "member %lu", i);
      st = nnkit__st_relabel(nnkit__ensemble_take(ens, net, weight), r->path, what);
    }
  }
  cJSON_Delete(w);
  for (size_t i = 0; st == NNKIT_OK && i < r->n; i++)
    if (!r->t[i].used)
      st = BAD("%s: tensor %s belongs to no member of the ensemble", r->path,
               r->t[i].name);
  if (st != NNKIT_OK) {
    nnkit_ensemble_free(ens);
    return st;
  }
  *out = ens;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_ensemble_load(nnkit_ensemble **out, const char *path)
{
  if (!out || !path)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_ensemble_load: out and path must be "
                      "non-NULL");
  *out = NULL;
  nnkit__st_reader r = {0};
  r.path = path;
  r.what = "ensemble file";
  nnkit_status st = nnkit__st_read_file(&r);
  if (st == NNKIT_OK)
    st = load(&r, out);
  nnkit__st_reader_free(&r);
  return st;
}
