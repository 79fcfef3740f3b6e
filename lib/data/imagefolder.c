/* Image folders (torchvision's ImageFolder layout) as datasets.
 *
 * root/<class>/<file>: classes are the sub-folders of root in byte order
 * of their names, images the .png/.jpg/.jpeg files of each in byte order.
 * Everything is listed first (so an empty class or an undecodable first
 * image is reported before any decoding), then each image is decoded by
 * stb_image straight to the requested channel count, converted from HWC
 * bytes to CHW floats and, when needed, resized bilinearly. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jerror.h>
#include <jpeglib.h>
#include <limits.h>
#include <setjmp.h>
#include <stb_image.h>
#include <unistd.h>

#include "internal.h"

#define MAX_SIDE 65536

/* The fuzz build (-Dfuzz=true) decodes at most 2^18 pixels an image, so
 * that each fuzz input takes milliseconds; the checks are the same. */
#ifdef NNKIT_FUZZ_MAX_PIXELS
#define MAX_PIXELS ((size_t)NNKIT_FUZZ_MAX_PIXELS)
#else
#define MAX_PIXELS ((size_t)NNKIT_MAX_IMAGE_PIXELS)
#endif

/* Growable list of strings (NUL-terminated, in one buffer). */
typedef struct name_list {
  char *text;
  size_t len, cap;
  size_t *off;
  size_t n, off_cap;
} name_list;

static void list_free(name_list *l)
{
  nnkit__free(l->text);
  nnkit__free(l->off);
  memset(l, 0, sizeof *l);
}

static int list_add(name_list *l, const char *s)
{
  size_t n = strlen(s) + 1;
  if (l->len + n > l->cap) {
    size_t cap = l->cap ? l->cap : 1024;
    while (cap < l->len + n)
      cap *= 2;
    char *t = nnkit__realloc(l->text, cap);
    if (!t)
      return 0;
    l->text = t;
    l->cap = cap;
  }
  if (l->n == l->off_cap) {
    size_t cap = l->off_cap ? 2 * l->off_cap : 64;
    size_t *o = nnkit__realloc(l->off, cap * sizeof *o);
    if (!o)
      return 0;
    l->off = o;
    l->off_cap = cap;
  }
  memcpy(l->text + l->len, s, n);
  l->off[l->n++] = l->len;
  l->len += n;
  return 1;
}

static const char *list_at(const name_list *l, size_t i)
{
  return l->text + l->off[i];
}

/* Sorts a list's entries in byte order (qsort on pointers; the sorted
 * pointers are written back as offsets). */
static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int list_sort(name_list *l)
{
  if (l->n < 2)
    return 1;
  const char **v = nnkit__malloc(l->n * sizeof *v);
  if (!v)
    return 0;
  for (size_t i = 0; i < l->n; i++)
    v[i] = list_at(l, i);
  qsort(v, l->n, sizeof *v, cmp_str);
  for (size_t i = 0; i < l->n; i++)
    l->off[i] = (size_t)(v[i] - l->text);
  nnkit__free(v);
  return 1;
}

static int has_image_ext(const char *name)
{
  const char *dot = strrchr(name, '.');
  return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
                 strcasecmp(dot, ".jpeg") == 0);
}

/* Joins "a/b" into a fresh buffer; NULL on OOM. */
static char *join(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  char *p = nnkit__malloc(la + lb + 2);
  if (!p)
    return NULL;
  memcpy(p, a, la);
  p[la] = '/';
  memcpy(p + la + 1, b, lb + 1);
  return p;
}

/* Lists the entries of dir that are directories (want_dirs) or image
 * files, skipping names starting with '.'. */
