/* The search's record (nnkit/search.h): trial records by index, their
 * getters and the best trial, the trial lines, the results file (JSON
 * Lines appended and synced per trial; read back on resume, a torn last
 * line dropped) and the CSV / JSON Lines tables. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "search_internal.h"

nnkit_status nnkit__search_reserve(nnkit_search *s, size_t n)
{
  if (n <= s->cap_trials) {
    s->num_trials = n > s->num_trials ? n : s->num_trials;
    return NNKIT_OK;
  }
  size_t cap = s->cap_trials ? s->cap_trials : 16;
  while (cap < n)
    cap *= 2;
  nnkit__trial_rec *t = nnkit__realloc(s->trials, cap * sizeof *t);
  if (!t)
    return nnkit__err(NNKIT_E_NOMEM, "search: out of memory for %zu trials", n);
  s->trials = t;
  memset(t + s->cap_trials, 0, (cap - s->cap_trials) * sizeof *t);
  size_t nd = s->space->num_dims;
  for (size_t i = s->cap_trials; i < cap; i++) {
    t[i].values = nnkit__calloc(nd, sizeof(double));
    if (!t[i].values) {
      s->cap_trials = i; /* the records before i are complete */
      return nnkit__err(NNKIT_E_NOMEM, "search: out of memory for %zu trials", n);
    }
  }
  s->cap_trials = cap;
  s->num_trials = n > s->num_trials ? n : s->num_trials;
  return NNKIT_OK;
}

void nnkit__search_clear(nnkit_search *s)
{
  for (size_t i = 0; i < s->cap_trials; i++) {
    nnkit__free(s->trials[i].curve);
    s->trials[i].curve = NULL;
    double *v = s->trials[i].values;
    memset(&s->trials[i], 0, sizeof s->trials[i]);
    s->trials[i].values = v;
  }
  s->num_trials = 0;
  if (s->warnings)
    s->warnings[0] = '\0';
  s->warn_len = 0;
}

const char *nnkit__search_score_name(const nnkit_search *s)
{
  if (s->score_name)
    return s->score_name;
  if (!s->builtin)
    return "score";
  return s->set[NNKIT_SEARCH_MAXIMIZE] != 0 ? "val_acc" : "val_loss";
}

void nnkit__search_warn(nnkit_search *s, const char *line)
{
  size_t n = strlen(line);
  char *w = nnkit__realloc(s->warnings, s->warn_len + n + 2);
  if (!w)
    return; /* a warning lost to OOM; the run goes on */
  memcpy(w + s->warn_len, line, n);
  w[s->warn_len + n] = '\n';
  w[s->warn_len + n + 1] = '\0';
  s->warnings = w;
  s->warn_len += n + 1;
}

void nnkit__search_line(const nnkit_search *s, size_t i, size_t pos, size_t total,
                        char *buf, size_t len)
{
  const nnkit__trial_rec *r = &s->trials[i];
  size_t at = 0;
#define PUT(...)                                                          \
  do {                                                                    \
    int k_ = snprintf(buf + at, len - at, __VA_ARGS__);                   \
    at = k_ < 0 ? at : (at + (size_t)k_ >= len ? len - 1 : at + (size_t)k_); \
  } while (0)
  if (r->status == NNKIT_TRIAL_FAILED)
    PUT("failed (%s)", r->reason);
  else
    PUT("%s: %f", nnkit__search_score_name(s), r->score);
  if (isfinite(r->score_std))
    PUT(" (std %f)", r->score_std);
  if (r->status == NNKIT_TRIAL_PRUNED)
    PUT(" (stopped after epoch %zu)", r->reached);
  for (size_t j = 0; j < s->space->num_dims; j++) {
    char v[48];
    nnkit__dim_format(&s->space->dims[j], r->values[j], v, sizeof v);
    PUT(", %s: %s", s->space->dims[j].name, v);
  }
  PUT(", (%zu / %zu)", pos, total);
#undef PUT
}

/* ---- getters -------------------------------------------------------------- */

static nnkit_status trial_at(const nnkit_search *s, size_t trial, const char *fn)
{
  if (!s)
    return nnkit__err(NNKIT_E_INVALID, "%s: the search is NULL", fn);
  if (trial >= s->num_trials)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: trial %zu is out of range; the last run recorded %zu",
                      fn, trial, s->num_trials);
  return NNKIT_OK;
}

NNKIT_API size_t nnkit_search_num_trials(const nnkit_search *s)
{
  return s ? s->num_trials : 0;
}

