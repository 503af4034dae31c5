/*
 * codebook.h - the codebook: the fitted map from hidden-state activations to a behavioral
 * alarm (DESIGN §2 steps 3-10, §4).
 *
 * A codebook holds, for n_l hidden-state layers of width `hidden` (D = n_l * hidden):
 *   - per-layer standardization: mean vectors mu_l and scalar scales sigma_l;
 *   - a projection basis of k rows (z = basis @ a);
 *   - k + 1 monotone spline CDFs (one per coordinate, row k for the anomaly statistic);
 *   - n_d logistic direction models over phi = logit(copula features);
 *   - the weights of the final max (n_d + 1, the last for the anomaly direction), the
 *     thresholds and the smoothing window.
 *
 * Nothing here knows about models or tokenizers: inputs are activations as floats, so every
 * step is testable with synthetic data.
 *
 * Screening is split in two so that a streaming screener can add tokens incrementally and
 * still get exactly the whole-text numbers:
 *   1. codebook_token_features() turns one token's activations into its unsmoothed features
 *      (k logits phi and the anomaly value a, CODEBOOK_N_FEATURES(cb) doubles), without
 *      allocating; codebook_features() does it for a block of tokens;
 *   2. codebook_aggregate() takes the features of all T tokens of a text and computes the
 *      trailing smoothing, the per-token direction probabilities, the per-direction mean, max
 *      and argmax, the score and the level.
 * codebook_score() chains both for one whole text.
 *
 * A loaded codebook is read-only: any number of threads may score with it at once.
 */
#ifndef ALKFW_CODEBOOK_CODEBOOK_H
#define ALKFW_CODEBOOK_CODEBOOK_H

#include "alkfw.h"

#include <stddef.h>
#include <stdint.h>

/* Structural limits checked on load and fit. */
#define CODEBOOK_MAX_K 64          /* coordinates of the projection */
#define CODEBOOK_MAX_KNOTS 4096    /* knots per spline */
#define CODEBOOK_MAX_LAYERS 1024   /* hidden-state layers */
#define CODEBOOK_MAX_HIDDEN 65536  /* width of one hidden state */
#define CODEBOOK_MAX_DIRECTIONS 64 /* trained directions */

/* The feature clamp of DESIGN §4: phi = logit(clamp(f, 1e-6, 1 - 1e-6)). */
#define CODEBOOK_FEATURE_CLAMP 1e-6

/* Defaults of a fit. */
#define CODEBOOK_DEFAULT_K 3
#define CODEBOOK_DEFAULT_KNOTS 32
#define CODEBOOK_DEFAULT_WINDOW 8

#define CODEBOOK_FORMAT "alkfw-codebook"
#define CODEBOOK_VERSION "1"

/* Unsmoothed features per token: phi_1..phi_k, then the anomaly value a. */
#define CODEBOOK_N_FEATURES(cb) ((size_t)(cb)->k + 1)

/* Alarm levels, in increasing order of severity. */
typedef enum codebook_level {
    CODEBOOK_CLEAR = 0,
    CODEBOOK_SUSPICIOUS = 1,
    CODEBOOK_DANGEROUS = 2
} codebook_level;

/* Returns "CLEAR", "SUSPICIOUS" or "DANGEROUS" ("?" for anything else). Never NULL. */
const char *codebook_level_name(codebook_level level);

/* Everything a codebook file holds, in memory. Arrays are row-major; all are owned by the
 * struct and released by codebook_free. Names follow DESIGN §4. */
typedef struct codebook {
    int n_layers; /* n_l */
    int hidden;   /* width of one hidden state */
    int k;        /* projection coordinates, 1..64 */
    int n_knots;  /* K, knots per spline, >= 2 */
    int n_dirs;   /* n_d trained directions, >= 0 */

    int32_t *layers;   /* [n_l] hidden-state indices, HF convention, strictly increasing */
    float *norm_mean;  /* [n_l][hidden] mu_l */
    float *norm_scale; /* [n_l] sigma_l > 0 */
    float *basis;      /* [k][D] rows are the basis vectors */
    float *knots;      /* [k+1][K] strictly increasing per row */
    float *cdf;        /* [k+1][K] strictly increasing per row, inside (0,1) */
    float *slope;      /* [k+1][K] > 0 */
    float *dir_weight; /* [n_d][k] */
    float *dir_bias;   /* [n_d] */
    float *dir_alpha;  /* [n_d + 1], the last is the anomaly direction's */
    char **directions; /* [n_d] names, NUL-terminated */

    int smoothing_window;        /* trailing window; 0 or 1 means no smoothing */
    double threshold_suspicious; /* in [0,1], <= threshold_dangerous */
    double threshold_dangerous;  /* in [0,1] */

    /* Metadata strings (never NULL after load or fit; may be empty). */
    char *model_id;
    char *model_revision;
    char *model_fingerprint; /* "hidden:layers:vocab:sha256hex" or empty */
    char *metrics;           /* JSON of the validation report */
    char *training_data;     /* JSON summary of the training data */
    char *created_by;        /* tool and version */
} codebook;

