/*
 * test_tokenizer_corpus.c - the conformance corpus: ids equal the Hugging Face references
 * for SmolLM2 (byte-level BPE) and stories260k (SentencePiece-style BPE) on every text of
 * labeled.jsonl and on the hand-made hard cases, and the byte spans tile the input.
 *
 * Fixtures: tests/fixtures/tokenizer/ (made by tools/tokref/make_reference.mjs) and the
 * Rust-produced ../shared/models/smollm2-135m/tokenizer-reference.json.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/test_util.h"

#include <cjson/cJSON.h>

#include "tokenizer/tokref.h"

#define FIXTURES ALKFW_SOURCE_DIR "/tests/fixtures/tokenizer"
#define SMOL_JSON ALKFW_SHARED_DIR "/models/smollm2-135m/tokenizer.json"
#define STORIES_JSON ALKFW_SOURCE_DIR "/models/stories260k/tokenizer.json"

typedef struct corpus_state {
    alkfw_tokenizer *smol, *stories;
    uint8_t smol_dropped[256];
} corpus_state;

static void find_dropped_bytes(const alkfw_tokenizer *tok, uint8_t dropped[256]);

static int setup(void **state)
{
    corpus_state *s = calloc(1, sizeof *s);
    alkfw_error err;
    if (alkfw_tokenizer_load(SMOL_JSON, &s->smol, &err) != ALKFW_OK ||
        alkfw_tokenizer_load(STORIES_JSON, &s->stories, &err) != ALKFW_OK) {
        fprintf(stderr, "cannot load tokenizers: %s\n", err.message);
        return -1;
    }
    find_dropped_bytes(s->smol, s->smol_dropped);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    corpus_state *s = *state;
    alkfw_tokenizer_free(s->smol);
    alkfw_tokenizer_free(s->stories);
    free(s);
    return 0;
}

/* Compares an encoding with a JSON list of ids; prints the first difference. Returns 1 when
 * equal. */
static int ids_equal(const alkfw_encoding *enc, const cJSON *want, const char *what,
                     const char *name)
{
    size_t n = (size_t)cJSON_GetArraySize(want);
    int ok = n == enc->n_tokens;
    for (size_t i = 0; ok && i < n; i++)
        ok = (int32_t)cJSON_GetArrayItem(want, (int)i)->valuedouble == enc->ids[i];
    if (!ok) {
        fprintf(stderr, "%s: case '%s': got %zu ids, want %zu:", what, name, enc->n_tokens, n);
        for (size_t i = 0; i < enc->n_tokens && i < 40; i++)
            fprintf(stderr, " %d", enc->ids[i]);
        fprintf(stderr, "\n   want:");
        for (size_t i = 0; i < n && i < 40; i++)
            fprintf(stderr, " %d", (int)cJSON_GetArrayItem(want, (int)i)->valuedouble);
        fprintf(stderr, "\n");
    }
    return ok;
}

/* The ByteLevel stand-in character of byte b (GPT-2's bytes_to_unicode). */
static int32_t bytelevel_char(int b)
{
    int n = 0;
    for (int x = 0; x < 256; x++) {
        int printable = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
        if (x == b)
            return printable ? x : 256 + n;
        n += !printable;
    }
    return -1;
}

