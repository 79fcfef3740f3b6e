/* stb_image compiled into the fuzz targets (instrumented with them), so
 * the PNG decoder is fuzzed with coverage and under the sanitizers; the
 * executable's definitions take precedence over Debian's libstb. */
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
