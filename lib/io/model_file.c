/* Model files: a net with its normalizer and class names as a safetensors
 * file with a CRC-32 of the whole file (layout in doc/file-format.md).
 * Per-kind knowledge (add-call arguments, tensor names and shapes) comes
 * from the layer kinds (lib/model/registry.c); the container (writing,
 * reading, validating, the checksum's place) is safetensors.c's. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "io_internal.h"

/* Version 2 added the checksum (required) and class names; version 1
 * files (nnkit 0.1.0) have neither and still load. */
#define FORMAT_VERSION "2"
#define FORMAT_VERSION_NO_CRC "1"

static const char *const norm_kinds[] = {NULL, "mean_image", "channel_mean",
                                         "standardize", "pca", "pca_whiten",
                                         "zca_whiten"};
static const char *const norm_settings[] = {NULL, "with_std", "components",
                                            "variance", "epsilon", "fit_samples",
                                            "seed"};
#define NUM_NORM_KINDS 6
#define NUM_NORM_SETTINGS 6

static const char *const norm_arrays[] = {NULL, "mean", "scale", "projection"};

/* ---- saving --------------------------------------------------------------- */

static const char *loss_name(nnkit_loss l)
{
  return l == NNKIT_LOSS_MSE ? "mse" : "softmax_cross_entropy";
}

/* Model files hold a layer's parameters and running statistics; random
 * stream positions (NNKIT__ROLE_COUNTER) belong in checkpoints. */
#define MODEL_ROLES (NNKIT__ROLE_PARAMS | NNKIT__ROLE_STATE)
#define MODEL_TENSOR(t) (((t)->role & MODEL_ROLES) != 0)

cJSON *nnkit__st_architecture(nnkit__st_writer *s, const char *path, nnkit_net *net,
                              int roles, nnkit_status *st)
{
  cJSON *arch = cJSON_CreateArray();
  if (!arch)
    goto nomem;
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    const nnkit__layer_kind *k = l->ops;
    if (!k->add || nnkit__layer_kind_named(k->name) != k) {
      *st = nnkit__err(NNKIT_E_INVALID, "%s: layer %zu is a %s layer, which model "
                       "files cannot store yet", path, i, l->ops->name);
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
    for (size_t j = 0; s && j < nt; j++) {
      if (!(t[j].role & roles))
        continue;
      static const size_t one = 1;
      *st = t[j].role == NNKIT__ROLE_COUNTER
                ? nnkit__st_add(s, prefix, t[j].name, "U64", t[j].count, 1, &one)
                : nnkit__st_add(s, prefix, t[j].name, "F32", t[j].data, t[j].ndim,
                                t[j].dims);
      if (*st != NNKIT_OK) {
        cJSON_Delete(arch);
        return NULL;
      }
    }
  }
  return arch;
nomem:
  cJSON_Delete(arch);
  *st = s ? nnkit__st_nomem(s)
         : nnkit__err(NNKIT_E_NOMEM, "%s: out of memory while writing the file", path);
  return NULL;
}

/* The "normalizer" object; its arrays (copied into *arrays, owned by the
 * caller) go into s. */
static cJSON *normalizer_json(nnkit__st_writer *s, const nnkit_normalizer *nz, float **arrays,
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
      !nnkit__st_add_item(o, "input_shape", nnkit__st_shape_json(dims, ndim)) ||
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
      *st = nnkit__st_add(s, "normalizer.", norm_arrays[a], "F32", buf, nd, shape);
    }
    if (*st != NNKIT_OK) {
      cJSON_Delete(o);
      return NULL;
    }
  }
  return o;
nomem:
  cJSON_Delete(o);
  *st = nnkit__st_nomem(s);
  return NULL;
}

