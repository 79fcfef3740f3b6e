/* Classification metrics: accuracy, top-k accuracy, confusion matrix,
 * per-class precision/recall/F1 and a printable table. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "train_internal.h"

#define MAX_CLASSES 65536u
#define MAX_TABLE_CLASSES 1000u

NNKIT_API nnkit_status nnkit_metrics_accuracy(double *out,
                                              const int32_t *labels,
                                              const int32_t *predicted,
                                              size_t count)
{
  if (!out || !labels || !predicted || count == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_metrics_accuracy: buffers must be non-NULL and count > 0");
  size_t hit = 0;
  for (size_t i = 0; i < count; i++)
    hit += labels[i] == predicted[i];
  *out = (double)hit / (double)count;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_metrics_top_k(double *out, const float *scores,
                                           size_t count, size_t num_classes,
                                           const int32_t *labels, size_t k)
{
  if (!out || !scores || !labels || count == 0 || num_classes == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_metrics_top_k: buffers must be non-NULL, count and "
                      "num_classes > 0");
  if (k < 1 || k > num_classes)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_metrics_top_k: k %zu is outside [1, %zu]", k, num_classes);
  size_t hit = 0;
  for (size_t i = 0; i < count; i++) {
    if (labels[i] < 0 || (size_t)labels[i] >= num_classes)
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_metrics_top_k: sample %zu has label %d outside [0, %zu)",
                        i, (int)labels[i], num_classes);
    const float *s = scores + i * num_classes;
    float t = s[labels[i]];
    if (isnan(t))
      continue;
    size_t higher = 0;
    for (size_t j = 0; j < num_classes && higher < k; j++)
      higher += s[j] > t;
    hit += higher < k;
  }
  *out = (double)hit / (double)count;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_metrics_confusion(size_t *matrix_out, size_t len,
                                               const int32_t *labels,
                                               const int32_t *predicted,
                                               size_t count,
                                               uint32_t num_classes)
{
  if (!matrix_out || !labels || !predicted || count == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_metrics_confusion: buffers must be non-NULL and count > 0");
  if (num_classes == 0 || num_classes > MAX_CLASSES)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_metrics_confusion: %u classes is outside [1, %u]",
                      num_classes, MAX_CLASSES);
  size_t C = num_classes;
  if (len / C < C)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_metrics_confusion: matrix_out holds %zu values, %zu x %zu "
                      "are needed", len, C, C);
  for (size_t i = 0; i < count; i++) {
    if (labels[i] < 0 || (size_t)labels[i] >= C || predicted[i] < 0 ||
        (size_t)predicted[i] >= C)
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_metrics_confusion: sample %zu has label %d and "
                        "prediction %d; both must lie in [0, %zu)",
                        i, (int)labels[i], (int)predicted[i], C);
  }
  memset(matrix_out, 0, C * C * sizeof *matrix_out);
  for (size_t i = 0; i < count; i++)
    matrix_out[(size_t)labels[i] * C + (size_t)predicted[i]]++;
  return NNKIT_OK;
}

static void class_scores(const size_t *m, size_t C, size_t c, double *p,
                         double *r, double *f, size_t *support)
{
  size_t tp = m[c * C + c], row = 0, col = 0;
  for (size_t j = 0; j < C; j++) {
    row += m[c * C + j];
    col += m[j * C + c];
  }
  *p = col ? (double)tp / (double)col : 0.0;
  *r = row ? (double)tp / (double)row : 0.0;
  *f = *p + *r > 0 ? 2 * *p * *r / (*p + *r) : 0.0;
  if (support)
    *support = row;
}

NNKIT_API nnkit_status nnkit_metrics_per_class(double *precision_out,
                                               double *recall_out,
                                               double *f1_out, size_t len,
                                               const size_t *matrix,
                                               uint32_t num_classes)
{
  if (!matrix || num_classes == 0 || num_classes > MAX_CLASSES)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_metrics_per_class: need a matrix and 1 to %u classes",
                      MAX_CLASSES);
  if ((precision_out || recall_out || f1_out) && len < num_classes)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_metrics_per_class: outputs hold %zu values, %u are needed",
                      len, num_classes);
  for (size_t c = 0; c < num_classes; c++) {
    double p, r, f;
    class_scores(matrix, num_classes, c, &p, &r, &f, NULL);
    if (precision_out)
      precision_out[c] = p;
    if (recall_out)
      recall_out[c] = r;
    if (f1_out)
      f1_out[c] = f;
  }
  return NNKIT_OK;
}

/* Appends to buf (capacity len) at *pos, counting what does not fit. */
static void app(char *buf, size_t len, size_t *pos, const char *fmt, ...)
    NNKIT__PRINTF(4, 5);