static nnkit_status list_dir(name_list *out, const char *dir, int want_dirs)
{
  DIR *d = opendir(dir);
  if (!d && errno == ENOMEM)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory listing the folder", dir);
  if (!d)
    return nnkit__err(NNKIT_E_IO, "%s: cannot list: %s; check the path%s",
                      dir, strerror(errno),
                      want_dirs ? " of the image root folder" : "");
  nnkit_status st = NNKIT_OK;
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (!e) {
      if (errno)
        st = nnkit__err(errno == ENOMEM ? NNKIT_E_NOMEM : NNKIT_E_IO,
                        "%s: cannot list: %s", dir, strerror(errno));
      break;
    }
    if (e->d_name[0] == '.')
      continue;
    if (!want_dirs && !has_image_ext(e->d_name))
      continue;
    char *full = join(dir, e->d_name);
    if (!full) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory listing files", dir);
      break;
    }
    /* A file that cannot even be stat'ed (e.g. a dangling link) is kept,
     * so that opening it reports the problem by path. */
    struct stat sb;
    int found = stat(full, &sb) == 0;
    int ok = want_dirs ? found && S_ISDIR(sb.st_mode)
                       : !found || !S_ISDIR(sb.st_mode);
    nnkit__free(full);
    if (ok && !list_add(out, e->d_name)) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory listing files", dir);
      break;
    }
  }
  closedir(d);
  if (st == NNKIT_OK && !list_sort(out))
    st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory sorting names", dir);
  return st;
}

/* One image file's bytes, read whole (nnkit__open_regular: a FIFO named
 * x.png is refused, not waited on). */
typedef struct image_bytes {
  unsigned char *b;
  size_t n;
} image_bytes;

static nnkit_status read_image_file(image_bytes *out, const char *path)
{
  /* at most INT_MAX bytes: stb_image takes an int length */
  return nnkit__read_file(&out->b, &out->n, path, "image", (uint64_t)INT_MAX);
}

/* JPEG through libjpeg-turbo (stb_image 2.27's JPEG decoder writes past
 * its Huffman tables on a table of more than 256 codes: #21 item 9; stb
 * decodes PNG only). libjpeg's default error handler calls exit() and its
 * warnings print to stderr: here an error or a warning (corrupt data that
 * libjpeg would paint gray) longjmps back with its sentence, and a
 * progressive file of more than JPEG_MAX_SCANS scans (seconds of work
 * from a few kilobytes) is refused. */
#define JPEG_MAX_SCANS 500

typedef struct jpeg_guard {
  struct jpeg_error_mgr mgr;
  struct jpeg_progress_mgr progress;
  jmp_buf jump;
  char why[JMSG_LENGTH_MAX + 64];
  int nomem;
} jpeg_guard;

static void jpeg_bail(j_common_ptr c)
{
  jpeg_guard *g = (jpeg_guard *)c->err;
  g->nomem = c->err->msg_code == JERR_OUT_OF_MEMORY;
  c->err->format_message(c, g->why);
  longjmp(g->jump, 1);
}

static void jpeg_message(j_common_ptr c, int level)
{
  if (level < 0) /* a warning: the data is corrupt */
    jpeg_bail(c);
}

static void jpeg_scan_limit(j_common_ptr c)
{
  jpeg_guard *g = (jpeg_guard *)c->err;
  if (((j_decompress_ptr)c)->input_scan_number > JPEG_MAX_SCANS) {
    snprintf(g->why, sizeof g->why, "more than %d progressive scans",
             JPEG_MAX_SCANS);
    g->nomem = 0;
    longjmp(g->jump, 1);
  }
}

/* The size a header declares: at least 1x1, at most MAX_SIDE a side and
 * NNKIT_MAX_IMAGE_PIXELS in all (a 19-byte header may claim 60000 x
 * 60000); NNKIT_E_FORMAT naming path otherwise. */
static nnkit_status check_size(const char *path, int ih, int iw)
{
  if (ih <= 0 || iw <= 0)
    return nnkit__err(NNKIT_E_FORMAT, "%s: the image is %dx%d (height x width): "
                      "an image without pixels; replace or remove it", path, ih,
                      iw);
  if (ih > MAX_SIDE || iw > MAX_SIDE)
    return nnkit__err(NNKIT_E_FORMAT, "%s: %dx%d is larger than %d pixels "
                      "a side; shrink the image", path, ih, iw, MAX_SIDE);
  size_t pixels = (size_t)ih * (size_t)iw; /* <= 2^32: no overflow */
  if (pixels > MAX_PIXELS)
    return nnkit__err(NNKIT_E_FORMAT, "%s: the image is %dx%d (height x "
                      "width), %zu pixels, more than the %zu nnkit decodes "
                      "(NNKIT_MAX_IMAGE_PIXELS); shrink the image", path, ih,
                      iw, pixels, MAX_PIXELS);
  return NNKIT_OK;
}