NNKIT_API nnkit_status nnkit_search_result(double *out, const nnkit_search *s,
                                           size_t trial, nnkit_result_field field)
{
  nnkit_status st = trial_at(s, trial, "nnkit_search_result");
  if (st != NNKIT_OK)
    return st;
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_search_result: out is NULL");
  const nnkit__trial_rec *r = &s->trials[trial];
  switch (field) {
  case NNKIT_RESULT_SCORE: *out = r->score; break;
  case NNKIT_RESULT_SCORE_STD: *out = r->score_std; break;
  case NNKIT_RESULT_STATUS: *out = (double)r->status; break;
  case NNKIT_RESULT_EPOCHS: *out = (double)r->epochs; break;
  case NNKIT_RESULT_PHASE: *out = (double)r->phase; break;
  case NNKIT_RESULT_CONFIG: *out = (double)r->config; break;
  case NNKIT_RESULT_SECONDS: *out = r->seconds; break;
  case NNKIT_RESULT_SEED: *out = (double)r->seed; break;
  default:
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_search_result: unknown field %d; use an NNKIT_RESULT_* "
                      "value", (int)field);
  }
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_search_value(double *out, const nnkit_search *s,
                                          size_t trial, size_t dim)
{
  nnkit_status st = trial_at(s, trial, "nnkit_search_value");
  if (st != NNKIT_OK)
    return st;
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_search_value: out is NULL");
  if (dim >= s->space->num_dims)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_search_value: dimension %zu is out of range; the space "
                      "has %zu", dim, s->space->num_dims);
  *out = s->trials[trial].values[dim];
  return NNKIT_OK;
}

NNKIT_API const char *nnkit_search_reason(const nnkit_search *s, size_t trial)
{
  return s && trial < s->num_trials ? s->trials[trial].reason : NULL;
}

NNKIT_API const char *nnkit_search_warnings(const nnkit_search *s)
{
  if (!s)
    return NULL;
  return s->warnings ? s->warnings : "";
}

NNKIT_API nnkit_status nnkit_search_best(size_t *out, const nnkit_search *s)
{
  if (!s || !out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_search_best: NULL argument");
  size_t most = 0;
  int any = 0;
  for (size_t i = 0; i < s->num_trials; i++)
    if (s->trials[i].done && s->trials[i].status == NNKIT_TRIAL_OK) {
      most = s->trials[i].epochs > most ? s->trials[i].epochs : most;
      any = 1;
    }
  if (!any)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_search_best: no trial finished; run the search (and "
                      "look at nnkit_search_reason() for why trials failed)");
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < s->num_trials; i++) {
    const nnkit__trial_rec *r = &s->trials[i];
    if (!r->done || r->status != NNKIT_TRIAL_OK || r->epochs != most)
      continue;
    if (best == SIZE_MAX || nnkit__search_better(s, r->score, s->trials[best].score))
      best = i;
  }
  *out = best;
  return NNKIT_OK;
}

/* ---- JSON records ---------------------------------------------------------- */

static const char *status_name(nnkit_trial_status st)
{
  return st == NNKIT_TRIAL_OK ? "ok" : st == NNKIT_TRIAL_PRUNED ? "pruned" : "failed";
}

/* A number that reads back exactly ("%.17g": cJSON's own printing
 * accepts a last-bit difference), null for NaN and infinities. */
static cJSON *exact(double v)
{
  char buf[40];
  if (!isfinite(v))
    return cJSON_CreateNull();
  snprintf(buf, sizeof buf, "%.17g", v);
  return cJSON_CreateRaw(buf);
}

static int add_exact(cJSON *o, const char *key, double v)
{
  cJSON *n = exact(v);
  if (n && cJSON_AddItemToObject(o, key, n))
    return 1;
  cJSON_Delete(n);
  return 0;
}

/* Record i as one line of JSON (NaN as null), without the newline, freed
 * with cJSON_free; NULL on OOM. */
static char *record_json(const nnkit_search *s, size_t i)
{
  const nnkit__trial_rec *r = &s->trials[i];
  cJSON *o = cJSON_CreateObject(), *v = NULL, *c = NULL;
  int ok = o != NULL;
  ok = ok && cJSON_AddNumberToObject(o, "trial", (double)i);
  ok = ok && cJSON_AddNumberToObject(o, "phase", (double)r->phase);
  ok = ok && cJSON_AddNumberToObject(o, "config", (double)r->config);
  ok = ok && cJSON_AddNumberToObject(o, "epochs", (double)r->epochs);
  ok = ok && cJSON_AddStringToObject(o, "status", status_name(r->status));
  ok = ok && add_exact(o, nnkit__search_score_name(s), r->score);
  ok = ok && add_exact(o, "score_std", r->score_std);
  ok = ok && add_exact(o, "seconds", r->seconds);
  ok = ok && add_exact(o, "seed", (double)r->seed);
  ok = ok && (v = cJSON_AddObjectToObject(o, "values")) != NULL;
  for (size_t j = 0; ok && j < s->space->num_dims; j++)
    ok = add_exact(v, s->space->dims[j].name, r->values[j]);
  ok = ok && (c = cJSON_AddArrayToObject(o, "curve")) != NULL;
  for (size_t e = 0; ok && e < r->reached; e++) {
    cJSON *n = exact(r->curve[e]);
    ok = n && cJSON_AddItemToArray(c, n);
  }
  ok = ok && cJSON_AddStringToObject(o, "reason", r->reason);
  char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  return text;
}