cJSON *nnkit__model_meta(cJSON *meta, nnkit__st_writer *s, nnkit_net *net,
                         const nnkit_normalizer *nz, float **arrays, nnkit_status *st)
{
  char seed[32];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)net->seed);
  if (!nnkit__st_add_json_string(meta, "input_shape",
                                 nnkit__st_shape_json(net->in.d, net->in.ndim)) ||
      !cJSON_AddStringToObject(meta, "seed", seed) ||
      !cJSON_AddStringToObject(meta, "loss", loss_name(net->loss)))
    goto nomem;
  cJSON *arch = nnkit__st_architecture(s, s->path, net, MODEL_ROLES, st);
  if (!arch)
    return NULL;
  if (!nnkit__st_add_json_string(meta, "architecture", arch))
    goto nomem;
  if (nz) {
    cJSON *n = normalizer_json(s, nz, arrays, st);
    if (!n)
      return NULL;
    if (!nnkit__st_add_json_string(meta, "normalizer", n))
      goto nomem;
  }
  if (net->class_names) {
    cJSON *names = cJSON_CreateStringArray((const char *const *)net->class_names,
                                           (int)net->num_names);
    if (!nnkit__st_add_json_string(meta, "class_names", names))
      goto nomem;
  }
  return meta;
nomem:
  *st = nnkit__st_nomem(s);
  return NULL;
}

/* The header with its metadata; the tensors go into s. */
static cJSON *header_json(nnkit__st_writer *s, nnkit_net *net,
                          const nnkit_normalizer *nz, float **arrays, nnkit_status *st)
{
  cJSON *h = cJSON_CreateObject();
  cJSON *meta = h ? cJSON_AddObjectToObject(h, "__metadata__") : NULL;
  if (!meta || !cJSON_AddStringToObject(meta, "format", "nnkit") ||
      !cJSON_AddStringToObject(meta, "format_version", FORMAT_VERSION) ||
      !cJSON_AddStringToObject(meta, "nnkit_version", nnkit_version())) {
    *st = nnkit__st_nomem(s);
    cJSON_Delete(h);
    return NULL;
  }
  if (!nnkit__model_meta(meta, s, net, nz, arrays, st)) {
    cJSON_Delete(h);
    return NULL;
  }
  return h;
}

nnkit_status nnkit__model_check_save(const nnkit_net *cnet, const nnkit_normalizer *nz,
                                     const char *path)
{
  if (cnet->num_layers == 0)
    return nnkit__err(NNKIT_E_INVALID, "%s: the net has no layers; add some before "
                      "saving it", path);
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
  return nnkit__net_build((nnkit_net *)cnet);
}

NNKIT_API nnkit_status nnkit_net_save(const nnkit_net *cnet, const nnkit_normalizer *nz,
                                      const char *path)
{
  if (!cnet || !path)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_save: net and path must be non-NULL");
  if (!nz)
    nz = cnet->nz; /* the net's own, or none */
  nnkit_status st = nnkit__model_check_save(cnet, nz, path);
  if (st != NNKIT_OK)
    return st;
  nnkit_net *net = (nnkit_net *)cnet;
  nnkit__st_writer s = {path, "model file", NULL, 0, 0, NULL};
  float *arrays[4] = {NULL, NULL, NULL, NULL};
  cJSON *h = header_json(&s, net, nz, arrays, &st);
  if (h)
    st = nnkit__st_write(&s, h, 1);
  cJSON_Delete(h);
  nnkit__st_writer_free(&s);
  for (int a = 0; a < 4; a++)
    nnkit__free(arrays[a]);
  return st;
}

/* ---- loading --------------------------------------------------------------- */

typedef nnkit__st_reader loader;

#define BAD(...) nnkit__err(NNKIT_E_FORMAT, __VA_ARGS__)
#define meta_string nnkit__st_meta_string


/* No layer may need more parameter bytes than the whole file has. */
static nnkit_status check_layer_size(const loader *l, const nnkit__layer *ly, size_t i)
{
  int over = 0;
  size_t bytes = nnkit__mul_size(ly->num_params, sizeof(float), &over);
  if (over || bytes > l->len)
    return BAD("%s: the architecture's %s layer %zu declares %zu parameters, more "
               "than the whole %zu-byte file can hold; the file is damaged or not "
               "an nnkit model file", l->path, ly->ops->name, i, ly->num_params, l->len);
  return NNKIT_OK;
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
  nnkit_status st = nnkit__st_relabel(k->add(net, v), l->path, what);
  if (st != NNKIT_OK)
    return st;
  /* At once, before the next layer is added: a layer that declares more
   * parameters than the file holds stops the load here, so a later layer
   * sized by it (a batch norm over its outputs allocates its per-channel
   * statistics when added) is never built. */
  st = check_layer_size(l, &net->layers[net->num_layers - 1], i);
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
  return nnkit__st_relabel(st, l->path, what);
}