/* Reads a JPEG's header (*ih, *iw), checks the size (check_size) and,
 * when px is given, decodes it to RGB bytes (*px, nnkit__malloc'ed). */
static nnkit_status jpeg_decode(const image_bytes *in, const char *path, int *ih,
                                int *iw, unsigned char **px)
{
  struct jpeg_decompress_struct cinfo;
  jpeg_guard g;
  unsigned char *volatile buf = NULL;
  volatile nnkit_status st = NNKIT_OK;
  memset(&g, 0, sizeof g);
  cinfo.err = jpeg_std_error(&g.mgr);
  g.mgr.error_exit = jpeg_bail;
  g.mgr.emit_message = jpeg_message;
  g.progress.progress_monitor = jpeg_scan_limit;
  if (setjmp(g.jump)) {
    jpeg_destroy_decompress(&cinfo);
    nnkit__free(buf);
    if (g.nomem)
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory decoding the JPEG image",
                        path);
    return nnkit__err(NNKIT_E_FORMAT, "%s: cannot decode the JPEG image (%s); "
                      "the file is damaged; replace or remove it", path, g.why);
  }
  jpeg_create_decompress(&cinfo);
  cinfo.progress = &g.progress;
  jpeg_mem_src(&cinfo, in->b, (unsigned long)in->n);
  jpeg_read_header(&cinfo, TRUE);
  *ih = cinfo.image_height > INT_MAX ? INT_MAX : (int)cinfo.image_height;
  *iw = cinfo.image_width > INT_MAX ? INT_MAX : (int)cinfo.image_width;
  st = check_size(path, *ih, *iw);
  if (px && st == NNKIT_OK) {
    cinfo.out_color_space = JCS_RGB; /* gray is repeated; CMYK is an error */
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * 3;
    buf = nnkit__malloc(stride * cinfo.output_height); /* checked by check_size */
    if (!buf) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory decoding the JPEG image",
                      path);
    } else {
      while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = buf + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
      }
      jpeg_finish_decompress(&cinfo);
    }
  }
  jpeg_destroy_decompress(&cinfo);
  if (px)
    *px = buf;
  return st;
}

static int is_png_name(const char *path)
{
  const char *dot = strrchr(path, '.');
  return dot && strcasecmp(dot, ".png") == 0;
}

/* The format the extension names must be the file's: its first bytes are
 * that format's signature (stb_image would otherwise decode whatever it
 * recognizes: a TGA, PNM or HDR named .png). */
static nnkit_status check_signature(const image_bytes *in, const char *path)
{
  /* PNG's first 4 signature bytes (stb_image checks all 8: a damaged
   * signature then "cannot decode"). */
  static const unsigned char png_sig[4] = {0x89, 'P', 'N', 'G'};
  int png = is_png_name(path);
  int ok = png ? in->n >= 4 && memcmp(in->b, png_sig, 4) == 0
               : in->n >= 3 && in->b[0] == 0xFF && in->b[1] == 0xD8 && in->b[2] == 0xFF;
  if (ok)
    return NNKIT_OK;
  return nnkit__err(NNKIT_E_FORMAT, "%s: the file is not a %s image (it lacks "
                    "the %s signature); convert it to %s or give it the right name",
                    path, png ? "PNG" : "JPEG", png ? "PNG" : "JPEG",
                    png ? "PNG" : "JPEG");
}

/* Removes the empty IDAT chunks of a PNG in memory: stb_image 2.27,
 * given an empty IDAT before any data, computes NULL + 0 and calls
 * memcpy(NULL, ..., 0) (undefined behaviour UBSan reports; found by
 * fuzzing, kept in tests/corpus/image). An empty chunk adds no data, so
 * the image is the same without it; stb_image does not check CRCs. */
