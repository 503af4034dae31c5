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

/* A Hugging Face tokenizer.json (byte-level BPE or SentencePiece-style BPE with byte
 * fallback), loaded once and shared read-only between threads. */
typedef struct alkfw_tokenizer alkfw_tokenizer;

/* A byte span [start, end) of the caller's input. */
typedef struct alkfw_span {
    size_t start;
    size_t end;
} alkfw_span;

typedef struct alkfw_encode_options {
    int add_special_tokens; /* run the post-processor (e.g. add BOS); default 1 */
    int plain_specials;     /* treat special-token text in the input as plain text; default 0 */
} alkfw_encode_options;

/* The result of encoding. spans[i] is the byte span of the input covered by ids[i]; tokens
 * added by the post-processor (BOS) have an empty span at 0. */
typedef struct alkfw_encoding {
    size_t n_tokens;
    int32_t *ids;
    alkfw_span *spans;
    size_t n_special_in_text; /* special-token strings matched in the input text */
    size_t n_replaced;        /* invalid UTF-8 sequences decoded as U+FFFD */
} alkfw_encoding;

/* Sets the defaults documented on alkfw_encode_options. */
void alkfw_encode_options_init(alkfw_encode_options *opts);

alkfw_status alkfw_tokenizer_load(const char *path, alkfw_tokenizer **out, alkfw_error *err);
/* Same, from a JSON text in memory (len bytes, need not be NUL-terminated). */
alkfw_status alkfw_tokenizer_load_buffer(const char *json, size_t len, alkfw_tokenizer **out,
                                         alkfw_error *err);
void alkfw_tokenizer_free(alkfw_tokenizer *tok);

/* Encodes len bytes of text (any bytes, need not be NUL-terminated; opts NULL = defaults).
 * On success the caller owns out and releases it with alkfw_encoding_free. */
alkfw_status alkfw_tokenizer_encode(const alkfw_tokenizer *tok, const char *text, size_t len,
                                    const alkfw_encode_options *opts, alkfw_encoding *out,
                                    alkfw_error *err);
void alkfw_encoding_free(alkfw_encoding *enc);

/* Decodes ids to a NUL-terminated UTF-8 string the caller frees with free(). */
alkfw_status alkfw_tokenizer_decode(const alkfw_tokenizer *tok, const int32_t *ids, size_t n,
                                    int skip_special_tokens, char **out, alkfw_error *err);

/* The vocabulary size (largest id + 1, added tokens included). */
size_t alkfw_tokenizer_vocab_size(const alkfw_tokenizer *tok);

/* The id of a token given by its string (len bytes; added tokens first, then the model
 * vocabulary), or -1 when no token has that string. Example: the BOS id of a Llama-style
 * tokenizer is alkfw_tokenizer_token_id(tok, "<s>", 3). */
int32_t alkfw_tokenizer_token_id(const alkfw_tokenizer *tok, const char *token, size_t len);

/* The string of token id (len bytes in *len when len is not NULL; the storage belongs to the
 * tokenizer and is NUL-terminated), or NULL when the id names no token. */
const char *alkfw_tokenizer_token_string(const alkfw_tokenizer *tok, int32_t id, size_t *len);

/* 1 when id is a special added token (<s>, <|im_start|>, ...), else 0. */
int alkfw_tokenizer_is_special(const alkfw_tokenizer *tok, int32_t id);

/* ==== end section: tokenizer ==== */

/* ==== section: model ==== */

/* A Llama-family detector model (Llama, Mistral, Qwen2) loaded from a Hugging Face
 * directory (config.json + model.safetensors or a sharded index). Read-only after loading;
 * one handle serves concurrent forwards from many threads. */
typedef struct alkfw_model alkfw_model;

typedef enum alkfw_backend {
    ALKFW_BACKEND_AUTO = 0, /* the fastest built in: OpenBLAS when present, else portable C */
    ALKFW_BACKEND_C,        /* portable C matrix products */
    ALKFW_BACKEND_OPENBLAS, /* OpenBLAS sgemm; an error when not built in */
    ALKFW_BACKEND_CUDA      /* an error when not built in */
} alkfw_backend;