/* Before anything as large as the parameters is allocated (the layers
 * were only added: shapes inferred, no parameters), checks the declared
 * architecture against the file: every tensor a layer needs must be there
 * with its dtype and shape (that no layer needs more parameter bytes than
 * the whole file has was checked as each layer was added). So a small file cannot make the loader
 * allocate or initialize more than about twice its size in parameters. */
static nnkit_status check_declared_sizes(loader *l, nnkit_net *net)
{
  /* Each layer's parameter count was checked against the file as it was
   * added (add_layer, check_layer_size). */
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *ly = &net->layers[i];
    const nnkit__layer_kind *k = ly->ops;
    /* tensors() only computes the parameters' addresses: point them into
     * the file buffer (at least as large, checked above) instead of NULL. */
    float *saved = ly->params;
    if (ly->num_params && !saved)
      ly->params = (float *)(void *)l->buf;
    nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
    size_t nt = k->tensors ? k->tensors(ly, t) : 0;
    ly->params = saved;
    char what[64];
    snprintf(what, sizeof what, "the architecture's %s layer %zu", k->name, i);
    for (size_t j = 0; j < nt; j++) {
      if (!MODEL_TENSOR(&t[j]))
        continue;
      char name[96];
      snprintf(name, sizeof name, "layers.%zu.%s", i, t[j].name);
      nnkit_status st = nnkit__st_check_f32(l, name, t[j].dims, t[j].ndim, what);
      if (st != NNKIT_OK)
        return st;
    }
  }
  return NNKIT_OK;
}