static void png_drop_empty_idat(image_bytes *in)
{
  size_t pos = 8;
  while (pos + 8 <= in->n) { /* a chunk's length and type are there */
    const unsigned char *c = in->b + pos;
    size_t len = (size_t)c[0] << 24 | (size_t)c[1] << 16 | (size_t)c[2] << 8 | c[3];
    if (memcmp(c + 4, "IEND", 4) == 0)
      return;
    if (len == 0 && memcmp(c + 4, "IDAT", 4) == 0) {
      /* Also when the file ends inside its CRC: stb reads the chunk's
       * header and trips on it all the same (found by fuzz_image). */
      size_t drop = in->n - pos < 12 ? in->n - pos : 12;
      memmove(in->b + pos, in->b + pos + drop, in->n - pos - drop);
      in->n -= drop;
      continue;
    }
    if (in->n - pos < 12 || len > in->n - pos - 12)
      return;
    pos += 12 + len;
  }
}

/* Reads path and checks it before anything is decoded (signature, header,
 * declared size); then, when px is given, decodes it to *ih x *iw pixels
 * of channels bytes each (HWC, nnkit__malloc'ed; RGB to gray by stb_image's
 * luma, 77 R + 150 G + 29 B >> 8, for JPEG too). */
static nnkit_status decode_image(const char *path, size_t channels, int *ih,
                                 int *iw, unsigned char **px)
{
  image_bytes in;
  nnkit_status st = read_image_file(&in, path);
  if (st != NNKIT_OK)
    return st;
  st = check_signature(&in, path);
  if (st == NNKIT_OK && !is_png_name(path)) {
    unsigned char *rgb = NULL;
    st = jpeg_decode(&in, path, ih, iw, px ? &rgb : NULL);
    if (st == NNKIT_OK && px && channels == 1) {
      size_t n = (size_t)*ih * (size_t)*iw;
      for (size_t i = 0; i < n; i++)
        rgb[i] = (unsigned char)((rgb[3 * i] * 77 + rgb[3 * i + 1] * 150 +
                                  rgb[3 * i + 2] * 29) >> 8);
    }
    if (px)
      *px = rgb;
  } else if (st == NNKIT_OK) {
    /* stb_image's failure reason is the last format it tried, not
     * necessarily its failed allocation: errno tells. */
    int ic = 0;
    png_drop_empty_idat(&in);
    errno = 0;
    if (!stbi_info_from_memory(in.b, (int)in.n, iw, ih, &ic))
      st = errno == ENOMEM
               ? nnkit__err(NNKIT_E_NOMEM, "%s: out of memory reading the PNG "
                            "header", path)
               : nnkit__err(NNKIT_E_FORMAT, "%s: cannot decode the image (%s); "
                            "the file is damaged or not really a PNG; replace or "
                            "remove it", path, stbi_failure_reason());
    if (st == NNKIT_OK)
      st = check_size(path, *ih, *iw);
    if (st == NNKIT_OK && px) {
      int dw = 0, dh = 0;
      errno = 0;
      *px = stbi_load_from_memory(in.b, (int)in.n, &dw, &dh, &ic, (int)channels);
      if (!*px) {
        const char *why = stbi_failure_reason();
        st = errno == ENOMEM || (why && strcmp(why, "outofmem") == 0)
                 ? nnkit__err(NNKIT_E_NOMEM, "%s: out of memory decoding the "
                              "PNG image", path)
                 : nnkit__err(NNKIT_E_FORMAT, "%s: cannot decode the image "
                              "(%s); the file is damaged or not really a PNG; "
                              "replace or remove it", path, why);
      } else if (dw != *iw || dh != *ih) {
        stbi_image_free(*px);
        *px = NULL;
        st = nnkit__err(NNKIT_E_FORMAT, "%s: the image header says %dx%d (height "
                        "x width) but it decodes to %dx%d; replace or remove it",
                        path, *ih, *iw, dh, dw);
      }
    }
  }
  nnkit__free(in.b);
  return st;
}

/* Bilinear resize of one channel, pixel centres aligned (OpenCV's
 * INTER_LINEAR / PyTorch's align_corners=False), edges clamped. */
