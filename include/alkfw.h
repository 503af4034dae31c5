/*
 * alkfw.h - the one public header of libalkfw, the alknet-firewall library.
 *
 * alknet-firewall screens untrusted text before it reaches an LLM application: it runs the
 * text through a small causal language model (the detector), reads hidden-state activations,
 * projects them into a learned codebook and raises a behavioral alarm.
 *
 * Conventions of this API:
 *   - Every call that can fail returns an alkfw_status and, when `err` is not NULL, fills it
 *     with a message a user can act on. ALKFW_OK is 0.
 *   - Handles are opaque. Whoever receives a handle from an open or load call frees it with
 *     the matching free call; passing NULL to a free call does nothing.
 *   - The library never prints and never exits; it logs through alkfw_set_log when asked.
 *   - Loaded models, tokenizers and firewalls are read-only after loading: one handle may be
 *     used from many threads at once. Streams are not shared between threads.
 */
#ifndef ALKFW_H
#define ALKFW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALKFW_VERSION "0.1.0"

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */
/* ---------------------------------------------------------------------------------------- */

typedef enum alkfw_status {
    ALKFW_OK = 0,
    ALKFW_ERR_ARGUMENT,    /* a caller passed a bad argument (NULL, out of range, ...) */
    ALKFW_ERR_IO,          /* a file could not be opened, read, mapped or written */
    ALKFW_ERR_FORMAT,      /* a file or request is malformed; the message says where */
    ALKFW_ERR_UNSUPPORTED, /* well-formed, but asks for something not implemented */
    ALKFW_ERR_MISMATCH,    /* two parts do not belong together (codebook vs model) */
    ALKFW_ERR_NOMEM,       /* an allocation failed */
    ALKFW_ERR_LIMIT,       /* an input exceeds a configured or structural limit */
    ALKFW_ERR_BACKEND,     /* a compute backend is missing or failed */
    ALKFW_ERR_INTERNAL     /* a bug: an invariant did not hold */
} alkfw_status;

#define ALKFW_ERROR_MESSAGE_SIZE 512

typedef struct alkfw_error {
    alkfw_status status;
    char message[ALKFW_ERROR_MESSAGE_SIZE];
} alkfw_error;

/* Returns a short constant name for a status ("ok", "format error", ...). Never NULL. */
const char *alkfw_status_string(alkfw_status status);

/* ---------------------------------------------------------------------------------------- */
/* Logging                                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef enum alkfw_log_level {
    ALKFW_LOG_DEBUG = 0,
    ALKFW_LOG_INFO,
    ALKFW_LOG_WARN,
    ALKFW_LOG_ERROR
} alkfw_log_level;

typedef void (*alkfw_log_fn)(void *user, alkfw_log_level level, const char *message);

/* Installs the process-wide log callback (NULL silences the library, the default). This is
 * the one piece of global state; set it before opening handles. */
void alkfw_set_log(alkfw_log_fn fn, void *user);

/* ==== section: tokenizer ==== */

/* ==== end section: tokenizer ==== */

/* ==== section: model ==== */

/* ==== end section: model ==== */

/* ==== section: codebook ==== */

/* ==== end section: codebook ==== */

/* ==== section: firewall ==== */

/* ==== end section: firewall ==== */

#ifdef __cplusplus
}
#endif

#endif /* ALKFW_H */