static void app(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *dst = buf && *pos < len ? buf + *pos : NULL;
  int n = vsnprintf(dst, dst ? len - *pos : 0, fmt, ap);
  va_end(ap);
  if (n > 0)
    *pos += (size_t)n;
}

NNKIT_API nnkit_status nnkit_metrics_table(char *buf, size_t len,
                                           size_t *needed_out,
                                           const size_t *matrix,
                                           uint32_t num_classes)
{
  if (needed_out)
    *needed_out = 0;
  if (!matrix || num_classes == 0 || num_classes > MAX_TABLE_CLASSES)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_metrics_table: need a matrix and 1 to %u classes",
                      MAX_TABLE_CLASSES);
  if (!buf && len)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_metrics_table: buf is NULL but len is %zu",
                      len);
  size_t C = num_classes, maxv = 0, total = 0, diag = 0;
  for (size_t i = 0; i < C * C; i++) {
    if (matrix[i] > maxv)
      maxv = matrix[i];
    total += matrix[i];
  }
  for (size_t c = 0; c < C; c++)
    diag += matrix[c * C + c];
  int w = 1;
  for (size_t v = maxv; v >= 10; v /= 10)
    w++;
  if (w < 3)
    w = 3;
  size_t pos = 0;
  app(buf, len, &pos, "confusion matrix (rows: true class, columns: predicted)\n");
  app(buf, len, &pos, "%-6s", "true");
  for (size_t c = 0; c < C; c++)
    app(buf, len, &pos, " %*zu", w, c);
  app(buf, len, &pos, " | %7s %9s %7s %7s\n", "support", "precision", "recall", "f1");
  double f1sum = 0;
  for (size_t t = 0; t < C; t++) {
    double p, r, f;
    size_t support;
    class_scores(matrix, C, t, &p, &r, &f, &support);
    f1sum += f;
    app(buf, len, &pos, "%-6zu", t);
    for (size_t c = 0; c < C; c++)
      app(buf, len, &pos, " %*zu", w, matrix[t * C + c]);
    app(buf, len, &pos, " | %7zu %9.4f %7.4f %7.4f\n", support, p, r, f);
  }
  app(buf, len, &pos, "accuracy %.4f over %zu samples; macro F1 %.4f\n",
      total ? (double)diag / (double)total : 0.0, total, f1sum / (double)C);
  if (needed_out)
    *needed_out = pos + 1;
  if (pos + 1 > len) {
    if (buf && len)
      buf[len - 1] = '\0';
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_metrics_table: buf holds %zu bytes, the table needs %zu",
                      len, pos + 1);
  }
  return NNKIT_OK;
}