static void resize_plane(const float *src, size_t sh, size_t sw, float *dst,
                         size_t dh, size_t dw)
{
  double ry = (double)sh / (double)dh, rx = (double)sw / (double)dw;
  for (size_t y = 0; y < dh; y++) {
    double fy = ((double)y + 0.5) * ry - 0.5;
    if (fy < 0)
      fy = 0;
    size_t y0 = (size_t)fy;
    if (y0 > sh - 1)
      y0 = sh - 1;
    size_t y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
    double wy = fy - (double)y0;
    if (wy > 1)
      wy = 1;
    for (size_t x = 0; x < dw; x++) {
      double fx = ((double)x + 0.5) * rx - 0.5;
      if (fx < 0)
        fx = 0;
      size_t x0 = (size_t)fx;
      if (x0 > sw - 1)
        x0 = sw - 1;
      size_t x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
      double wx = fx - (double)x0;
      if (wx > 1)
        wx = 1;
      double top = src[y0 * sw + x0] * (1 - wx) + src[y0 * sw + x1] * wx;
      double bot = src[y1 * sw + x0] * (1 - wx) + src[y1 * sw + x1] * wx;
      dst[y * dw + x] = (float)(top * (1 - wy) + bot * wy);
    }
  }
}

/* Decodes one image into dst (channels x h x w floats), resizing through
 * tmp (channels * ih * iw floats, grown as needed) when allowed, or, when
 * dst8 is given (resize 0: every image keeps its bytes), into dst8. */
static nnkit_status load_one(const char *path, size_t channels, size_t h,
                             size_t w, int resize, float *dst, uint8_t *dst8,
                             float **tmp, size_t *tmp_cap)
{
  int iw = 0, ih = 0;
  unsigned char *px = NULL;
  nnkit_status st = decode_image(path, channels, &ih, &iw, &px);
  if (st != NNKIT_OK)
    return st;
  size_t sh = (size_t)ih, sw = (size_t)iw;
  if (sh == h && sw == w && dst8) {
    for (size_t c = 0; c < channels; c++)
      for (size_t i = 0; i < h * w; i++)
        dst8[c * h * w + i] = px[i * channels + c];
  } else if (sh == h && sw == w) {
    for (size_t c = 0; c < channels; c++)
      for (size_t i = 0; i < h * w; i++)
        dst[c * h * w + i] = px[i * channels + c];
  } else if (!resize) {
    st = nnkit__err(NNKIT_E_FORMAT, "%s: the image is %zux%zu (height x "
                    "width) but the others are %zux%zu; pass resize = 1 to "
                    "resize images to a common size", path, sh, sw, h, w);
  } else {
    size_t need = channels * sh * sw;
    if (need > *tmp_cap) {
      float *t = nnkit__realloc(*tmp, need * sizeof(float));
      if (!t) {
        st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory resizing", path);
      } else {
        *tmp = t;
        *tmp_cap = need;
      }
    }
    if (st == NNKIT_OK) {
      for (size_t c = 0; c < channels; c++)
        for (size_t i = 0; i < sh * sw; i++)
          (*tmp)[c * sh * sw + i] = px[i * channels + c];
      for (size_t c = 0; c < channels; c++)
        resize_plane(*tmp + c * sh * sw, sh, sw, dst + c * h * w, h, w);
    }
  }
  nnkit__free(px); /* stb_image's free is free() (STBI_FREE) */
  return st;
}