typedef struct alkfw_model_options {
    int n_threads;         /* threads for matrix products and element-wise steps; 0 = the
                              number of cores. OpenBLAS keeps one thread count per process:
                              a positive value here sets it for every model of the process */
    alkfw_backend backend; /* default ALKFW_BACKEND_AUTO */
} alkfw_model_options;

typedef struct alkfw_model_info {
    const char *architecture; /* e.g. "LlamaForCausalLM" */
    int hidden_size;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int intermediate_size;
    int vocab_size;
    int max_positions;
    double rope_theta;
    double rms_norm_eps;
    int tied_embeddings;
} alkfw_model_info;

void alkfw_model_options_init(alkfw_model_options *opts);

/* Opens the model in dir (opts NULL = defaults): parses config.json, maps the weights and
 * checks every tensor the config implies (name, shape, dtype F32/F16/BF16) without reading
 * weight data. Errors: ALKFW_ERR_IO, ALKFW_ERR_FORMAT (malformed config or weights, naming
 * the key or tensor), ALKFW_ERR_UNSUPPORTED (an architecture or option not implemented,
 * naming the key), ALKFW_ERR_BACKEND (a backend not built in), ALKFW_ERR_NOMEM. */
alkfw_status alkfw_model_open(const char *dir, const alkfw_model_options *opts, alkfw_model **out,
                              alkfw_error *err);
void alkfw_model_free(alkfw_model *model);
void alkfw_model_get_info(const alkfw_model *model, alkfw_model_info *out);

/* Computes the hidden states at the given indices (Hugging Face output_hidden_states
 * convention: 0 = embedding output, i = residual after block i, n_layers = after the final
 * RMSNorm) for n_tokens ids at positions 0..n_tokens-1. Runs only as deep as the deepest
 * index. out has room for n_indices * n_tokens * hidden_size floats, laid out
 * [index][position][hidden] in the order indices are given (repeats allowed). n_tokens or
 * n_indices 0 does nothing. Errors: ALKFW_ERR_ARGUMENT (an id outside the vocabulary, an
 * index outside 0..n_layers, naming it), ALKFW_ERR_LIMIT (more than max_position_embeddings
 * tokens), ALKFW_ERR_NOMEM. The model keeps the buffers of its last call for the next one
 * until alkfw_model_free. */
alkfw_status alkfw_model_hidden(const alkfw_model *model, const int32_t *ids, size_t n_tokens,
                                const int *indices, size_t n_indices, float *out, alkfw_error *err);

/* ==== end section: model ==== */

/* ==== section: codebook ==== */

/* A codebook file (DESIGN §4) loaded for inspection: what `alkfw info --codebook` shows.
 * Screening goes through alkfw_firewall_open, which loads the codebook itself. Read-only after
 * loading; may be shared between threads. */
typedef struct alkfw_codebook alkfw_codebook;

/* What a codebook holds, as plain values. Every pointer belongs to the codebook and lives as
 * long as it does; strings are never NULL (empty when the file has no such key). */
typedef struct alkfw_codebook_info {
    int n_layers;
    const int32_t *layers; /* [n_layers] hidden-state indices, Hugging Face convention */
    int hidden_size;
    int k;       /* coordinates of the projection */
    int n_knots; /* knots per spline CDF */
    int n_directions;
    const char *const *directions; /* [n_directions] trained directions ("anomaly" is extra) */
    const float *weights;          /* [n_directions + 1] alpha_d, the anomaly's last */
    int smoothing_window;
    double threshold_suspicious;
    double threshold_dangerous;
    const char *model_id;
    const char *model_revision;
    const char *model_fingerprint; /* "hidden:layers:vocab:<sha256 of embed_tokens>" */
    const char *metrics;           /* JSON validation report */
    const char *training_data;     /* JSON summary of the training data */
    const char *created_by;
} alkfw_codebook_info;

/* Loads and validates the codebook file at path. On success the caller owns *out and frees
 * it with alkfw_codebook_free. Errors: ALKFW_ERR_IO, ALKFW_ERR_FORMAT (the message names the
 * tensor or metadata key and what is wrong), ALKFW_ERR_UNSUPPORTED (another format version),
 * ALKFW_ERR_NOMEM. */