static double num_or_nan(const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int whole(const cJSON *o, const char *key, size_t *out)
{
  double v = num_or_nan(o, key);
  if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v))
    return 0;
  *out = (size_t)v;
  return 1;
}

/* Parses one line into r (values in space order, a curve allocated);
 * 0 when it is not a complete record of this space. */
static int parse_record(const nnkit_search *s, const char *line, size_t *index,
                        nnkit__trial_rec *r)
{
  cJSON *o = cJSON_Parse(line);
  if (!o)
    return 0;
  int ok = cJSON_IsObject(o);
  size_t seed = 0;
  ok = ok && whole(o, "trial", index) && whole(o, "phase", &r->phase) &&
       whole(o, "config", &r->config) && whole(o, "epochs", &r->epochs) &&
       whole(o, "seed", &seed);
  r->seed = seed;
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
  ok = ok && cJSON_IsString(st);
  if (ok) {
    if (!strcmp(st->valuestring, "ok"))
      r->status = NNKIT_TRIAL_OK;
    else if (!strcmp(st->valuestring, "failed"))
      r->status = NNKIT_TRIAL_FAILED;
    else if (!strcmp(st->valuestring, "pruned"))
      r->status = NNKIT_TRIAL_PRUNED;
    else
      ok = 0;
  }
  r->score = num_or_nan(o, nnkit__search_score_name(s));
  r->score_std = num_or_nan(o, "score_std");
  r->seconds = num_or_nan(o, "seconds");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "values");
  for (size_t j = 0; ok && j < s->space->num_dims; j++) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(v, s->space->dims[j].name);
    ok = cJSON_IsNumber(x);
    if (ok)
      r->values[j] = x->valuedouble;
  }
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "reason");
  if (ok && cJSON_IsString(rs))
    snprintf(r->reason, sizeof r->reason, "%s", rs->valuestring);
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "curve");
  ok = ok && cJSON_IsArray(c);
  size_t n = ok ? (size_t)cJSON_GetArraySize(c) : 0;
  if (ok && n > r->epochs)
    ok = 0;
  if (ok && r->epochs > 0) {
    r->curve = nnkit__calloc(r->epochs, sizeof(double));
    ok = r->curve != NULL;
  }
  size_t e = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, c)
  {
    if (!ok)
      break;
    r->curve[e++] = cJSON_IsNumber(x) ? x->valuedouble : NAN;
  }
  r->reached = e;
  cJSON_Delete(o);
  return ok;
}

void nnkit__recs_free(nnkit__file_rec *recs, size_t n)
{
  if (!recs)
    return;
  for (size_t i = 0; i < n; i++) {
    nnkit__free(recs[i].rec.values);
    nnkit__free(recs[i].rec.curve);
  }
  nnkit__free(recs);
}


nnkit_status nnkit__results_read(nnkit__file_rec **recs_out, size_t *n_out,
                                 const nnkit_search *s)
{
  *recs_out = NULL;
  *n_out = 0;
  const char *path = s->results_path;
  if (access(path, F_OK) != 0)
    return NNKIT_OK; /* a new search */
  unsigned char *bytes = NULL;
  size_t len = 0;
  nnkit_status st = nnkit__read_file(&bytes, &len, path, "search results file", 0);
  if (st != NNKIT_OK)
    return st;
  char *buf = (char *)bytes; /* NUL-terminated */
  size_t lines = 0;
  for (size_t i = 0; i < len; i++)
    lines += buf[i] == '\n';
  nnkit__file_rec *recs = nnkit__calloc(lines + 1, sizeof *recs);
  if (!recs) {
    nnkit__free(buf);
    return nnkit__err(NNKIT_E_NOMEM, "search results file %s: out of memory", path);
  }
  size_t n = 0, line_no = 0, good_end = 0;
  char *p = buf;
  while (st == NNKIT_OK && p < buf + len) {
    char *nl = memchr(p, '\n', (size_t)(buf + len - p));
    line_no++;
    int last = nl == NULL || nl + 1 == buf + len;
    if (nl)
      *nl = '\0';
    nnkit__trial_rec *r = &recs[n].rec;
    r->values = nnkit__calloc(s->space->num_dims ? s->space->num_dims : 1, sizeof(double));
    if (!r->values) {
      st = nnkit__err(NNKIT_E_NOMEM, "search results file %s: out of memory", path);
      break;
    }
    int parsed = nl && parse_record(s, p, &recs[n].index, r);
    if (nl)
      *nl = '\n'; /* the buffer is written back below */
    if (parsed) {
      n++;
      good_end = (size_t)(nl + 1 - buf);
    } else {
      nnkit__free(r->values);
      nnkit__free(r->curve);
      memset(r, 0, sizeof *r);
      if (!last) /* only a write cut short by a kill may be damaged */
        st = nnkit__err(NNKIT_E_FORMAT,
                        "search results file %s: line %zu is not a trial record of "
                        "this search's space and is not the last line; repair or "
                        "remove the file", path, line_no);
    }
    p = nl ? nl + 1 : buf + len;
  }
  if (st == NNKIT_OK && good_end < len) {
    /* drop the torn tail: rewrite the good lines atomically */
    nnkit__tfile t;
    st = nnkit__tfile_open(&t, path);
    if (st == NNKIT_OK) {
      int ok = fwrite(buf, 1, good_end, t.f) == good_end;
      st = nnkit__tfile_commit(&t, ok);
    }
  }
  nnkit__free(buf);
  if (st != NNKIT_OK) {
    nnkit__recs_free(recs, n);
    return st;
  }
  *recs_out = recs;
  *n_out = n;
  return NNKIT_OK;
}

