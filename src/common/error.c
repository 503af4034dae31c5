/*
 * error.c - status strings and error messages.
 */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *alkfw_status_string(alkfw_status status)
{
    switch (status) {
    case ALKFW_OK:
        return "ok";
    case ALKFW_ERR_ARGUMENT:
        return "invalid argument";
    case ALKFW_ERR_IO:
        return "i/o error";
    case ALKFW_ERR_FORMAT:
        return "format error";
    case ALKFW_ERR_UNSUPPORTED:
        return "unsupported";
    case ALKFW_ERR_MISMATCH:
        return "mismatch";
    case ALKFW_ERR_NOMEM:
        return "out of memory";
    case ALKFW_ERR_LIMIT:
        return "limit exceeded";
    case ALKFW_ERR_BACKEND:
        return "backend error";
    case ALKFW_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown status";
}

alkfw_status error_set(alkfw_error *err, alkfw_status status, const char *fmt, ...)
{
    if (err == NULL)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return status;
}

alkfw_status error_prefix(alkfw_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return ALKFW_ERR_INTERNAL;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);

    /* Build the joined text in a buffer large enough for both parts, then cut it to fit. */
    char joined[sizeof prefix + ALKFW_ERROR_MESSAGE_SIZE + 2];
    snprintf(joined, sizeof joined, "%s: %s", prefix, err->message);
    memcpy(err->message, joined, sizeof err->message - 1);
    err->message[sizeof err->message - 1] = '\0';
    return err->status;
}

void error_clear(alkfw_error *err)
{
    if (err == NULL)
        return;
    err->status = ALKFW_OK;
    err->message[0] = '\0';
}