alkfw_status alkfw_codebook_load(const char *path, alkfw_codebook **out, alkfw_error *err);
void alkfw_codebook_free(alkfw_codebook *cb);

/* Fills *out with views into cb. Never fails. */
void alkfw_codebook_get_info(const alkfw_codebook *cb, alkfw_codebook_info *out);

/* Checks cb against a model fingerprint ("hidden:layers:vocab:<sha256>"). Errors:
 * ALKFW_ERR_MISMATCH naming both fingerprints and what differs (hidden size, layer count,
 * vocabulary size or embedding weights), ALKFW_ERR_ARGUMENT for a malformed fingerprint. */
alkfw_status alkfw_codebook_check_model(const alkfw_codebook *cb, const char *model_fingerprint,
                                        alkfw_error *err);

/* ==== end section: codebook ==== */

/* ==== section: firewall ==== */

/* A loaded firewall: detector model, its tokenizer and a codebook that belongs to the model.
 * Read-only after opening; one handle serves concurrent alkfw_screen calls from many
 * threads. */
typedef struct alkfw_firewall alkfw_firewall;

/* The alarm levels, in increasing severity. */
typedef enum alkfw_level { ALKFW_CLEAR = 0, ALKFW_SUSPICIOUS = 1, ALKFW_DANGEROUS = 2 } alkfw_level;

typedef struct alkfw_options {
    int n_threads;               /* threads for the model's matrix products; 0 = all cores */
    alkfw_backend backend;       /* default ALKFW_BACKEND_AUTO */
    double threshold_suspicious; /* < 0 (default): the codebook's calibrated threshold */
    double threshold_dangerous;  /* < 0 (default): the codebook's calibrated threshold */
    int smoothing;               /* 1 (default): trailing mean of the features; 0: none */
    int smoothing_window;        /* 0 (default): the codebook's window; else positions */
    int last_token;              /* 1: score position T-1 alone; default 0 (every position) */
    int plain_specials;          /* 1: special-token text in the input is plain text */
    size_t max_tokens;           /* 0 (default): the model's max positions; longer inputs are
                                    truncated and the alarm says so */
    size_t max_spans;            /* the most spans an alarm lists; default 5 */
} alkfw_options;

/* One direction's signal in an alarm. The anomaly direction is always last. */
typedef struct alkfw_direction_score {
    char *name;          /* "injection", "jailbreak", ..., "anomaly" */
    double mean;         /* m_d: mean over the scored positions of P_d(t) */
    double max;          /* max over the scored positions of P_d(t) */
    size_t max_position; /* token index of the max */
    double weight;       /* alpha_d, the direction's weight in the score */
} alkfw_direction_score;

/* A run of consecutive tokens whose weighted probability alpha_d * P_d(t) for one direction
 * is above the suspicious threshold: the byte span [start, end) of the input they cover. */
typedef struct alkfw_alarm_span {
    size_t start;
    size_t end;
    char *direction; /* the direction's name */
    double p;        /* the highest P_d(t) inside the run */
} alkfw_alarm_span;

/* The outcome of one screen. Everything inside is owned by the alarm: release it with
 * alkfw_alarm_free. Directions come in codebook order, the anomaly direction last; spans come
 * sorted by p, highest first. */
typedef struct alkfw_alarm {
    alkfw_level level;
    double score; /* max_d alpha_d * m_d, in [0, 1] */
    double threshold_suspicious;
    double threshold_dangerous;
    size_t n_directions;
    alkfw_direction_score *directions;
    size_t n_spans;
    alkfw_alarm_span *spans;
    size_t n_tokens;         /* tokens screened (BOS included) */
    size_t n_special_tokens; /* special-token strings found in the input text */
    size_t n_replaced;       /* invalid UTF-8 sequences replaced by U+FFFD */
    int truncated;           /* 1 when the input was cut to max_tokens */
    char *model;             /* the detector's model id */
    char *codebook;          /* the codebook's id (file name and sha256 prefix) */
    double elapsed_ms;       /* wall time of the screen */
} alkfw_alarm;

/* Sets the defaults documented on alkfw_options. */
void alkfw_options_init(alkfw_options *opts);