NNKIT_API nnkit_status nnkit_dataset_load_image_folder(nnkit_dataset **out,
                                                       const char *root,
                                                       size_t channels,
                                                       size_t height,
                                                       size_t width,
                                                       int resize)
{
  static const char fn[] = "nnkit_dataset_load_image_folder";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL; pass the address "
                      "of a nnkit_dataset pointer", fn);
  *out = NULL;
  if (!root)
    return nnkit__err(NNKIT_E_INVALID, "%s: root is NULL", fn);
  if (channels != 1 && channels != 3)
    return nnkit__err(NNKIT_E_INVALID, "%s: channels is %zu; use 1 "
                      "(grayscale) or 3 (RGB)", fn, channels);
  if ((height == 0) != (width == 0))
    return nnkit__err(NNKIT_E_INVALID, "%s: height %zu and width %zu: give "
                      "both, or both 0 to use the first image's size", fn,
                      height, width);
  if (height > MAX_SIDE || width > MAX_SIDE)
    return nnkit__err(NNKIT_E_INVALID, "%s: %zux%zu is larger than %d pixels "
                      "a side", fn, height, width, MAX_SIDE);

  name_list classes = {0}, files = {0};
  size_t *labels = NULL, labels_cap = 0;
  char **class_names = NULL;
  float *tmp = NULL;
  size_t tmp_cap = 0;
  nnkit_dataset *ds = NULL;
  char *path = NULL;

  nnkit_status st = list_dir(&classes, root, 1);
  if (st == NNKIT_OK && classes.n == 0)
    st = nnkit__err(NNKIT_E_FORMAT, "%s: holds no class folders; put the "
                    "images of each class in a sub-folder named after it "
                    "(root/cat/1.png, root/dog/2.png, ...)", root);
  if (st == NNKIT_OK && classes.n > (size_t)INT32_MAX)
    st = nnkit__err(NNKIT_E_FORMAT, "%s: too many class folders", root);
  /* Files: "class/file" relative to root, with their class ids. */
  for (size_t k = 0; st == NNKIT_OK && k < classes.n; k++) {
    char *dir = join(root, list_at(&classes, k));
    if (!dir) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", root);
      break;
    }
    name_list in_class = {0};
    st = list_dir(&in_class, dir, 0);
    if (st == NNKIT_OK && in_class.n == 0)
      st = nnkit__err(NNKIT_E_FORMAT, "%s: class folder '%s' holds no "
                      ".png, .jpg or .jpeg files; add images or remove the "
                      "folder", dir, list_at(&classes, k));
    for (size_t i = 0; st == NNKIT_OK && i < in_class.n; i++) {
      char *rel = join(list_at(&classes, k), list_at(&in_class, i));
      int ok = rel && list_add(&files, rel);
      if (ok && files.n > labels_cap) {
        size_t cap = 2 * files.n + 64;
        size_t *nl = nnkit__realloc(labels, cap * sizeof *nl);
        ok = nl != NULL;
        if (ok) {
          labels = nl;
          labels_cap = cap;
        }
      }
      if (ok)
        labels[files.n - 1] = k;
      else
        st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory listing files", dir);
      nnkit__free(rel);
    }
    list_free(&in_class);
    nnkit__free(dir);
  }
  /* The common size. */
  if (st == NNKIT_OK && height == 0) {
    path = join(root, list_at(&files, 0));
    int iw = 0, ih = 0;
    if (!path) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", root);
    } else {
      st = decode_image(path, channels, &ih, &iw, NULL);
      height = (size_t)ih;
      width = (size_t)iw;
    }
    nnkit__free(path);
    path = NULL;
  }
  if (st == NNKIT_OK) {
    size_t shape[3] = {channels, height, width};
    /* Without resizing every value is a byte: kept compact. */
    st = resize ? nnkit__dataset_alloc(&ds, files.n, shape, 3, 1, 0)
                : nnkit__dataset_alloc_bytes(&ds, files.n, shape, 3, 1);
  }
  if (st == NNKIT_OK) {
    class_names = nnkit__malloc(classes.n * sizeof *class_names);
    if (!class_names)
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", root);
    for (size_t k = 0; st == NNKIT_OK && k < classes.n; k++)
      class_names[k] = (char *)list_at(&classes, k);
    ds->num_classes = (uint32_t)classes.n;
    if (st == NNKIT_OK)
      st = nnkit__dataset_set_names(ds, (const char *const *)class_names,
                                    classes.n);
  }
  for (size_t i = 0; st == NNKIT_OK && i < files.n; i++) {
    path = join(root, list_at(&files, i));
    if (!path) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", root);
      break;
    }
    size_t at = i * ds->sample_size;
    st = load_one(path, channels, height, width, resize,
                  ds->x8 ? NULL : ds->x + at, ds->x8 ? ds->x8 + at : NULL, &tmp,
                  &tmp_cap);
    ds->labels[i] = (int32_t)labels[i];
    nnkit__free(path);
    path = NULL;
  }
  list_free(&classes);
  list_free(&files);
  nnkit__free(labels);
  nnkit__free(class_names);
  nnkit__free(tmp);
  if (st != NNKIT_OK) {
    nnkit_dataset_free(ds);
    return st;
  }
  *out = ds;
  return NNKIT_OK;
}