static nnkit_status build_net(loader *l, const cJSON *meta, nnkit_net **out)
{
  nnkit_status st = NNKIT_OK;
  size_t dims[NNKIT_MAX_SAMPLE_DIMS], ndim = 0;
  cJSON *shape = nnkit__st_meta_json(l, "input_shape", &st);
  if (!shape)
    return st;
  int ok = nnkit__st_shape_of(shape, NNKIT_MAX_SAMPLE_DIMS, dims, &ndim);
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
  cJSON *arch = nnkit__st_meta_json(l, "architecture", &st);
  if (!arch)
    return st;
  nnkit_net *net = NULL;
  if (!cJSON_IsArray(arch) || cJSON_GetArraySize(arch) == 0) {
    st = BAD("%s: the architecture must be a non-empty array of layers", l->path);
    goto done;
  }
  st = nnkit__st_relabel(nnkit_net_create(&net, dims, ndim, (uint64_t)seed), l->path,
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
    st = check_declared_sizes(l, net);
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
      st = nnkit__st_take_f32(l, name, t[j].data, t[j].dims, t[j].ndim, what);
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
  cJSON *o = nnkit__st_meta_json(l, "normalizer", &st);
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
  if (!nnkit__st_shape_of(cJSON_GetObjectItemCaseSensitive(o, "input_shape"),
                NNKIT_MAX_SAMPLE_DIMS, dims, &ndim) ||
      !nnkit__st_whole(cJSON_GetObjectItemCaseSensitive(o, "out_size"), (double)(1u << 31),
             &out_size) ||
      !cJSON_IsObject(settings)) {
    st = BAD("%s: the normalizer needs \"input_shape\", \"out_size\" and "
             "\"settings\"", l->path);
    goto done;
  }
  for (int a = 1; a <= 3; a++) {
    char name[32];
    snprintf(name, sizeof name, "normalizer.%s", norm_arrays[a]);
    nnkit__st_in *t = nnkit__st_find(l, name);
    if (!t)
      continue;
    len[a] = (t->end - t->begin) / sizeof(float);
    arr[a] = nnkit__malloc(len[a] ? len[a] * sizeof(float) : 1);
    if (!arr[a]) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %s", l->path, name);
      goto done;
    }
    /* Shapes are checked against the kind by nnkit_normalizer_from_arrays. */
    if ((st = nnkit__st_take_f32(l, name, arr[a], t->dims, t->ndim, "the normalizer")) !=
        NNKIT_OK)
      goto done;
  }
  st = nnkit__st_relabel(nnkit_normalizer_from_arrays(&nz, (nnkit_norm_kind)k, dims, ndim,
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
      st = nnkit__st_relabel(nnkit_normalizer_set(nz, (nnkit_norm_param)key, s->valuedouble),
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

/* The class names of the metadata, if any, given to net. */
static nnkit_status read_class_names(const loader *l, const cJSON *meta,
                                     nnkit_net *net)
{
  if (!cJSON_GetObjectItemCaseSensitive(meta, "class_names"))
    return NNKIT_OK;
  nnkit_status st = NNKIT_OK;
  cJSON *a = nnkit__st_meta_json(l, "class_names", &st);
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
    st = nnkit__st_relabel(nnkit_net_set_class_names(net, names, n), l->path, "class names");
  nnkit__free(names);
  cJSON_Delete(a);
  return st;
}

nnkit_status nnkit__model_read(loader *l, nnkit_net **net_out, nnkit_normalizer **nz_out)
{
  nnkit_net *net = NULL;
  nnkit_normalizer *nz = NULL;
  nnkit_status st = build_net(l, l->meta, &net);
  if (st == NNKIT_OK)
    st = build_normalizer(l, l->meta, &nz);
  if (st == NNKIT_OK && nz &&
      nnkit_normalizer_out_size(nz) != nnkit_net_input_size(net))
    st = BAD("%s: the normalizer gives %zu values per sample but the net takes %zu",
             l->path, nnkit_normalizer_out_size(nz), nnkit_net_input_size(net));
  /* The net owns a copy; nz itself goes to the caller (or is freed). */
  if (st == NNKIT_OK && nz)
    st = nnkit_net_set_normalizer(net, nz);
  if (st == NNKIT_OK)
    st = read_class_names(l, l->meta, net);
  if (st != NNKIT_OK) {
    nnkit_net_free(net);
    nnkit_normalizer_free(nz);
    return st;
  }
  *net_out = net;
  *nz_out = nz;
  return NNKIT_OK;
}

static nnkit_status load(loader *l, nnkit_net **net_out, nnkit_normalizer **nz_out)
{
  nnkit_status st = nnkit__st_parse_header(l);
  if (st != NNKIT_OK)
    return st;
  const cJSON *meta = l->meta;
  const char *fmt = meta_string(meta, "format"), *ver = meta_string(meta, "format_version");
  if (!fmt || strcmp(fmt, "nnkit") != 0)
    return BAD("%s: the metadata's \"format\" is not \"nnkit\"; not an nnkit model "
               "file", l->path);
  const char *kind = meta_string(meta, "kind");
  if (kind && strcmp(kind, "checkpoint") == 0)
    return BAD("%s is a training checkpoint, not a model file; resume it with "
               "nnkit_trainer_resume (or save the net with nnkit_net_save)", l->path);
  if (kind && strcmp(kind, "ensemble") == 0)
    return BAD("%s is an ensemble of nets, not a model file; load it with "
               "nnkit_ensemble_load", l->path);
  int v1 = ver && strcmp(ver, FORMAT_VERSION_NO_CRC) == 0;
  if (!ver || (!v1 && strcmp(ver, FORMAT_VERSION) != 0))
    return BAD("%s: format version %s; this nnkit (%s) reads versions %s and %s, "
               "upgrade nnkit to load it", l->path, ver ? ver : "(missing)",
               nnkit_version(), FORMAT_VERSION_NO_CRC, FORMAT_VERSION);
  st = nnkit__st_check_crc(l, !v1);
  if (st != NNKIT_OK)
    return st;
  static const char *const dtypes[] = {"F32", NULL};
  st = nnkit__st_read_tensors(l, dtypes);
  nnkit_net *net = NULL;
  nnkit_normalizer *nz = NULL;
  if (st == NNKIT_OK)
    st = nnkit__model_read(l, &net, &nz);
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
  loader l = {0};
  l.path = path;
  l.what = "model file";
  nnkit_status st = nnkit__st_read_file(&l);
  if (st == NNKIT_OK)
    st = load(&l, net_out, nz_out);
  nnkit__st_reader_free(&l);
  return st;
}