/* Opens a firewall: the model in model_dir (config.json, weights, tokenizer.json) and the
 * codebook file at codebook_path, checking that the codebook was built for this model (an
 * ALKFW_ERR_MISMATCH error that says so otherwise). model_dir NULL means the embedded default
 * detector (see alkfw_default_model_dir); codebook_path NULL means model_dir's
 * codebook.safetensors. opts NULL means defaults. On success the caller owns *out and frees it
 * with alkfw_firewall_free. Errors: those of the model, tokenizer and codebook loaders, each
 * naming the file. */
alkfw_status alkfw_firewall_open(const char *model_dir, const char *codebook_path,
                                 const alkfw_options *opts, alkfw_firewall **out, alkfw_error *err);
void alkfw_firewall_free(alkfw_firewall *fw);

/* Screens len bytes of text (any bytes, need not be NUL-terminated) and fills *alarm, which
 * the caller then releases with alkfw_alarm_free (also after an error: it is left empty).
 * Safe to call from many threads on one firewall. Errors: ALKFW_ERR_ARGUMENT, the model's
 * and tokenizer's errors, ALKFW_ERR_NOMEM. */
alkfw_status alkfw_screen(const alkfw_firewall *fw, const char *text, size_t len,
                          alkfw_alarm *alarm, alkfw_error *err);

/* Releases what an alarm owns and empties it. alarm may be NULL. */
void alkfw_alarm_free(alkfw_alarm *alarm);

/* The alarm as a JSON object text (keys: level, score, thresholds, directions, spans, tokens,
 * special_tokens, replaced, truncated, model, codebook, elapsed_ms). On success the caller
 * frees *json with free(). Errors: ALKFW_ERR_NOMEM. */
alkfw_status alkfw_alarm_to_json(const alkfw_alarm *alarm, char **json, alkfw_error *err);

/* "CLEAR", "SUSPICIOUS" or "DANGEROUS" ("UNKNOWN" for an out-of-range value). */
const char *alkfw_level_string(alkfw_level level);

/* The firewall's model id, codebook id, and hidden-state layers it reads; for display. The
 * strings belong to fw. */
const char *alkfw_firewall_model_id(const alkfw_firewall *fw);
const char *alkfw_firewall_codebook_id(const alkfw_firewall *fw);

/* The directory of the embedded default detector (models/stories260k with its bundled
 * codebook.safetensors): $ALKFW_HOME/models/stories260k when ALKFW_HOME is set, else the
 * first of <dir>/models/stories260k and <dir>/share/alkfw/models/stories260k that exists for
 * the directories above the running executable, else the configured install location.
 * Writes a NUL-terminated path into buf (size bytes). Errors: ALKFW_ERR_LIMIT when it does
 * not fit, ALKFW_ERR_IO when no candidate exists (buf then holds the last one tried). */
alkfw_status alkfw_default_model_dir(char *buf, size_t size, alkfw_error *err);

/* -- documents and streams -- */

/* How a long document or a stream is cut into windows (DESIGN §3). */
typedef struct alkfw_document_options {
    size_t window;  /* W: positions per window, BOS included; 0 (default): min(2048, the
                       firewall's max tokens). At most the firewall's max tokens. */
    double overlap; /* fraction of a window's text tokens shared with the next window, in
                       [0, 0.9]; default 0.25 (stride 0.75 W) */
    int n_threads;  /* windows screened at once by alkfw_screen_document; 0 (default): one
                       per core when the firewall was opened with n_threads 1, else 1 */
} alkfw_document_options;

/* One window of a document alarm: the bytes [start, end) of the document it covers (start of
 * its first token, end of its last), its tokens and its own level and score. */
typedef struct alkfw_window {
    size_t start;
    size_t end;
    size_t first_token; /* index of its first text token among the document's text tokens */
    size_t n_tokens;    /* positions screened, BOS included */
    alkfw_level level;
    double score;
} alkfw_window;

/* The alarm of a long document or of a stream so far. `alarm` holds the document's scores:
 * each direction's mean and max are the max over windows (max pooling), the score and level
 * follow from them, spans and max positions are in document bytes and token indices, n_tokens
 * counts the document's tokens (one BOS). windows lists every window in document order. A
 * document of at most W tokens gives exactly the alarm of alkfw_screen and one window. Owned
 * by the caller: release with alkfw_document_alarm_free. */