/* ---- the file ---------------------------------------------------------------------------- */

/* Reads and validates the codebook file at path (DESIGN §4). On success *out is a new
 * codebook the caller releases with codebook_free. Every tensor and metadata key is checked
 * (dtype, shape, finiteness, ordering, ranges) and a failure names the path, the tensor or key
 * and what is wrong. Errors: ALKFW_ERR_IO (unreadable), ALKFW_ERR_FORMAT (malformed),
 * ALKFW_ERR_UNSUPPORTED (another format version), ALKFW_ERR_NOMEM. */
alkfw_status codebook_load(const char *path, codebook **out, alkfw_error *err);

/* Same as codebook_load over len bytes in memory (copied out; the caller keeps data). The
 * messages name `name` where codebook_load names the path. */
alkfw_status codebook_load_buffer(const void *data, size_t len, const char *name, codebook **out,
                                  alkfw_error *err);

/* Checks that cb is internally consistent (the same checks as codebook_load, on a struct
 * built in memory). Errors: ALKFW_ERR_FORMAT naming the field. */
alkfw_status codebook_validate(const codebook *cb, alkfw_error *err);

/* Writes cb to path as a safetensors file, atomically. The bytes depend only on the contents
 * of cb (fixed tensor and metadata order, fixed number formatting), so the same codebook gives
 * the same file byte for byte. cb is validated first. Errors: ALKFW_ERR_FORMAT (cb is
 * inconsistent), ALKFW_ERR_IO, ALKFW_ERR_NOMEM. */
alkfw_status codebook_save(const codebook *cb, const char *path, alkfw_error *err);

/* Same as codebook_save into a malloc'ed buffer the caller frees. */
alkfw_status codebook_serialize(const codebook *cb, void **out_data, size_t *out_len,
                                alkfw_error *err);

/* Allocates a zeroed codebook with every array sized for the given shape and every metadata
 * string empty; directions are set to "" (the caller fills names). Errors: ALKFW_ERR_ARGUMENT
 * (a dimension out of range), ALKFW_ERR_NOMEM. */
alkfw_status codebook_alloc(int n_layers, int hidden, int k, int n_knots, int n_dirs,
                            codebook **out, alkfw_error *err);

/* Replaces the string *field (one of the metadata strings or a direction name) with a copy of
 * value. Errors: ALKFW_ERR_NOMEM (the field is unchanged). */
alkfw_status codebook_set_string(char **field, const char *value, alkfw_error *err);

/* Releases cb and everything it owns. cb may be NULL. */
void codebook_free(codebook *cb);

/* ---- model fingerprint ------------------------------------------------------------------- */

/* Size of a buffer that holds any fingerprint. */
#define CODEBOOK_FINGERPRINT_SIZE 128

/* Writes "hidden:n_layers:vocab:<sha256 hex of embed_bytes>" (the stored bytes of
 * model.embed_tokens.weight) into out. Errors: ALKFW_ERR_ARGUMENT (out_size too small or a
 * NULL pointer with a non-zero length), ALKFW_ERR_INTERNAL (the hash failed). */
alkfw_status codebook_fingerprint(int hidden_size, int n_layers, int vocab_size,
                                  const void *embed_bytes, size_t embed_len, char *out,
                                  size_t out_size, alkfw_error *err);

/* Checks that cb was built for the model whose fingerprint is given. A codebook with an empty
 * fingerprint matches any model whose hidden size equals cb->hidden. Errors:
 * ALKFW_ERR_MISMATCH with both fingerprints and what differs (hidden size, layer count, vocab
 * size, weights), also when a configured layer index exceeds the model's layer count. */
alkfw_status codebook_check_model(const codebook *cb, const char *fingerprint, alkfw_error *err);

/* ---- spline CDFs ------------------------------------------------------------------------- */

