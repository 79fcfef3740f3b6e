/* Status strings and the thread-local last-error sentence. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[1024];

nnkit_status nnkit__err(nnkit_status status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  va_end(ap);
  return status;
}

NNKIT_API const char *nnkit_last_error(void) { return last_error; }

NNKIT_API void nnkit_clear_error(void) { last_error[0] = '\0'; }

NNKIT_API const char *nnkit_status_string(nnkit_status status)
{
  switch (status) {
  case NNKIT_OK: return "NNKIT_OK: success";
  case NNKIT_E_INVALID: return "NNKIT_E_INVALID: invalid argument";
  case NNKIT_E_NOMEM: return "NNKIT_E_NOMEM: out of memory";
  case NNKIT_E_IO: return "NNKIT_E_IO: input/output error";
  case NNKIT_E_FORMAT: return "NNKIT_E_FORMAT: malformed file";
  case NNKIT_E_SHAPE: return "NNKIT_E_SHAPE: shapes do not fit";
  case NNKIT_E_STATE: return "NNKIT_E_STATE: call not valid in this state";
  case NNKIT_E_DIVERGED: return "NNKIT_E_DIVERGED: training diverged";
  case NNKIT_E_USER: return "NNKIT_E_USER: aborted by a callback";
  }
  return "unknown nnkit status";
}

NNKIT_API const char *nnkit_version(void) { return NNKIT_VERSION_STRING; }

NNKIT_API uint32_t nnkit_version_number(void)
{
  return (uint32_t)NNKIT_VERSION_NUMBER;
}