typedef struct alkfw_document_alarm {
    alkfw_alarm alarm;
    size_t n_windows;
    alkfw_window *windows;
} alkfw_document_alarm;

/* Sets the defaults documented on alkfw_document_options. */
void alkfw_document_options_init(alkfw_document_options *opts);

/* Screens a document of len bytes window by window (opts NULL: defaults) and fills *out
 * (release it with alkfw_document_alarm_free, also after an error: it is left empty). Memory
 * stays bounded by the window and the thread count, not the length. Thread-safe on one
 * firewall. Errors: ALKFW_ERR_ARGUMENT (bad options, naming the option), the model's and
 * tokenizer's errors, ALKFW_ERR_NOMEM. */
alkfw_status alkfw_screen_document(const alkfw_firewall *fw, const char *text, size_t len,
                                   const alkfw_document_options *opts, alkfw_document_alarm *out,
                                   alkfw_error *err);

/* Reads up to size bytes into buf; returns the count, 0 at the end, or -1 on a read error. */
typedef long (*alkfw_read_fn)(void *user, char *buf, size_t size);

/* The same as alkfw_screen_document over a text read piece by piece from read(user, ...), so
 * the document never has to be in memory at once (peak memory does not grow with its length).
 * Errors: as alkfw_screen_document, ALKFW_ERR_IO when read returns -1. */
alkfw_status alkfw_screen_document_read(const alkfw_firewall *fw, alkfw_read_fn read, void *user,
                                        const alkfw_document_options *opts,
                                        alkfw_document_alarm *out, alkfw_error *err);

/* Releases what a document alarm owns and empties it. alarm may be NULL. */
void alkfw_document_alarm_free(alkfw_document_alarm *alarm);

/* The document alarm as JSON: the keys of alkfw_alarm_to_json plus "windows", a list of
 * {start, end, level, score} in document order. The caller frees *json with free(). Errors:
 * ALKFW_ERR_NOMEM. */
alkfw_status alkfw_document_alarm_to_json(const alkfw_document_alarm *alarm, char **json,
                                          alkfw_error *err);

/* A stream screener: text arrives in chunks split anywhere (inside a UTF-8 sequence, inside a
 * token); after each chunk it reports the alarm of everything received so far, forwarding only
 * the new tokens through the model's KV cache. Used by one thread at a time. */
typedef struct alkfw_stream alkfw_stream;

/* Opens a stream on fw (which must outlive it) with the window settings of opts (NULL:
 * defaults; n_threads is not used). Errors: ALKFW_ERR_ARGUMENT, ALKFW_ERR_NOMEM. */
alkfw_status alkfw_stream_open(const alkfw_firewall *fw, const alkfw_document_options *opts,
                               alkfw_stream **out, alkfw_error *err);

/* Appends len bytes and, when alarm is not NULL, fills it with the alarm of the text so far:
 * the alarm alkfw_screen_document gives for that text, except that an incomplete UTF-8
 * sequence at its end is held back until the next chunk completes it. The caller releases
 * *alarm with alkfw_document_alarm_free. Errors: ALKFW_ERR_ARGUMENT (after finish), the
 * model's and tokenizer's errors, ALKFW_ERR_NOMEM; after an error the stream can only be
 * freed. */
alkfw_status alkfw_stream_push(alkfw_stream *stream, const char *chunk, size_t len,
                               alkfw_document_alarm *alarm, alkfw_error *err);

/* Ends the text (held-back bytes become U+FFFD) and fills alarm (may be NULL) with the alarm
 * of the whole text: the alarm of alkfw_screen_document on it. Errors: as alkfw_stream_push. */
alkfw_status alkfw_stream_finish(alkfw_stream *stream, alkfw_document_alarm *alarm,
                                 alkfw_error *err);

/* Frees a stream. stream may be NULL. */
void alkfw_stream_free(alkfw_stream *stream);

/* ==== end section: firewall ==== */

#ifdef __cplusplus
}
#endif

#endif /* ALKFW_H */