/* The smallest value a CDF returns, and 1 minus the largest: F is kept in
 * [CODEBOOK_CDF_TINY, 1 - 2^-53] so that it never equals 0 or 1 in double, while the upper
 * complement 1 - F is computed separately so the far upper tail keeps its precision. */
#define CODEBOOK_CDF_TINY 2.2250738585072014e-308 /* DBL_MIN */

/* Evaluates spline row `row` (0..k) of cb at z, exactly as DESIGN §4: cubic Hermite inside
 * the knots, exponential tails outside. Returns F(z) in (0,1); when upper is not NULL it
 * receives 1 - F(z) computed without cancellation in the upper tail (also > 0). */
double codebook_spline_eval(const codebook *cb, int row, double z, double *upper);

/* The same on raw arrays of n >= 2 knots (for fitting and tests). */
double codebook_spline_eval_raw(const float *knots, const float *cdf, const float *slope, int n,
                                double z, double *upper);

/* The inverse of spline row `row`: the z with F(z) = p, for p in (0,1), found by bisection
 * to about 1e-12 relative (the tails are inverted in closed form). p outside (0,1) is clamped
 * to the nearest representable inside value. */
double codebook_spline_inverse(const codebook *cb, int row, double p);

/* ---- screening ---------------------------------------------------------------------------- */

/* Unsmoothed features of one token. h points at the token's state in the first configured
 * layer; the state in layer l is at h + l * layer_stride (hidden floats each). So for states
 * laid out [n_l][T][hidden] use h = states + t * hidden and layer_stride = T * hidden; for one
 * token's concatenated activation [n_l * hidden] use layer_stride = hidden. out receives
 * CODEBOOK_N_FEATURES(cb) doubles: phi_1..phi_k, then the anomaly value a = F_anom(n). When z
 * is not NULL it receives the k projected coordinates. Computes in double; allocates nothing;
 * never fails on a validated codebook (non-finite activations give non-finite features). */
void codebook_token_features(const codebook *cb, const float *h, size_t layer_stride, double *out,
                             double *z);

/* The projection alone: z = basis @ a with a = concat_l((h_l - mu_l) / sigma_l), k doubles into
 * z, for one token addressed as in codebook_token_features. Needs only the standardization and
 * the basis of cb (the fitter calls it before the splines exist). Allocates nothing. */
void codebook_project(const codebook *cb, const float *h, size_t layer_stride, double *z);

/* Trailing moving average of token-major features ([n_tokens][n_features]): out row t is the
 * mean of rows max(0, t-w+1) .. t, summed oldest first (window <= 1: a copy). This is the exact
 * smoothing codebook_aggregate applies. Allocates nothing; out must not alias features. */
void codebook_smooth(const double *features, size_t n_tokens, size_t n_features, int window,
                     double *out);

/* Features of n_tokens tokens whose states are laid out [n_l][n_tokens][hidden] (the order of
 * cb->layers, as alkfw_model_hidden returns them). out has room for n_tokens *
 * CODEBOOK_N_FEATURES(cb) doubles, token-major. Never fails; allocates nothing. */
void codebook_features(const codebook *cb, const float *states, size_t n_tokens, double *out);

/* How a screen aggregates. */
typedef struct codebook_score_options {
    int smoothing_window;        /* -1: the codebook's; 0 or 1: off; n > 1: n positions */
    int last_token;              /* score position T-1 alone (see codebook_aggregate) */
    double threshold_suspicious; /* negative: the codebook's */
    double threshold_dangerous;  /* negative: the codebook's */
} codebook_score_options;

/* Sets the defaults: the codebook's window and thresholds, every position. */
void codebook_score_options_init(codebook_score_options *opts);

/* The outcome of one screen. n_outputs = n_d + 1 directions, the last is "anomaly". */
typedef struct codebook_result {
    size_t n_tokens; /* T */
    int n_outputs;   /* n_d + 1 */
    double *mean;    /* [n_outputs] m_d */
    double *max;     /* [n_outputs] max_t P_d(t) */
    size_t *argmax;  /* [n_outputs] first position of the max */
    double *p;       /* [n_outputs][T] per-token P_d(t), smoothed */
    double score;    /* max_d alpha_d m_d */
    int top;         /* the direction that gave the score (first on ties) */
    codebook_level level;
    double threshold_suspicious; /* the thresholds that were applied */
    double threshold_dangerous;
} codebook_result;

