/*
 * test_tokenizer_unit.c - the parts of tokenizer.json one at a time: BPE model options,
 * added tokens, normalizers, pre-tokenizers, post-processor, decoders, loader errors,
 * invalid UTF-8, spans, round trips and concurrent use. Expected values follow the rules of
 * Hugging Face `tokenizers` (the Rust library), worked out by hand on tiny vocabularies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/test_util.h"

#include <cjson/cJSON.h>
#include <pthread.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/tokref.h"

#define SMOL_JSON ALKFW_SHARED_DIR "/models/smollm2-135m/tokenizer.json"
#define STORIES_JSON ALKFW_SOURCE_DIR "/models/stories260k/tokenizer.json"

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Loads a tokenizer.json given as text; fails the test when it does not load. */
static alkfw_tokenizer *load_text(const char *json)
{
    alkfw_tokenizer *tok = NULL;
    alkfw_error err = {0};
    alkfw_status st = alkfw_tokenizer_load_buffer(json, strlen(json), &tok, &err);
    if (st != ALKFW_OK)
        fprintf(stderr, "load failed: %s\n", err.message);
    assert_int_equal(st, ALKFW_OK);
    return tok;
}

/* Encodes text (NUL-terminated) and compares the ids with want[0..n). */
static void expect_ids(const alkfw_tokenizer *tok, const char *text, const int32_t *want, size_t n)
{
    alkfw_encoding enc;
    assert_int_equal(alkfw_tokenizer_encode(tok, text, strlen(text), NULL, &enc, NULL), ALKFW_OK);
    if (enc.n_tokens != n) {
        fprintf(stderr, "'%s': got", text);
        for (size_t i = 0; i < enc.n_tokens; i++)
            fprintf(stderr, " %d", enc.ids[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(enc.n_tokens, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(enc.ids[i], want[i]);
    alkfw_encoding_free(&enc);
}

#define EXPECT(tok, text, ...)                                                                     \
    do {                                                                                           \
        const int32_t want_[] = {__VA_ARGS__};                                                     \
        expect_ids(tok, text, want_, sizeof want_ / sizeof want_[0]);                              \
    } while (0)

/* A BPE tokenizer.json around a vocabulary, merges and optional extra top-level parts. */
static char *make_json(const char *model_extra, const char *vocab, const char *merges,
                       const char *rest)
{
    char *buf = malloc(8192);
    snprintf(buf, 8192,
             "{\"version\":\"1.0\",\"model\":{\"type\":\"BPE\",\"vocab\":{%s},\"merges\":[%s]%s%s}"
             "%s%s}",
             vocab, merges, model_extra[0] ? "," : "", model_extra, rest[0] ? "," : "", rest);
    return buf;
}

/* Runs the loaded pre-tokenizer of tok on text and compares the pieces with want. */
static void expect_pieces(const alkfw_tokenizer *tok, const char *text, const char **want, size_t n)
{
    tokenizer_pieces p = {0};
    assert_int_equal(tokenizer_nstr_append(&p.buf, text, strlen(text), 0, 0), 0);
    for (size_t i = 0; i < p.buf.len; i++) {
        p.buf.a0[i] = (uint32_t)i;
        p.buf.a1[i] = (uint32_t)i + 1;
    }
    assert_int_equal(tokenizer_pieces_push(&p, 0, p.buf.len), 0);
    assert_int_equal(tokenizer_pretokenize(tok->pretok, &p, NULL), ALKFW_OK);
    if (p.n != n) {
        fprintf(stderr, "'%s': %zu pieces:", text, p.n);
        for (size_t i = 0; i < p.n; i++)
            fprintf(stderr, " [%.*s]", (int)(p.end[i] - p.start[i]), p.buf.s + p.start[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(p.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(p.end[i] - p.start[i], strlen(want[i]));
        assert_memory_equal(p.buf.s + p.start[i], want[i], strlen(want[i]));
    }
    tokenizer_pieces_free(&p);
}

#define PIECES(tok, text, ...)                                                                     \
    do {                                                                                           \
        const char *want_[] = {__VA_ARGS__};                                                       \
        expect_pieces(tok, text, want_, sizeof want_ / sizeof want_[0]);                           \
    } while (0)

static const char *ABC_VOCAB = "\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4,\"abc\":5,\"aa\":6";

/* ---------------------------------------------------------------------------------------- */
/* BPE model                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void merges_in_both_serializations_give_the_same_ids(void **state)
{
    (void)state;
    char *j1 = make_json("", ABC_VOCAB, "\"a b\",\"ab c\"", "");
    char *j2 = make_json("", ABC_VOCAB, "[\"a\",\"b\"],[\"ab\",\"c\"]", "");
    alkfw_tokenizer *t1 = load_text(j1), *t2 = load_text(j2);
    EXPECT(t1, "abc", 5);
    EXPECT(t2, "abc", 5);
    EXPECT(t2, "cab", 2, 3);
    alkfw_tokenizer_free(t1);
    alkfw_tokenizer_free(t2);
    free(j1);
    free(j2);
}

static void lowest_rank_merges_first_and_leftmost_on_ties(void **state)
{
    (void)state;
    char *j = make_json("", ABC_VOCAB, "\"b c\",\"a b\",\"a a\"", "");
    alkfw_tokenizer *t = load_text(j);
    EXPECT(t, "abc", 0, 4); /* b c (rank 0) wins over a b (rank 1) */
    EXPECT(t, "aaa", 6, 0); /* equal ranks: the leftmost pair first */
    EXPECT(t, "aaaa", 6, 6);
    alkfw_tokenizer_free(t);
    free(j);
}

static void byte_fallback_spells_unknown_characters_in_byte_tokens(void **state)
{
    (void)state;
    char *j = make_json("\"byte_fallback\":true,\"unk_token\":\"<unk>\"",
                        "\"<unk>\":0,\"a\":1,\"<0xC3>\":2,\"<0xA9>\":3", "", "");
    alkfw_tokenizer *t = load_text(j);
    EXPECT(t, "a\xC3\xA9", 1, 2, 3); /* é has no token: its two bytes */
    EXPECT(t, "\xE2\x82\xAC", 0);    /* € lacks byte tokens: unknown */
    alkfw_tokenizer_free(t);
    free(j);
}

static void unknown_characters_fuse_only_when_fuse_unk(void **state)
{
    (void)state;
    char *j1 =
        make_json("\"unk_token\":\"<unk>\",\"fuse_unk\":true", "\"<unk>\":0,\"a\":1", "", "");
    char *j2 = make_json("\"unk_token\":\"<unk>\"", "\"<unk>\":0,\"a\":1", "", "");
    alkfw_tokenizer *t1 = load_text(j1), *t2 = load_text(j2);
    EXPECT(t1, "axya", 1, 0, 1);
    EXPECT(t2, "axya", 1, 0, 0, 1);
    alkfw_encoding enc;
    assert_int_equal(alkfw_tokenizer_encode(t1, "axya", 4, NULL, &enc, NULL), ALKFW_OK);
    assert_int_equal(enc.spans[1].start, 1); /* the fused unknown covers "xy" */
    assert_int_equal(enc.spans[1].end, 3);
    alkfw_encoding_free(&enc);
    alkfw_tokenizer_free(t1);
    alkfw_tokenizer_free(t2);
    free(j1);
    free(j2);
}

static void characters_without_token_or_unk_are_dropped(void **state)
{
    (void)state;
    char *j = make_json("", "\"a\":0,\"b\":1", "", "");
    alkfw_tokenizer *t = load_text(j);
    EXPECT(t, "axb", 0, 1);
    alkfw_tokenizer_free(t);
    free(j);
}

static void ignore_merges_takes_a_vocabulary_word_whole(void **state)
{
    (void)state;
    /* merges would give "ab" + "c"; with ignore_merges the word "abc" is one token */
    char *j1 = make_json("\"ignore_merges\":true", ABC_VOCAB, "\"a b\"", "");
    char *j2 = make_json("", ABC_VOCAB, "\"a b\"", "");
    alkfw_tokenizer *t1 = load_text(j1), *t2 = load_text(j2);
    EXPECT(t1, "abc", 5);
    EXPECT(t2, "abc", 3, 2);
    alkfw_tokenizer_free(t1);
    alkfw_tokenizer_free(t2);
    free(j1);
    free(j2);
}

/* ---------------------------------------------------------------------------------------- */
/* Added tokens                                                                              */
/* ---------------------------------------------------------------------------------------- */

static const char *ADDED_VOCAB = "\"a\":0,\"b\":1,\" \":2,\"<\":3,\">\":4,\"x\":5,\"h\":6,\"i\":7";

static char *added_json(const char *flags)
{
    char rest[1024];
    snprintf(rest, sizeof rest,
             "\"added_tokens\":[{\"id\":10,\"content\":\"<x>\",\"special\":true,"
             "\"normalized\":false%s}]",
             flags);
    return make_json("", ADDED_VOCAB, "", rest);
}

static void special_tokens_match_unless_plain_specials(void **state)
{
    (void)state;
    char *j = added_json("");
    alkfw_tokenizer *t = load_text(j);
    EXPECT(t, "a<x>b", 0, 10, 1);

    alkfw_encode_options o;
    alkfw_encode_options_init(&o);
    o.plain_specials = 1;
    alkfw_encoding enc;
    assert_int_equal(alkfw_tokenizer_encode(t, "a<x>b<x>", 8, &o, &enc, NULL), ALKFW_OK);
    assert_int_equal(enc.n_tokens, 8);
    assert_int_equal(enc.ids[1], 3);
    assert_int_equal(enc.n_special_in_text, 0);
    alkfw_encoding_free(&enc);

    assert_int_equal(alkfw_tokenizer_encode(t, "a<x>b<x>", 8, NULL, &enc, NULL), ALKFW_OK);
    assert_int_equal(enc.n_special_in_text, 2);
    assert_int_equal(enc.spans[1].start, 1);
    assert_int_equal(enc.spans[1].end, 4);
    alkfw_encoding_free(&enc);
    assert_true(alkfw_tokenizer_is_special(t, 10));
    assert_false(alkfw_tokenizer_is_special(t, 0));
    assert_int_equal(alkfw_tokenizer_token_id(t, "<x>", 3), 10);
    assert_int_equal(alkfw_tokenizer_vocab_size(t), 11);
    alkfw_tokenizer_free(t);
    free(j);
}

static void lstrip_and_rstrip_absorb_neighbouring_spaces(void **state)
{
    (void)state;
    char *j = added_json(",\"lstrip\":true,\"rstrip\":true");
    alkfw_tokenizer *t = load_text(j);
    alkfw_encoding enc;
    assert_int_equal(alkfw_tokenizer_encode(t, "a  <x>  b", 9, NULL, &enc, NULL), ALKFW_OK);
    assert_int_equal(enc.n_tokens, 3);
    assert_int_equal(enc.ids[1], 10);
    assert_int_equal(enc.spans[1].start, 1);
    assert_int_equal(enc.spans[1].end, 8);
    alkfw_encoding_free(&enc);
    alkfw_tokenizer_free(t);
    free(j);
}

static void single_word_tokens_match_only_whole_words(void **state)
{
    (void)state;
    char *j = make_json("", ADDED_VOCAB, "",
                        "\"added_tokens\":[{\"id\":10,\"content\":\"hi\",\"special\":false,"
                        "\"single_word\":true,\"normalized\":false}]");
    alkfw_tokenizer *t = load_text(j);
    EXPECT(t, "a hi b", 0, 2, 10, 2, 1);
    EXPECT(t, "ahi", 0, 6, 7);
    alkfw_tokenizer_free(t);
    free(j);
}

static void normalized_added_tokens_match_after_normalization(void **state)
{
    (void)state;
    char *j = make_json("", ADDED_VOCAB, "",
                        "\"normalizer\":{\"type\":\"Lowercase\"},"
                        "\"added_tokens\":[{\"id\":10,\"content\":\"hi\",\"special\":false,"
                        "\"normalized\":true}]");
    alkfw_tokenizer *t = load_text(j);
    EXPECT(t, "aHIb", 0, 10, 1);
    alkfw_tokenizer_free(t);
    free(j);
}

/* ---------------------------------------------------------------------------------------- */
/* Normalizers                                                                               */
/* ---------------------------------------------------------------------------------------- */

static void normalizers_rewrite_text_and_keep_spans(void **state)
{
    (void)state;
    const char *vocab = "\"a\":0,\"b\":1,\"f\":2,\"i\":3,\"x\":4,\"A\":5,\" \":6,\"\xC3\xA9\":7,"
                        "\"e\":8,\"\xCC\x81\":9";
    char *j = make_json(
        "", vocab, "",
        "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},"
        "{\"type\":\"Lowercase\"},{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true},"
        "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"b+\"},\"content\":\"x\"}]}");
    alkfw_tokenizer *t = load_text(j);
    EXPECT(t, "  AbbB\xEF\xAC\x81  ", 0, 4, 2, 3); /* ﬁ -> fi under NFKC */
    alkfw_encoding enc;
    const char *text = "  AbbB\xEF\xAC\x81  ";
    assert_int_equal(alkfw_tokenizer_encode(t, text, strlen(text), NULL, &enc, NULL), ALKFW_OK);
    assert_int_equal(enc.spans[0].start, 2); /* "a" came from "A" */
    assert_int_equal(enc.spans[0].end, 3);
    assert_int_equal(enc.spans[1].start, 3); /* "x" replaced "bbB" */
    assert_int_equal(enc.spans[1].end, 6);
    assert_int_equal(enc.spans[2].start, 6); /* "f" and "i" both cover the ligature */
    assert_int_equal(enc.spans[3].end, 9);
    alkfw_encoding_free(&enc);
    alkfw_tokenizer_free(t);
    free(j);

    j = make_json("", vocab, "", "\"normalizer\":{\"type\":\"NFC\"}");
    t = load_text(j);
    EXPECT(t, "e\xCC\x81", 7); /* e + combining acute composes to é */
    alkfw_tokenizer_free(t);
    free(j);
    j = make_json("", vocab, "", "\"normalizer\":{\"type\":\"NFD\"}");
    t = load_text(j);
    EXPECT(t, "\xC3\xA9", 8, 9);
    alkfw_tokenizer_free(t);
    free(j);
}

static void prepend_and_replace_make_sentencepiece_spaces(void **state)
{
    (void)state;
    alkfw_tokenizer *t;
    alkfw_error err;
    assert_int_equal(alkfw_tokenizer_load(STORIES_JSON, &t, &err), ALKFW_OK);
    alkfw_encoding enc;
    assert_int_equal(alkfw_tokenizer_encode(t, "Hello", 5, NULL, &enc, NULL), ALKFW_OK);
    /* <s> from the template, then "▁H" "el" "lo"-like pieces; BOS has an empty span at 0 */
    assert_int_equal(enc.ids[0], 1);
    assert_int_equal(enc.spans[0].start, 0);
    assert_int_equal(enc.spans[0].end, 0);
    assert_int_equal(enc.spans[1].start, 0);
    assert_int_equal(enc.spans[enc.n_tokens - 1].end, 5);
    alkfw_encoding_free(&enc);

    alkfw_encode_options o;
    alkfw_encode_options_init(&o);
    o.add_special_tokens = 0;
    assert_int_equal(alkfw_tokenizer_encode(t, "Hello", 5, &o, &enc, NULL), ALKFW_OK);
    assert_int_not_equal(enc.ids[0], 1);
    alkfw_encoding_free(&enc);
    alkfw_tokenizer_free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* Pre-tokenizers                                                                            */
/* ---------------------------------------------------------------------------------------- */

static alkfw_tokenizer *with_pretok(const char *pretok)
{
    char rest[1024];
    snprintf(rest, sizeof rest, "\"pre_tokenizer\":%s", pretok);
    char *j = make_json("", "\"a\":0", "", rest);
    alkfw_tokenizer *t = load_text(j);
    free(j);
    return t;
}

static void split_follows_each_delimiter_behavior(void **state)
{
    (void)state;
    static const char *fmt =
        "{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"%s\",\"invert\":%s}";
    char b[256];
    alkfw_tokenizer *t;
#define WITH(beh, inv)                                                                             \
    snprintf(b, sizeof b, fmt, beh, inv);                                                          \
    t = with_pretok(b)
    WITH("Removed", "false");
    PIECES(t, "a-b--c", "a", "b", "c");
    alkfw_tokenizer_free(t);
    WITH("Isolated", "false");
    PIECES(t, "a-b--c", "a", "-", "b", "-", "-", "c");
    alkfw_tokenizer_free(t);
    WITH("MergedWithPrevious", "false");
    PIECES(t, "a-b--c", "a-", "b-", "-", "c");
    alkfw_tokenizer_free(t);
    WITH("MergedWithNext", "false");
    PIECES(t, "a-b--c", "a", "-b", "-", "-c");
    alkfw_tokenizer_free(t);
    WITH("Contiguous", "false");
    PIECES(t, "a-b--c", "a", "-", "b", "--", "c");
    alkfw_tokenizer_free(t);
    WITH("Removed", "true");
    PIECES(t, "a-b--c", "-", "-", "-");
    alkfw_tokenizer_free(t);
#undef WITH
    t = with_pretok("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},"
                    "\"behavior\":\"Isolated\",\"invert\":false}");
    PIECES(t, "ab12345c", "ab", "123", "45", "c");
    alkfw_tokenizer_free(t);
}

static void bytelevel_digits_whitespace_and_metaspace_cut_as_the_reference(void **state)
{
    (void)state;
    alkfw_tokenizer *t = with_pretok("{\"type\":\"ByteLevel\",\"add_prefix_space\":false}");
    /* a whitespace run gives its last character to the word that follows */
    PIECES(t, "Hello world's  3.14\n\nok  ", "Hello", " world", "'s", " ", " 3", ".", "14", "\n",
           "\n", "ok", "  ");
    PIECES(t, "IT'S it's", "IT", "'", "S", " it", "'s");
    alkfw_tokenizer_free(t);

    t = with_pretok("{\"type\":\"ByteLevel\",\"add_prefix_space\":true}");
    PIECES(t, "hi there", " hi", " there");
    alkfw_tokenizer_free(t);

    t = with_pretok("{\"type\":\"Digits\",\"individual_digits\":false}");
    PIECES(t, "ab123cd4", "ab", "123", "cd", "4");
    alkfw_tokenizer_free(t);
    t = with_pretok("{\"type\":\"Digits\",\"individual_digits\":true}");
    PIECES(t, "a12\xC2\xBD", "a", "1", "2", "\xC2\xBD"); /* ½ is numeric (No) */
    alkfw_tokenizer_free(t);

    t = with_pretok("{\"type\":\"Whitespace\"}");
    PIECES(t, "Hey, friend!  ok", "Hey", ",", "friend", "!", "ok");
    alkfw_tokenizer_free(t);
    t = with_pretok("{\"type\":\"WhitespaceSplit\"}");
    PIECES(t, "Hey, friend!  ok", "Hey,", "friend!", "ok");
    alkfw_tokenizer_free(t);

    t = with_pretok("{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\","
                    "\"prepend_scheme\":\"always\",\"split\":true}");
    PIECES(t, "Hey friend", "\xE2\x96\x81Hey",
           "\xE2\x96\x81"
           "friend");
    alkfw_tokenizer_free(t);
    t = with_pretok("{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\","
                    "\"prepend_scheme\":\"never\",\"split\":false}");
    PIECES(t, "Hey friend",
           "Hey\xE2\x96\x81"
           "friend");
    alkfw_tokenizer_free(t);
}

/* ---------------------------------------------------------------------------------------- */
/* Loader errors                                                                             */
/* ---------------------------------------------------------------------------------------- */

static void expect_load_error(const char *json, alkfw_status status, const char *needle)
{
    alkfw_tokenizer *t = NULL;
    alkfw_error err = {0};
    assert_int_equal(alkfw_tokenizer_load_buffer(json, strlen(json), &t, &err), status);
    assert_null(t);
    if (strstr(err.message, needle) == NULL)
        fprintf(stderr, "message '%s' lacks '%s'\n", err.message, needle);
    assert_non_null(strstr(err.message, needle));
}

static void loader_errors_name_what_is_wrong(void **state)
{
    (void)state;
    expect_load_error("{", ALKFW_ERR_FORMAT, "not valid JSON");
    expect_load_error("{\"model\": \"\xC3(\"}", ALKFW_ERR_FORMAT, "byte 11 is not valid UTF-8");
    expect_load_error("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", ALKFW_ERR_UNSUPPORTED,
                      "model type 'WordPiece'");
    char *j = make_json("", ABC_VOCAB, "\"a b\",\"a zz\"", "");
    expect_load_error(j, ALKFW_ERR_FORMAT, "merges[1] refers to unknown token 'zz'");
    free(j);
    j = make_json("", "\"a\":0,\"b\":1", "\"a b\"", "");
    expect_load_error(j, ALKFW_ERR_FORMAT, "merges[0] makes 'ab'");
    free(j);
    j = make_json("", ABC_VOCAB, "", "\"normalizer\":{\"type\":\"BertNormalizer\"}");
    expect_load_error(j, ALKFW_ERR_UNSUPPORTED, "normalizer type 'BertNormalizer'");
    free(j);
    j = make_json("", ABC_VOCAB, "", "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"}");
    expect_load_error(j, ALKFW_ERR_UNSUPPORTED, "pre-tokenizer type 'BertPreTokenizer'");
    free(j);
    j = make_json("", ABC_VOCAB, "", "\"decoder\":{\"type\":\"WordPiece\"}");
    expect_load_error(j, ALKFW_ERR_UNSUPPORTED, "decoder type 'WordPiece'");
    free(j);
    j = make_json("", ABC_VOCAB, "", "\"post_processor\":{\"type\":\"BertProcessing\"}");
    expect_load_error(j, ALKFW_ERR_UNSUPPORTED, "post-processor type 'BertProcessing'");
    free(j);
    j = make_json("", "\"a\":-4", "", "");
    expect_load_error(j, ALKFW_ERR_FORMAT, "model.vocab['a']");
    free(j);
    j = make_json("", ABC_VOCAB, "",
                  "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},"
                  "\"behavior\":\"Isolated\"}");
    expect_load_error(j, ALKFW_ERR_FORMAT, "regex does not compile");
    free(j);
    j = make_json("\"unk_token\":\"<nope>\"", ABC_VOCAB, "", "");
    expect_load_error(j, ALKFW_ERR_FORMAT, "unk_token '<nope>'");
    free(j);

    alkfw_tokenizer *t;
    alkfw_error err;
    assert_int_equal(alkfw_tokenizer_load("/nonexistent/tokenizer.json", &t, &err), ALKFW_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/tokenizer.json"));
}

/* ---------------------------------------------------------------------------------------- */
/* Real tokenizers: invalid UTF-8, spans, decode                                             */
/* ---------------------------------------------------------------------------------------- */

typedef struct real_state {
    alkfw_tokenizer *smol, *stories;
} real_state;

static int real_setup(void **state)
{
    real_state *s = calloc(1, sizeof *s);
    if (alkfw_tokenizer_load(SMOL_JSON, &s->smol, NULL) != ALKFW_OK ||
        alkfw_tokenizer_load(STORIES_JSON, &s->stories, NULL) != ALKFW_OK)
        return -1;
    *state = s;
    return 0;
}

static int real_teardown(void **state)
{
    real_state *s = *state;
    alkfw_tokenizer_free(s->smol);
    alkfw_tokenizer_free(s->stories);
    free(s);
    return 0;
}

static void invalid_utf8_is_replaced_and_spans_point_at_the_raw_bytes(void **state)
{
    real_state *s = *state;
    const char text[] = "ab\xFF\xC3 cd\xE2\x82";
    alkfw_encoding enc;
    assert_int_equal(alkfw_tokenizer_encode(s->smol, text, sizeof text - 1, NULL, &enc, NULL),
                     ALKFW_OK);
    assert_int_equal(enc.n_replaced, 3); /* FF, a lone C3, a truncated E2 82 */
    for (size_t i = 0; i < enc.n_tokens; i++) {
        assert_true(enc.spans[i].end <= sizeof text - 1);
        assert_true(enc.spans[i].start <= enc.spans[i].end);
    }
    assert_int_equal(enc.spans[enc.n_tokens - 1].end, sizeof text - 1);

    /* the same ids as the text with U+FFFD written out */
    const char *fixed = "ab\xEF\xBF\xBD\xEF\xBF\xBD cd\xEF\xBF\xBD";
    alkfw_encoding ref;
    assert_int_equal(alkfw_tokenizer_encode(s->smol, fixed, strlen(fixed), NULL, &ref, NULL),
                     ALKFW_OK);
    assert_int_equal(ref.n_tokens, enc.n_tokens);
    assert_memory_equal(ref.ids, enc.ids, enc.n_tokens * sizeof *enc.ids);
    assert_int_equal(ref.n_replaced, 0);
    alkfw_encoding_free(&ref);
    alkfw_encoding_free(&enc);
}

static void bytelevel_spans_split_multibyte_characters_exactly(void **state)
{
    real_state *s = *state;
    alkfw_encoding enc;
    const char *text = "\xE3\x81\x82"; /* あ: two tokens, reference ids 7365 220 */
    assert_int_equal(alkfw_tokenizer_encode(s->smol, text, 3, NULL, &enc, NULL), ALKFW_OK);
    assert_int_equal(enc.n_tokens, 2);
    assert_int_equal(enc.ids[0], 7365);
    assert_int_equal(enc.spans[0].start, 0);
    assert_int_equal(enc.spans[0].end, 2);
    assert_int_equal(enc.spans[1].start, 2);
    assert_int_equal(enc.spans[1].end, 3);
    alkfw_encoding_free(&enc);
}

/* decode(encode(x)) == x over the hard cases where Hugging Face guarantees it: valid UTF-8,
 * no special-token text, every byte expressible (SmolLM2), no literal "▁" (stories260k). */
static void decode_inverts_encode_on_the_hard_cases(void **state)
{
    real_state *s = *state;
    char *data =
        test_read_file(ALKFW_SOURCE_DIR "/tests/fixtures/tokenizer/hard_cases.jsonl", NULL);
    assert_non_null(data);
    int checked = 0, bad = 0;
    for (char *line = strtok(data, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        cJSON *c = cJSON_Parse(line);
        const cJSON *text = cJSON_GetObjectItem(c, "text");
        if (!cJSON_IsString(text) || strchr(text->valuestring, '<') != NULL ||
            strstr(text->valuestring, "\xE2\x96\x81") != NULL ||
            cJSON_GetObjectItem(c, "smollm2_js") != NULL) {
            cJSON_Delete(c);
            continue;
        }
        const char *x = text->valuestring;
        const alkfw_tokenizer *toks[2] = {s->smol, s->stories};
        for (int k = 0; k < 2; k++) {
            alkfw_encoding enc;
            char *back = NULL;
            assert_int_equal(alkfw_tokenizer_encode(toks[k], x, strlen(x), NULL, &enc, NULL),
                             ALKFW_OK);
            assert_int_equal(alkfw_tokenizer_decode(toks[k], enc.ids, enc.n_tokens, 1, &back, NULL),
                             ALKFW_OK);
            if (strcmp(back, x) != 0) {
                fprintf(stderr, "tokenizer %d: '%s' decodes to '%s'\n", k, x, back);
                bad++;
            }
            checked++;
            free(back);
            alkfw_encoding_free(&enc);
        }
        cJSON_Delete(c);
    }
    fprintf(stderr, "%d round trips checked\n", checked);
    assert_true(checked > 1500);
    assert_int_equal(bad, 0);
    free(data);
}

static void decoders_follow_the_reference_rules(void **state)
{
    real_state *s = *state;
    char *out = NULL;
    /* ByteFallback: bytes that are not UTF-8 become one U+FFFD each */
    int32_t bad[] = {1, 3 + 0xC3, 3 + 0x28};
    assert_int_equal(alkfw_tokenizer_decode(s->stories, bad, 3, 1, &out, NULL), ALKFW_OK);
    assert_string_equal(out, "\xEF\xBF\xBD\xEF\xBF\xBD");
    free(out);
    int32_t good[] = {1, 3 + 0xC3, 3 + 0xA9};
    assert_int_equal(alkfw_tokenizer_decode(s->stories, good, 3, 0, &out, NULL), ALKFW_OK);
    assert_string_equal(out, "<s>\xC3\xA9");
    free(out);
    /* ByteLevel: a token split inside a character rejoins */
    int32_t a[] = {7365, 220, 999999, -1};
    assert_int_equal(alkfw_tokenizer_decode(s->smol, a, 4, 0, &out, NULL), ALKFW_OK);
    assert_string_equal(out, "\xE3\x81\x82");
    free(out);
    assert_int_equal(alkfw_tokenizer_decode(s->smol, NULL, 0, 0, &out, NULL), ALKFW_OK);
    assert_string_equal(out, "");
    free(out);
}

/* ---------------------------------------------------------------------------------------- */
/* Large inputs and threads                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Long inputs stay linear-logarithmic (bench/tokenize times 1 MB); here 256 KB checks that
 * they encode with sound spans. */
static void long_words_without_spaces_encode_with_sound_spans(void **state)
{
    real_state *s = *state;
    size_t n = 256 * 1024;
    char *text = malloc(n);
    unsigned x = 7;
    for (int variant = 0; variant < 2; variant++) {
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            text[i] = variant ? 'a' : (char)('a' + (x >> 16) % 26);
        }
        const alkfw_tokenizer *toks[2] = {s->smol, s->stories};
        for (int k = 0; k < 2; k++) {
            alkfw_encoding enc;
            assert_int_equal(alkfw_tokenizer_encode(toks[k], text, n, NULL, &enc, NULL), ALKFW_OK);
            size_t covered = 0;
            for (size_t i = 0; i < enc.n_tokens; i++) {
                if (enc.spans[i].start == enc.spans[i].end)
                    continue;
                assert_int_equal(enc.spans[i].start, covered);
                covered = enc.spans[i].end;
            }
            assert_int_equal(covered, n);
            alkfw_encoding_free(&enc);
        }
    }
    free(text);
}

typedef struct thread_job {
    const alkfw_tokenizer *tok;
    char *labeled;
    size_t len;
    uint64_t digest;
} thread_job;

/* Encodes the first lines of labeled.jsonl and folds the ids into a digest. */
static void *thread_run(void *arg)
{
    thread_job *j = arg;
    uint64_t d = 1469598103934665603ULL;
    const char *p = j->labeled;
    for (int line = 0; line < 400 && p < j->labeled + j->len; line++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        alkfw_encoding enc;
        if (alkfw_tokenizer_encode(j->tok, p, n, NULL, &enc, NULL) == ALKFW_OK) {
            for (size_t i = 0; i < enc.n_tokens; i++)
                d = (d ^ (uint64_t)enc.ids[i]) * 1099511628211ULL;
            alkfw_encoding_free(&enc);
        }
        p += n + 1;
    }
    j->digest = d;
    return NULL;
}

static void one_tokenizer_serves_many_threads_with_identical_results(void **state)
{
    real_state *s = *state;
    size_t len = 0;
    char *labeled = test_read_file(ALKFW_SHARED_DIR "/data/labeled.jsonl", &len);
    assert_non_null(labeled);
    alkfw_tokenizer *fresh;
    assert_int_equal(alkfw_tokenizer_load(SMOL_JSON, &fresh, NULL), ALKFW_OK);
    thread_job ref = {s->smol, labeled, len, 0};
    thread_run(&ref); /* warm cache */
    thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){fresh, labeled, len, 0}; /* cold cache, filled concurrently */
        assert_int_equal(pthread_create(&th[i], NULL, thread_run, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].digest == ref.digest);
    }
    alkfw_tokenizer_free(fresh);
    free(labeled);
}

int main(void)
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(merges_in_both_serializations_give_the_same_ids),
        cmocka_unit_test(lowest_rank_merges_first_and_leftmost_on_ties),
        cmocka_unit_test(byte_fallback_spells_unknown_characters_in_byte_tokens),
        cmocka_unit_test(unknown_characters_fuse_only_when_fuse_unk),
        cmocka_unit_test(characters_without_token_or_unk_are_dropped),
        cmocka_unit_test(ignore_merges_takes_a_vocabulary_word_whole),
        cmocka_unit_test(special_tokens_match_unless_plain_specials),
        cmocka_unit_test(lstrip_and_rstrip_absorb_neighbouring_spaces),
        cmocka_unit_test(single_word_tokens_match_only_whole_words),
        cmocka_unit_test(normalized_added_tokens_match_after_normalization),
        cmocka_unit_test(normalizers_rewrite_text_and_keep_spans),
        cmocka_unit_test(prepend_and_replace_make_sentencepiece_spaces),
        cmocka_unit_test(split_follows_each_delimiter_behavior),
        cmocka_unit_test(bytelevel_digits_whitespace_and_metaspace_cut_as_the_reference),
        cmocka_unit_test(loader_errors_name_what_is_wrong),
    };
    const struct CMUnitTest real[] = {
        cmocka_unit_test(invalid_utf8_is_replaced_and_spans_point_at_the_raw_bytes),
        cmocka_unit_test(bytelevel_spans_split_multibyte_characters_exactly),
        cmocka_unit_test(decode_inverts_encode_on_the_hard_cases),
        cmocka_unit_test(decoders_follow_the_reference_rules),
        cmocka_unit_test(long_words_without_spaces_encode_with_sound_spans),
        cmocka_unit_test(one_tokenizer_serves_many_threads_with_identical_results),
    };
    int failed = cmocka_run_group_tests_name("tokenizer parts", unit, NULL, NULL);
    failed += cmocka_run_group_tests_name("real tokenizers", real, real_setup, real_teardown);
    return failed;
}