static nnkit_status check_labelled(nnkit_net *net, const nnkit_dataset *ds,
                                   const char *fn)
{
  if (!net || !ds)
    return nnkit__err(NNKIT_E_INVALID, "%s: net and ds must be non-NULL", fn);
  if (!ds->labels)
    return nnkit__err(NNKIT_E_INVALID, "%s: the dataset has no labels", fn);
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE, "%s: the net has no layers; add some first", fn);
  /* raw samples: the size the attached normalizer, if any, takes */
  if (ds->sample_size != nnkit__net_raw_input_size(net))
    return nnkit__err(NNKIT_E_SHAPE, "%s: dataset samples have %zu values, the net "
                      "takes %zu", fn, ds->sample_size, nnkit__net_raw_input_size(net));
  if (ds->num_classes > nnkit_net_output_size(net))
    return nnkit__err(NNKIT_E_SHAPE, "%s: dataset has %u classes, the net only %zu "
                      "outputs", fn, ds->num_classes, nnkit_net_output_size(net));
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_confusion(size_t *matrix_out, size_t len,
                                           nnkit_net *net,
                                           const nnkit_dataset *ds)
{
  nnkit_status st = check_labelled(net, ds, "nnkit_net_confusion");
  if (st != NNKIT_OK)
    return st;
  size_t C = ds->num_classes;
  if (!matrix_out || len / C < C)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_confusion: matrix_out holds %zu values, %zu x %zu "
                      "are needed", matrix_out ? len : 0, C, C);
  int32_t *pred = nnkit__malloc(ds->count * sizeof *pred);
  /* A compact (byte) set is decoded one chunk at a time. */
  enum { CHUNK = 1024 };
  size_t in = ds->sample_size, m0 = ds->count < CHUNK ? ds->count : CHUNK;
  float *scratch = ds->x8 ? nnkit__malloc(m0 * in * sizeof *scratch) : NULL;
  if (!pred || (ds->x8 && !scratch)) {
    nnkit__free(pred);
    nnkit__free(scratch);
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_confusion: out of memory");
  }
  for (size_t s = 0; s < ds->count && st == NNKIT_OK; s += CHUNK) {
    size_t m = ds->count - s < CHUNK ? ds->count - s : CHUNK;
    st = nnkit_net_predict(pred + s, net, nnkit__dataset_block(ds, s, m, scratch),
                           m);
  }
  nnkit__free(scratch);
  if (st == NNKIT_OK) {
    /* Predictions beyond the dataset's classes (a wider output layer)
     * cannot be placed in a C x C matrix: name them. */
    for (size_t i = 0; i < ds->count; i++)
      if ((size_t)pred[i] >= C) {
        st = nnkit__err(NNKIT_E_SHAPE,
                        "nnkit_net_confusion: sample %zu is predicted as class %d but "
                        "the dataset has %zu classes", i, (int)pred[i], C);
        break;
      }
  }
  if (st == NNKIT_OK)
    st = nnkit_metrics_confusion(matrix_out, len, ds->labels, pred, ds->count,
                                 (uint32_t)C);
  nnkit__free(pred);
  return st;
}

NNKIT_API nnkit_status nnkit_net_top_k_accuracy(double *out, nnkit_net *net,
                                                const nnkit_dataset *ds, size_t k)
{
  nnkit_status st = check_labelled(net, ds, "nnkit_net_top_k_accuracy");
  if (st != NNKIT_OK)
    return st;
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_top_k_accuracy: out is NULL");
  size_t C = nnkit_net_output_size(net);
  if (k < 1 || k > C)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_top_k_accuracy: k %zu is outside [1, %zu]", k, C);
  /* In chunks, so memory stays bounded on big sets. */
  enum { CHUNK = 1024 };
  size_t n = ds->count < CHUNK ? ds->count : CHUNK, hits = 0;
  float *probs = nnkit__malloc(n * C * sizeof *probs);
  /* A compact (byte) set is decoded one chunk at a time. */
  float *scratch = ds->x8 ? nnkit__malloc(n * ds->sample_size * sizeof *scratch)
                          : NULL;
  if (!probs || (ds->x8 && !scratch)) {
    nnkit__free(probs);
    nnkit__free(scratch);
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_top_k_accuracy: out of memory");
  }
  for (size_t s = 0; s < ds->count && st == NNKIT_OK; s += CHUNK) {
    size_t m = ds->count - s < CHUNK ? ds->count - s : CHUNK;
    st = nnkit_net_predict_proba(probs, n * C, net,
                                 nnkit__dataset_block(ds, s, m, scratch), m);
    double acc = 0;
    if (st == NNKIT_OK)
      st = nnkit_metrics_top_k(&acc, probs, m, C, ds->labels + s, k);
    hits += (size_t)llround(acc * (double)m);
  }
  nnkit__free(probs);
  nnkit__free(scratch);
  if (st == NNKIT_OK)
    *out = (double)hits / (double)ds->count;
  return st;
}