nnkit_status nnkit__results_open(nnkit__results_file *rf, const char *path)
{
  rf->f = fopen(path, "a");
  if (!rf->f)
    return nnkit__err(NNKIT_E_IO, "search results file %s: cannot open it for "
                                  "appending (%s)", path, strerror(errno));
  return NNKIT_OK;
}

nnkit_status nnkit__results_append(nnkit__results_file *rf, const nnkit_search *s,
                                   size_t i)
{
  if (!rf->f)
    return NNKIT_OK;
  char *text = record_json(s, i);
  if (!text)
    return nnkit__err(NNKIT_E_NOMEM, "search results file: out of memory");
  size_t n = strlen(text);
  int ok = fwrite(text, 1, n, rf->f) == n && fputc('\n', rf->f) != EOF &&
           fflush(rf->f) == 0 && fdatasync(fileno(rf->f)) == 0;
  cJSON_free(text);
  if (!ok)
    return nnkit__err(NNKIT_E_IO, "search results file %s: cannot write trial %zu "
                                  "(%s)", s->results_path, i, strerror(errno));
  return NNKIT_OK;
}

void nnkit__results_close(nnkit__results_file *rf)
{
  if (rf->f)
    fclose(rf->f);
  rf->f = NULL;
}

/* ---- tables ---------------------------------------------------------------- */

static nnkit_status save_table(const nnkit_search *s, const char *path, int json,
                               const char *fn)
{
  if (!s || !path)
    return nnkit__err(NNKIT_E_INVALID, "%s: NULL argument", fn);
  nnkit__tfile t;
  nnkit_status st = nnkit__tfile_open(&t, path);
  if (st != NNKIT_OK)
    return st;
  int ok = 1;
  if (!json) {
    fprintf(t.f, "trial,phase,config,epochs,status,%s,score_std,seconds,seed",
            nnkit__search_score_name(s));
    for (size_t j = 0; j < s->space->num_dims; j++)
      fprintf(t.f, ",%s", s->space->dims[j].name);
    fputs(",reason\n", t.f);
  }
  for (size_t i = 0; ok && i < s->num_trials; i++) {
    const nnkit__trial_rec *r = &s->trials[i];
    if (!r->done)
      continue;
    if (json) {
      char *text = record_json(s, i);
      ok = text && fputs(text, t.f) >= 0 && fputc('\n', t.f) != EOF;
      cJSON_free(text);
      continue;
    }
    fprintf(t.f, "%zu,%zu,%zu,%zu,%s,%.17g,%.17g,%.17g,%llu", i, r->phase, r->config,
            r->epochs, status_name(r->status), r->score, r->score_std, r->seconds,
            (unsigned long long)r->seed);
    for (size_t j = 0; j < s->space->num_dims; j++)
      fprintf(t.f, ",%.17g", r->values[j]);
    fputs(",\"", t.f);
    for (const char *c = r->reason; *c; c++) { /* CSV quoting: "" for " */
      if (*c == '"')
        fputc('"', t.f);
      fputc(*c == '\n' ? ' ' : *c, t.f);
    }
    fputs("\"\n", t.f);
  }
  st = nnkit__tfile_commit(&t, ok);
  if (st == NNKIT_OK && !ok)
    st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  return st;
}

NNKIT_API nnkit_status nnkit_search_save_csv(const nnkit_search *s, const char *path)
{
  return save_table(s, path, 0, "nnkit_search_save_csv");
}

NNKIT_API nnkit_status nnkit_search_save_jsonl(const nnkit_search *s, const char *path)
{
  return save_table(s, path, 1, "nnkit_search_save_jsonl");
}
