/*
 * log.c - the process-wide log callback.
 *
 * The callback and its user pointer are read atomically enough for the library's purpose:
 * callers install it once, before opening handles, as alkfw.h asks.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

static alkfw_log_fn log_fn;
static void *log_user;

void alkfw_set_log(alkfw_log_fn fn, void *user)
{
    log_fn = fn;
    log_user = user;
}

void log_message(alkfw_log_level level, const char *fmt, ...)
{
    if (log_fn == NULL)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_fn(log_user, level, buf);
}
