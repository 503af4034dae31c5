/*
 * log.h - the library's one logging entry point, routed to the caller's callback.
 */
#ifndef ALKFW_COMMON_LOG_H
#define ALKFW_COMMON_LOG_H

#include "alkfw.h"

/* Formats a message and hands it to the installed callback; does nothing when none is. */
void log_message(alkfw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