/* Fills dropped[256]: 1 for bytes whose ByteLevel character has no token in tok. */
static void find_dropped_bytes(const alkfw_tokenizer *tok, uint8_t dropped[256])
{
    for (int b = 0; b < 256; b++) {
        int32_t cp = bytelevel_char(b);
        char u[3];
        size_t n = 1;
        if (cp < 0x80) {
            u[0] = (char)cp;
        } else {
            u[0] = (char)(0xC0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        }
        dropped[b] = alkfw_tokenizer_token_id(tok, u, n) < 0;
    }
}

/* Checks the span rules on one encoding of text[0..len): every span inside the input,
 * starts never decreasing, and, for valid UTF-8, the spans of text tokens tile the input
 * except for bytes marked in dropped (bytes a byte-level vocabulary cannot express, which
 * Hugging Face drops). */
static int spans_ok(const char *text, size_t len, const alkfw_encoding *enc, const uint8_t *dropped,
                    const char *name)
{
    size_t prev_start = 0, covered = 0;
    for (size_t i = 0; i < enc->n_tokens; i++) {
        alkfw_span sp = enc->spans[i];
        if (sp.start > sp.end || sp.end > len || sp.start < prev_start) {
            fprintf(stderr, "case '%s': token %zu has span [%zu, %zu) (input %zu bytes)\n", name, i,
                    sp.start, sp.end, len);
            return 0;
        }
        prev_start = sp.start;
        if (enc->n_replaced > 0 || sp.start == sp.end)
            continue;
        if (sp.start < covered) {
            fprintf(stderr, "case '%s': token %zu overlaps the previous one\n", name, i);
            return 0;
        }
        for (size_t b = covered; b < sp.start; b++) {
            if (dropped == NULL || !dropped[(uint8_t)text[b]]) {
                fprintf(stderr, "case '%s': byte %zu (0x%02x) is covered by no token\n", name, b,
                        (uint8_t)text[b]);
                return 0;
            }
        }
        covered = sp.end;
    }
    if (enc->n_replaced == 0) {
        for (size_t b = covered; b < len; b++) {
            if (dropped == NULL || !dropped[(uint8_t)text[b]]) {
                fprintf(stderr, "case '%s': trailing byte %zu is covered by no token\n", name, b);
                return 0;
            }
        }
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------- */

static void smollm2_matches_rust_reference_strings(void **state)
{
    corpus_state *s = *state;
    char *json =
        test_read_file(ALKFW_SHARED_DIR "/models/smollm2-135m/tokenizer-reference.json", NULL);
    assert_non_null(json);
    cJSON *root = cJSON_Parse(json);
    assert_true(cJSON_IsArray(root));
    int bad = 0, n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, root)
    {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        alkfw_encoding enc;
        assert_int_equal(alkfw_tokenizer_encode(s->smol, text, strlen(text), NULL, &enc, NULL),
                         ALKFW_OK);
        bad += !ids_equal(&enc, cJSON_GetObjectItem(c, "ids"), "smollm2 rust", text);
        alkfw_encoding_free(&enc);
        n++;
    }
    assert_int_equal(n, 15);
    assert_int_equal(bad, 0);
    cJSON_Delete(root);
    free(json);
}

/* Runs every hard case through one tokenizer, comparing ids and checking spans. */
static void check_hard_cases(const alkfw_tokenizer *tok, const char *key, const uint8_t *dropped)
{
    char *data = test_read_file(FIXTURES "/hard_cases.jsonl", NULL);
    assert_non_null(data);
    int bad = 0, n = 0;
    for (char *line = strtok(data, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        cJSON *c = cJSON_Parse(line);
        assert_non_null(c);
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *hex = cJSON_GetObjectItem(c, "hex");
        size_t len;
        char *text;
        if (hex != NULL) {
            text = tokref_unhex(hex->valuestring, &len);
        } else {
            text = strdup(cJSON_GetObjectItem(c, "text")->valuestring);
            len = strlen(text);
        }
        alkfw_encoding enc;
        assert_int_equal(alkfw_tokenizer_encode(tok, text, len, NULL, &enc, NULL), ALKFW_OK);
        int ok = ids_equal(&enc, cJSON_GetObjectItem(c, key), key, name);
        ok = ok && spans_ok(text, len, &enc, dropped, name);
        bad += !ok;
        n++;
        alkfw_encoding_free(&enc);
        free(text);
        cJSON_Delete(c);
    }
    fprintf(stderr, "%s: %d hard cases, %d differ\n", key, n, bad);
    assert_true(n > 900);
    assert_int_equal(bad, 0);
    free(data);
}

static void hard_cases_match_reference_smollm2(void **state)
{
    corpus_state *s = *state;
    check_hard_cases(s->smol, "smollm2", s->smol_dropped);
}

static void hard_cases_match_reference_stories260k(void **state)
{
    check_hard_cases(((corpus_state *)*state)->stories, "stories260k", NULL);
}

/* Every line of labeled.jsonl: token count and id hash equal the reference, and the first
 * 200 lines equal id for id. */
static void labeled_texts_match_reference_ids(void **state)
{
    corpus_state *s = *state;
    char *labeled = test_read_file(ALKFW_SHARED_DIR "/data/labeled.jsonl", NULL);
    char *ref = test_read_file(FIXTURES "/labeled_ids.jsonl", NULL);
    char *head = test_read_file(FIXTURES "/labeled_head.jsonl", NULL);
    assert_non_null(labeled);
    assert_non_null(ref);
    assert_non_null(head);

    char *save_l = NULL, *save_r = NULL, *save_h = NULL;
    char *l = strtok_r(labeled, "\n", &save_l), *r = strtok_r(ref, "\n", &save_r);
    char *h = strtok_r(head, "\n", &save_h);
    int n = 0, bad = 0;
    for (; l != NULL && r != NULL;
         l = strtok_r(NULL, "\n", &save_l), r = strtok_r(NULL, "\n", &save_r)) {
        cJSON *row = cJSON_Parse(l), *want = cJSON_Parse(r);
        cJSON *full = h != NULL ? cJSON_Parse(h) : NULL;
        const char *text = cJSON_GetObjectItem(row, "text")->valuestring;
        assert_int_equal((int)cJSON_GetObjectItem(want, "line")->valuedouble, n);
        const alkfw_tokenizer *toks[2] = {s->smol, s->stories};
        const char *keys[2] = {"smollm2", "stories260k"};
        for (int t = 0; t < 2; t++) {
            alkfw_encoding enc;
            assert_int_equal(alkfw_tokenizer_encode(toks[t], text, strlen(text), NULL, &enc, NULL),
                             ALKFW_OK);
            char nkey[32], hkey[32], hash[17];
            snprintf(nkey, sizeof nkey, "n_%s", keys[t]);
            snprintf(hkey, sizeof hkey, "h_%s", keys[t]);
            tokref_fnv64(enc.ids, enc.n_tokens, hash);
            int ok = (size_t)cJSON_GetObjectItem(want, nkey)->valuedouble == enc.n_tokens &&
                     strcmp(cJSON_GetObjectItem(want, hkey)->valuestring, hash) == 0;
            if (full != NULL)
                ok = ok && ids_equal(&enc, cJSON_GetObjectItem(full, keys[t]), keys[t], "head");
            ok = ok &&
                 spans_ok(text, strlen(text), &enc, t == 0 ? s->smol_dropped : NULL, "labeled");
            if (!ok)
                fprintf(stderr, "labeled.jsonl line %d differs for %s\n", n + 1, keys[t]);
            bad += !ok;
            alkfw_encoding_free(&enc);
        }
        cJSON_Delete(row);
        cJSON_Delete(want);
        if (full != NULL) {
            cJSON_Delete(full);
            h = strtok_r(NULL, "\n", &save_h);
        }
        n++;
    }
    fprintf(stderr, "labeled.jsonl: %d texts x 2 tokenizers, %d differ\n", n, bad);
    assert_null(l); /* the fixture covers every line */
    assert_null(r);
    assert_true(n >= 7000);
    assert_int_equal(bad, 0);
    free(labeled);
    free(ref);
    free(head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(smollm2_matches_rust_reference_strings),
        cmocka_unit_test(hard_cases_match_reference_smollm2),
        cmocka_unit_test(hard_cases_match_reference_stories260k),
        cmocka_unit_test(labeled_texts_match_reference_ids),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
