/*
 * firewall.h - internals of the firewall module shared by its files, the CLI and the
 * long-document screener: the handle's contents, the per-window screening step and the
 * pieces an alarm is made from.
 */
#ifndef ALKFW_FIREWALL_FIREWALL_H
#define ALKFW_FIREWALL_FIREWALL_H

#include "alkfw.h"
#include "codebook/codebook.h"

#include <stddef.h>
#include <stdint.h>

/* Most spans an alarm may be asked for; alkfw_options.max_spans is clamped to it. */
#define FIREWALL_MAX_SPANS 64

/* Size of the buffers for model and codebook ids. */
#define FIREWALL_ID_SIZE 256

struct alkfw_firewall {
    alkfw_model *model;
    alkfw_tokenizer *tokenizer;
    codebook *cb;
    alkfw_model_info info;
    alkfw_options opts;
    int *layers;       /* [cb->n_layers] the codebook's layers as alkfw_model_hidden wants them */
    size_t max_tokens; /* the effective cut: opts.max_tokens or the model's max positions */
    char model_id[FIREWALL_ID_SIZE];
    char codebook_id[FIREWALL_ID_SIZE];
    char fingerprint[CODEBOOK_FINGERPRINT_SIZE];
};

/* ---- building blocks reused by `build`, `eval`, `info` and the document screener ---------- */

/* Writes the fingerprint of the model in model_dir (DESIGN §4: "hidden:layers:vocab:sha256 of
 * the stored bytes of model.embed_tokens.weight") into out (CODEBOOK_FINGERPRINT_SIZE bytes),
 * reading the checkpoint's embedding tensor directly. info gives the dimensions. Errors:
 * ALKFW_ERR_IO / ALKFW_ERR_FORMAT from the checkpoint, ALKFW_ERR_FORMAT when it has no
 * model.embed_tokens.weight. */
alkfw_status firewall_model_fingerprint(const char *model_dir, const alkfw_model_info *info,
                                        char *out, alkfw_error *err);

/* The id a model directory is known by: the last component of its path ("stories260k"). */
void firewall_model_id(const char *model_dir, char *out, size_t size);

/* The id of a codebook file: its file name and the first 12 hex digits of the sha256 of its
 * bytes ("codebook.safetensors@3f2a9c01b2d4"). Errors: ALKFW_ERR_IO naming the path. */
alkfw_status firewall_codebook_id(const char *path, char *out, size_t size, alkfw_error *err);

/* Tokenizes as much of text as the firewall's window can use: a long input is cut (at a UTF-8
 * boundary) to a prefix whose encoding reaches the window plus a margin of tokens, so a huge
 * input costs no more than its first few kilobytes; *cut receives the bytes encoded (len when
 * the whole input was). The first max_tokens tokens equal those of the whole input's encoding,
 * since a cut only changes the tokens near it; n_special_in_text and n_replaced count the
 * prefix. The caller frees enc with alkfw_encoding_free. Errors: the tokenizer's. */
alkfw_status firewall_encode_prefix(const alkfw_firewall *fw, const char *text, size_t len,
                                    alkfw_encoding *enc, size_t *cut, alkfw_error *err);

/* ---- one window -------------------------------------------------------------------------- */

/* Screens the n_tokens ids of one window (positions 0..n_tokens-1, n_tokens >= 1 and at most
 * fw->max_tokens): runs the model over the codebook's layers and scores every position with
 * the firewall's options. On success res holds the per-token probabilities and the
 * aggregates; the caller releases it with codebook_result_free (also after a failure, which
 * leaves it empty). Thread-safe. Errors: ALKFW_ERR_ARGUMENT, the model's errors,
 * ALKFW_ERR_NOMEM. */
alkfw_status firewall_screen_window(const alkfw_firewall *fw, const int32_t *ids, size_t n_tokens,
                                    codebook_result *res, alkfw_error *err);

/* Fills the score part of alarm from a window's result: level, score, thresholds, directions
 * and the top spans (token_spans[t] is token t's byte span in the input, for the T tokens of
 * res). Leaves the token counts, ids and time to the caller. alarm must be empty. Errors:
 * ALKFW_ERR_NOMEM (alarm is then left for alkfw_alarm_free). */
alkfw_status firewall_alarm_fill(const alkfw_firewall *fw, const codebook_result *res,
                                 const alkfw_span *token_spans, alkfw_alarm *alarm,
                                 alkfw_error *err);

/* The thresholds the firewall applies: the options' overrides where set, else the
 * codebook's. This function can't fail. */
void firewall_thresholds(const alkfw_firewall *fw, double *suspicious, double *dangerous);

/* The codebook's scoring options for the firewall's settings, as alkfw_screen applies them to a
 * window and the document and stream paths to each of theirs. This function can't fail. */
void firewall_score_options(const alkfw_firewall *fw, codebook_score_options *so);

/* The level of a score by strict > against the thresholds. This function can't fail. */
alkfw_level firewall_level(double score, double suspicious, double dangerous);

/* The top spans of a result: for each output d (the anomaly included), runs of consecutive
 * scored tokens (from position `first` on) with alpha_d * P_d(t) > threshold, each run
 * covering the union of its tokens' byte spans (tokens with empty spans, like BOS, are
 * skipped), with p the highest P_d(t) in the run. Runs of all outputs are ranked by p, highest
 * first (ties: earlier start, then output order), and the first max_spans returned. On success
 * *out (NULL when there are none) is owned by the caller, who frees each direction string and
 * the array. Errors: ALKFW_ERR_NOMEM. */
alkfw_status firewall_spans(const codebook *cb, const codebook_result *res,
                            const alkfw_span *token_spans, size_t first, double threshold,
                            size_t max_spans, alkfw_alarm_span **out, size_t *n_out,
                            alkfw_error *err);

#endif