/* Aggregates the unsmoothed features of T >= 1 tokens (token-major, as codebook_features
 * writes them) into res: trailing smoothing over the window, P_d(t) = sigmoid(w_d . phi_s(t) +
 * b_d) for each trained direction and the smoothed anomaly value for the last one, then
 * m_d = mean_t P_d(t), max and argmax, score = max_d alpha_d m_d and the level by strict >.
 * With opts->last_token the per-token series is computed the same way (the smoothing at T-1
 * still looks back over the window) but mean, max and argmax use position T-1 alone. opts
 * NULL means defaults. res is overwritten; on success the caller releases it with
 * codebook_result_free (also on failure, which leaves it empty). Errors: ALKFW_ERR_ARGUMENT
 * (T == 0), ALKFW_ERR_NOMEM. */
alkfw_status codebook_aggregate(const codebook *cb, const double *features, size_t n_tokens,
                                const codebook_score_options *opts, codebook_result *res,
                                alkfw_error *err);

/* Completes res from its per-token series res->p ([n_outputs][n_tokens], n_tokens >= 1) the
 * way codebook_aggregate does: mean, max and argmax over every position (position T-1 alone
 * with opts->last_token), score = max_d alpha_d m_d and its direction, the thresholds applied
 * and the level by strict >. opts may not be NULL. Never fails; allocates nothing. */
void codebook_result_summarize(const codebook *cb, const codebook_score_options *opts,
                               codebook_result *res);

/* codebook_features then codebook_aggregate for the T tokens of one text, states laid out
 * [n_l][T][hidden]. Errors as codebook_aggregate. */
alkfw_status codebook_score(const codebook *cb, const float *states, size_t n_tokens,
                            const codebook_score_options *opts, codebook_result *res,
                            alkfw_error *err);

/* The name of output d of a result: a direction name, or "anomaly" for d == n_d. */
const char *codebook_output_name(const codebook *cb, int d);

/* Releases the arrays of res and zeroes it. res may be NULL. */
void codebook_result_free(codebook_result *res);

/* ---- fitting (the library side of `alkfw build`) ----------------------------------------- */

/* Labeled activations of many texts. Token i's activation is acts[i * D .. (i+1) * D), the
 * configured layers concatenated (D = n_layers * hidden, layer order of options.layers). */
typedef struct codebook_fit_input {
    int n_layers;
    int hidden;
    size_t n_tokens;   /* total tokens over all texts */
    const float *acts; /* [n_tokens][D] */
    size_t n_texts;
    const size_t *text_start;  /* [n_texts] first token of each text */
    const size_t *text_len;    /* [n_texts] tokens of each text (>= 1) */
    const int *label;          /* [n_texts] -1 benign, else an index into the directions */
    const int *is_val;         /* [n_texts] 1 validation split, 0 training split */
    const char *const *source; /* [n_texts] source names for the report, or NULL */
} codebook_fit_input;

typedef struct codebook_fit_options {
    const int32_t *layers;         /* [n_layers] hidden-state indices the activations come from */
    int k;                         /* 1..64, default 3 */
    int n_knots;                   /* spline knots, default 32 */
    int smoothing_window;          /* default 8 */
    const char *const *directions; /* [n_dirs] names */
    int n_dirs;
    double fpr_dangerous;  /* default 0.01 */
    double fpr_suspicious; /* default 0.05 */
    double C;              /* liblinear cost, default 1 */
    uint64_t seed;         /* for token subsampling */
    size_t max_fit_tokens; /* 0: all; else subsample training tokens for SVD and LR */
    const char *model_id;  /* copied into the metadata (may be NULL) */
    const char *model_revision;
    const char *model_fingerprint;
    const char *created_by;
} codebook_fit_options;

/* Sets the defaults listed above (layers NULL, no directions, seed 0). */
void codebook_fit_options_init(codebook_fit_options *opts);

/* Fits a codebook (see docs/codebook.md for every step). On success *out is new and owned by
 * the caller; its metrics hold the validation report. Deterministic: the same input and
 * options give the same codebook and the same file bytes. Errors: ALKFW_ERR_ARGUMENT (bad
 * shapes, label out of range, empty splits), ALKFW_ERR_FORMAT (degenerate data, e.g. a layer
 * of zero variance), ALKFW_ERR_BACKEND (LAPACK or liblinear failed), ALKFW_ERR_NOMEM. */
alkfw_status codebook_fit(const codebook_fit_input *input, const codebook_fit_options *opts,
                          codebook **out, alkfw_error *err);

#endif
