/*
 * error.h - filling alkfw_error values inside the library.
 */
#ifndef ALKFW_COMMON_ERROR_H
#define ALKFW_COMMON_ERROR_H

#include "alkfw.h"

/* Sets err (when not NULL) to status and a printf-style message, and returns status, so a
 * failing path reads `return error_set(err, ALKFW_ERR_FORMAT, "...", ...);`. */
alkfw_status error_set(alkfw_error *err, alkfw_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "<context>: " to the message already in err, keeping its status, and returns the
 * status. Used to say where a nested failure happened ("config.json: hidden_size: ..."). */
alkfw_status error_prefix(alkfw_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears err to ALKFW_OK with an empty message. err may be NULL. */
void error_clear(alkfw_error *err);

#endif
