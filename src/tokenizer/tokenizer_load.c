/*
 * tokenizer_load.c - reading tokenizer.json (Hugging Face `tokenizers` format) into an
 * alkfw_tokenizer. The file is untrusted: every field is type-checked, every id range
 * checked, and any component this implementation does not know is an error naming it.
 */
#include "tokenizer/tokenizer_internal.h"

#include "common/error.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids above this are refused: no real vocabulary comes near, and it bounds the id table. */
#define TOKENIZER_MAX_ID (1 << 24)

/* ---------------------------------------------------------------------------------------- */
/* JSON helpers                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* A boolean field: absent or null gives def; anything but a boolean is an error (-1). */
static int json_bool(const cJSON *obj, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL || cJSON_IsNull(v))
        return def;
    if (!cJSON_IsBool(v))
        return -1;
    return cJSON_IsTrue(v) ? 1 : 0;
}

/* A string field, or NULL when absent or not a string. */
static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static alkfw_status nomem(alkfw_error *err)
{
    return error_set(err, ALKFW_ERR_NOMEM, "tokenizer.json: out of memory");
}

/* Reads a {"String": s} or {"Regex": r} pattern into p. */
static alkfw_status parse_pattern(const cJSON *obj, const char *where, tokenizer_pattern *p,
                                  alkfw_error *err)
{
    memset(p, 0, sizeof *p);
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(obj, "pattern");
    if (!cJSON_IsObject(pat))
        return error_set(err, ALKFW_ERR_FORMAT, "%s: 'pattern' must be an object", where);
    const char *lit = json_str(pat, "String");
    const char *re = json_str(pat, "Regex");
    if (lit != NULL) {
        p->literal_len = strlen(lit);
        p->literal = dup_bytes(lit, p->literal_len);
        return p->literal ? ALKFW_OK : nomem(err);
    }
    if (re != NULL) {
        p->re = tokenizer_regex_compile(re, strlen(re), where, err);
        return p->re ? ALKFW_OK : (err ? err->status : ALKFW_ERR_FORMAT);
    }
    return error_set(err, ALKFW_ERR_FORMAT, "%s: pattern needs 'String' or 'Regex'", where);
}

/* Copies a one-character replacement string (Metaspace) into out. */
static alkfw_status parse_replacement(const cJSON *obj, const char *where, char *out,
                                      size_t *out_len, alkfw_error *err)
{
    const char *r = json_str(obj, "replacement");
    if (r == NULL)
        r = "\xE2\x96\x81"; /* U+2581 */
    size_t n = strlen(r);
    if (n == 0 || n > 4)
        return error_set(err, ALKFW_ERR_FORMAT, "%s: 'replacement' must be one character", where);
    memcpy(out, r, n);
    out[n] = '\0';
    *out_len = n;
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Normalizers                                                                               */
/* ---------------------------------------------------------------------------------------- */

static alkfw_status parse_normalizer(const cJSON *j, tokenizer_normalizer *n, const char *where,
                                     alkfw_error *err)
{
    memset(n, 0, sizeof *n);
    const char *type = json_str(j, "type");
    if (type == NULL)
        return error_set(err, ALKFW_ERR_FORMAT, "%s: missing 'type'", where);

    if (strcmp(type, "Sequence") == 0) {
        n->kind = TOKENIZER_NORM_SEQUENCE;
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
        if (!cJSON_IsArray(items))
            return error_set(err, ALKFW_ERR_FORMAT, "%s: Sequence needs 'normalizers'", where);
        size_t count = (size_t)cJSON_GetArraySize(items);
        n->items = calloc(count ? count : 1, sizeof *n->items);
        if (n->items == NULL)
            return nomem(err);
        const cJSON *it;
        cJSON_ArrayForEach(it, items)
        {
            char sub[200];
            snprintf(sub, sizeof sub, "%s[%zu]", where, n->n_items);
            alkfw_status st = parse_normalizer(it, &n->items[n->n_items++], sub, err);
            if (st != ALKFW_OK)
                return st;
        }
        return ALKFW_OK;
    }
    if (strcmp(type, "Prepend") == 0) {
        n->kind = TOKENIZER_NORM_PREPEND;
        const char *t = json_str(j, "prepend");
        if (t == NULL)
            return error_set(err, ALKFW_ERR_FORMAT, "%s: Prepend needs 'prepend'", where);
        n->text_len = strlen(t);
        n->text = dup_bytes(t, n->text_len);
        return n->text ? ALKFW_OK : nomem(err);
    }
    if (strcmp(type, "Replace") == 0) {
        n->kind = TOKENIZER_NORM_REPLACE;
        const char *t = json_str(j, "content");
        if (t == NULL)
            return error_set(err, ALKFW_ERR_FORMAT, "%s: Replace needs 'content'", where);
        n->text_len = strlen(t);
        n->text = dup_bytes(t, n->text_len);
        if (n->text == NULL)
            return nomem(err);
        return parse_pattern(j, where, &n->pattern, err);
    }
    if (strcmp(type, "Strip") == 0) {
        n->kind = TOKENIZER_NORM_STRIP;
        n->left = json_bool(j, "strip_left", 1);
        n->right = json_bool(j, "strip_right", 1);
        if (n->left < 0 || n->right < 0)
            return error_set(err, ALKFW_ERR_FORMAT, "%s: Strip flags must be booleans", where);
        return ALKFW_OK;
    }
    static const struct {
        const char *name;
        tokenizer_norm_kind kind;
    } simple[] = {{"NFC", TOKENIZER_NORM_NFC},
                  {"NFD", TOKENIZER_NORM_NFD},
                  {"NFKC", TOKENIZER_NORM_NFKC},
                  {"NFKD", TOKENIZER_NORM_NFKD},
                  {"Lowercase", TOKENIZER_NORM_LOWERCASE}};
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
        if (strcmp(type, simple[i].name) == 0) {
            n->kind = simple[i].kind;
            return ALKFW_OK;
        }
    }
    return error_set(err, ALKFW_ERR_UNSUPPORTED, "%s: normalizer type '%s' is not supported", where,
                     type);
}

/* ---------------------------------------------------------------------------------------- */
/* Pre-tokenizers                                                                            */
/* ---------------------------------------------------------------------------------------- */

static alkfw_status parse_pretok(const cJSON *j, tokenizer_pretok *p, const char *where,
                                 alkfw_error *err)
{
    memset(p, 0, sizeof *p);
    const char *type = json_str(j, "type");
    if (type == NULL)
        return error_set(err, ALKFW_ERR_FORMAT, "%s: missing 'type'", where);

    if (strcmp(type, "Sequence") == 0) {
        p->kind = TOKENIZER_PRE_SEQUENCE;
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
        if (!cJSON_IsArray(items))
            return error_set(err, ALKFW_ERR_FORMAT, "%s: Sequence needs 'pretokenizers'", where);
        size_t count = (size_t)cJSON_GetArraySize(items);
        p->items = calloc(count ? count : 1, sizeof *p->items);
        if (p->items == NULL)
            return nomem(err);
        const cJSON *it;
        cJSON_ArrayForEach(it, items)
        {
            char sub[200];
            snprintf(sub, sizeof sub, "%s[%zu]", where, p->n_items);
            alkfw_status st = parse_pretok(it, &p->items[p->n_items++], sub, err);
            if (st != ALKFW_OK)
                return st;
        }
        return ALKFW_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        p->kind = TOKENIZER_PRE_BYTELEVEL;
        p->add_prefix_space = json_bool(j, "add_prefix_space", 1);
        p->use_regex = json_bool(j, "use_regex", 1);
        if (p->add_prefix_space < 0 || p->use_regex < 0)
            return error_set(err, ALKFW_ERR_FORMAT, "%s: ByteLevel flags must be booleans", where);
        return ALKFW_OK;
    }
    if (strcmp(type, "Digits") == 0) {
        p->kind = TOKENIZER_PRE_DIGITS;
        p->individual_digits = json_bool(j, "individual_digits", 0);
        if (p->individual_digits < 0)
            return error_set(err, ALKFW_ERR_FORMAT, "%s: individual_digits must be a boolean",
                             where);
        return ALKFW_OK;
    }
    if (strcmp(type, "Split") == 0) {
        p->kind = TOKENIZER_PRE_SPLIT;
        static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                      "Contiguous"};
        const char *b = json_str(j, "behavior");
        int found = -1;
        for (int i = 0; b != NULL && i < 5; i++) {
            if (strcmp(b, names[i]) == 0)
                found = i;
        }
        if (found < 0)
            return error_set(err, ALKFW_ERR_FORMAT, "%s: Split behavior '%s' is not known", where,
                             b ? b : "(missing)");
        p->behavior = (tokenizer_split_behavior)found;
        p->invert = json_bool(j, "invert", 0);
        if (p->invert < 0)
            return error_set(err, ALKFW_ERR_FORMAT, "%s: invert must be a boolean", where);
        return parse_pattern(j, where, &p->pattern, err);
    }
    if (strcmp(type, "Metaspace") == 0) {
        p->kind = TOKENIZER_PRE_METASPACE;
        alkfw_status st = parse_replacement(j, where, p->replacement, &p->replacement_len, err);
        if (st != ALKFW_OK)
            return st;
        const char *scheme = json_str(j, "prepend_scheme");
        int aps = json_bool(j, "add_prefix_space", 1);
        if (scheme == NULL)
            p->prepend = aps > 0 ? TOKENIZER_PREPEND_ALWAYS : TOKENIZER_PREPEND_NEVER;
        else if (strcmp(scheme, "always") == 0)
            p->prepend = TOKENIZER_PREPEND_ALWAYS;
        else if (strcmp(scheme, "never") == 0)
            p->prepend = TOKENIZER_PREPEND_NEVER;
        else if (strcmp(scheme, "first") == 0)
            p->prepend = TOKENIZER_PREPEND_FIRST;
        else
            return error_set(err, ALKFW_ERR_FORMAT, "%s: prepend_scheme '%s' is not known", where,
                             scheme);
        p->split = json_bool(j, "split", 1);
        if (p->split < 0)
            return error_set(err, ALKFW_ERR_FORMAT, "%s: split must be a boolean", where);
        return ALKFW_OK;
    }
    if (strcmp(type, "Whitespace") == 0) {
        p->kind = TOKENIZER_PRE_WHITESPACE;
        static const char re[] = "\\w+|[^\\w\\s]+";
        p->pattern.re = tokenizer_regex_compile(re, sizeof re - 1, where, err);
        return p->pattern.re ? ALKFW_OK : ALKFW_ERR_INTERNAL;
    }
    if (strcmp(type, "WhitespaceSplit") == 0) {
        p->kind = TOKENIZER_PRE_WHITESPACE_SPLIT;
        return ALKFW_OK;
    }
    return error_set(err, ALKFW_ERR_UNSUPPORTED, "%s: pre-tokenizer type '%s' is not supported",
                     where, type);
}

/* ---------------------------------------------------------------------------------------- */
/* Decoders                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static alkfw_status parse_decoder(const cJSON *j, tokenizer_decoder *d, const char *where,
                                  alkfw_error *err)
{
    memset(d, 0, sizeof *d);
    const char *type = json_str(j, "type");
    if (type == NULL)
        return error_set(err, ALKFW_ERR_FORMAT, "%s: missing 'type'", where);

    if (strcmp(type, "Sequence") == 0) {
        d->kind = TOKENIZER_DEC_SEQUENCE;
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "decoders");
        if (!cJSON_IsArray(items))
            return error_set(err, ALKFW_ERR_FORMAT, "%s: Sequence needs 'decoders'", where);
        size_t count = (size_t)cJSON_GetArraySize(items);
        d->items = calloc(count ? count : 1, sizeof *d->items);
        if (d->items == NULL)
            return nomem(err);
        const cJSON *it;
        cJSON_ArrayForEach(it, items)
        {
            char sub[200];
            snprintf(sub, sizeof sub, "%s[%zu]", where, d->n_items);
            alkfw_status st = parse_decoder(it, &d->items[d->n_items++], sub, err);
            if (st != ALKFW_OK)
                return st;
        }
        return ALKFW_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        d->kind = TOKENIZER_DEC_BYTELEVEL;
        return ALKFW_OK;
    }
    if (strcmp(type, "ByteFallback") == 0) {
        d->kind = TOKENIZER_DEC_BYTEFALLBACK;
        return ALKFW_OK;
    }
    if (strcmp(type, "Fuse") == 0) {
        d->kind = TOKENIZER_DEC_FUSE;
        return ALKFW_OK;
    }
    if (strcmp(type, "Strip") == 0) {
        d->kind = TOKENIZER_DEC_STRIP;
        const char *c = json_str(j, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(j, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(j, "stop");
        if (c == NULL || !cJSON_IsNumber(start) || !cJSON_IsNumber(stop) ||
            start->valuedouble < 0 || start->valuedouble > 1e6 || stop->valuedouble < 0 ||
            stop->valuedouble > 1e6)
            return error_set(err, ALKFW_ERR_FORMAT,
                             "%s: Strip needs 'content' and small non-negative 'start'/'stop'",
                             where);
        d->text_len = strlen(c);
        d->text = dup_bytes(c, d->text_len);
        d->start = (int)start->valuedouble;
        d->stop = (int)stop->valuedouble;
        return d->text ? ALKFW_OK : nomem(err);
    }
    if (strcmp(type, "Replace") == 0) {
        d->kind = TOKENIZER_DEC_REPLACE;
        const char *t = json_str(j, "content");
        if (t == NULL)
            return error_set(err, ALKFW_ERR_FORMAT, "%s: Replace needs 'content'", where);
        d->text_len = strlen(t);
        d->text = dup_bytes(t, d->text_len);
        if (d->text == NULL)
            return nomem(err);
        return parse_pattern(j, where, &d->pattern, err);
    }
    if (strcmp(type, "Metaspace") == 0) {
        d->kind = TOKENIZER_DEC_METASPACE;
        alkfw_status st = parse_replacement(j, where, d->replacement, &d->replacement_len, err);
        if (st != ALKFW_OK)
            return st;
        const char *scheme = json_str(j, "prepend_scheme");
        int aps = json_bool(j, "add_prefix_space", 1);
        d->prepend_first = scheme ? strcmp(scheme, "never") != 0 : aps > 0;
        return ALKFW_OK;
    }
    return error_set(err, ALKFW_ERR_UNSUPPORTED, "%s: decoder type '%s' is not supported", where,
                     type);
}

/* Frees what a decoder node owns, children included, but not the node itself. */
static void decoder_clear(tokenizer_decoder *d)
{
    for (size_t i = 0; i < d->n_items; i++)
        decoder_clear(&d->items[i]);
    free(d->items);
    free(d->text);
    tokenizer_pattern_free(&d->pattern);
}

/* Frees a decoder tree, the node itself included. NULL does nothing. */
void tokenizer_decoder_free(tokenizer_decoder *d)
{
    if (d == NULL)
        return;
    decoder_clear(d);
    free(d);
}

/* ---------------------------------------------------------------------------------------- */
/* Model, added tokens, post-processor                                                       */
/* ---------------------------------------------------------------------------------------- */

/* Appends id to a growing int array. */
static int ids_push(int32_t **v, size_t *n, int32_t id)
{
    int32_t *p = realloc(*v, (*n + 1) * sizeof *p);
    if (p == NULL)
        return -1;
    p[(*n)++] = id;
    *v = p;
    return 0;
}

static alkfw_status parse_post(const cJSON *j, alkfw_tokenizer *tok, const char *where,
                               alkfw_error *err)
{
    const char *type = json_str(j, "type");
    if (type == NULL)
        return error_set(err, ALKFW_ERR_FORMAT, "%s: missing 'type'", where);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "processors");
        if (!cJSON_IsArray(items))
            return error_set(err, ALKFW_ERR_FORMAT, "%s: Sequence needs 'processors'", where);
        const cJSON *it;
        size_t i = 0;
        cJSON_ArrayForEach(it, items)
        {
            char sub[200];
            snprintf(sub, sizeof sub, "%s[%zu]", where, i++);
            alkfw_status st = parse_post(it, tok, sub, err);
            if (st != ALKFW_OK)
                return st;
        }
        return ALKFW_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        int trim = json_bool(j, "trim_offsets", 1);
        if (trim < 0)
            return error_set(err, ALKFW_ERR_FORMAT, "%s: trim_offsets must be a boolean", where);
        tok->post_trim_offsets = trim;
        return ALKFW_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "%s: post-processor type '%s' is not supported", where, type);

    const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
    if (!cJSON_IsArray(single) || !cJSON_IsObject(specials))
        return error_set(err, ALKFW_ERR_FORMAT,
                         "%s: TemplateProcessing needs 'single' and 'special_tokens'", where);
    int seen_seq = 0;
    const cJSON *piece;
    cJSON_ArrayForEach(piece, single)
    {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(piece, "Sequence");
        if (cJSON_IsObject(sq)) {
            if (seen_seq)
                return error_set(err, ALKFW_ERR_FORMAT, "%s: 'single' has two sequences", where);
            seen_seq = 1;
            continue;
        }
        const char *name = cJSON_IsObject(sp) ? json_str(sp, "id") : NULL;
        if (name == NULL)
            return error_set(err, ALKFW_ERR_FORMAT,
                             "%s: 'single' items must be SpecialToken or Sequence", where);
        const cJSON *entry = cJSON_GetObjectItemCaseSensitive(specials, name);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
        if (!cJSON_IsArray(ids))
            return error_set(err, ALKFW_ERR_FORMAT,
                             "%s: special token '%s' is not in 'special_tokens'", where, name);
        const cJSON *idv;
        cJSON_ArrayForEach(idv, ids)
        {
            if (!cJSON_IsNumber(idv) || idv->valuedouble < 0 ||
                idv->valuedouble >= (double)tok->vocab_size)
                return error_set(err, ALKFW_ERR_FORMAT,
                                 "%s: special token '%s' has an id outside the vocabulary", where,
                                 name);
            int fail =
                seen_seq
                    ? ids_push(&tok->post_suffix, &tok->n_post_suffix, (int32_t)idv->valuedouble)
                    : ids_push(&tok->post_prefix, &tok->n_post_prefix, (int32_t)idv->valuedouble);
            if (fail)
                return nomem(err);
        }
    }
    if (!seen_seq)
        return error_set(err, ALKFW_ERR_FORMAT, "%s: 'single' has no Sequence", where);
    return ALKFW_OK;
}

/* Reads model.vocab into tok->vocab and returns the largest id through *max_id. */
static alkfw_status parse_vocab(const cJSON *vocab, alkfw_tokenizer *tok, int32_t *max_id,
                                alkfw_error *err)
{
    if (!cJSON_IsObject(vocab))
        return error_set(err, ALKFW_ERR_FORMAT, "tokenizer.json: model.vocab must be an object");
    if (tokenizer_strmap_init(&tok->vocab, (size_t)cJSON_GetArraySize(vocab)) != 0)
        return nomem(err);
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= TOKENIZER_MAX_ID ||
            e->valuedouble != (double)(int32_t)e->valuedouble)
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tokenizer.json: model.vocab['%.60s'] is not an id in [0, %d)",
                             e->string, TOKENIZER_MAX_ID);
        int32_t id = (int32_t)e->valuedouble;
        if (tokenizer_strmap_put(&tok->vocab, e->string, strlen(e->string), id) != 0)
            return nomem(err);
        if (id > *max_id)
            *max_id = id;
    }
    return ALKFW_OK;
}

/* Reads model.merges, in either serialization, into the pair -> (rank, id) table. */
static alkfw_status parse_merges(const cJSON *merges, alkfw_tokenizer *tok, alkfw_error *err)
{
    if (merges == NULL || cJSON_IsNull(merges))
        return ALKFW_OK;
    if (!cJSON_IsArray(merges))
        return error_set(err, ALKFW_ERR_FORMAT, "tokenizer.json: model.merges must be a list");
    size_t count = (size_t)cJSON_GetArraySize(merges);
    size_t size = 16;
    while (size < count * 2)
        size <<= 1;
    tok->merges = malloc(size * sizeof *tok->merges);
    tok->merge_keys = malloc(size * sizeof *tok->merge_keys);
    if (tok->merges == NULL || tok->merge_keys == NULL)
        return nomem(err);
    for (size_t i = 0; i < size; i++)
        tok->merge_keys[i] = UINT64_MAX;
    tok->merges_mask = size - 1;

    char *buf = NULL;
    size_t buf_cap = 0;
    size_t rank = 0;
    const cJSON *m;
    alkfw_status st = ALKFW_OK;
    cJSON_ArrayForEach(m, merges)
    {
        const char *left, *right;
        size_t llen, rlen;
        if (cJSON_IsString(m)) {
            const char *sp = strchr(m->valuestring, ' ');
            if (sp == NULL || strchr(sp + 1, ' ') != NULL) {
                st = error_set(err, ALKFW_ERR_FORMAT,
                               "tokenizer.json: merges[%zu] '%.60s' is not two tokens "
                               "separated by one space",
                               rank, m->valuestring);
                break;
            }
            left = m->valuestring;
            llen = (size_t)(sp - left);
            right = sp + 1;
            rlen = strlen(right);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            left = cJSON_GetArrayItem(m, 0)->valuestring;
            right = cJSON_GetArrayItem(m, 1)->valuestring;
            llen = strlen(left);
            rlen = strlen(right);
        } else {
            st = error_set(err, ALKFW_ERR_FORMAT,
                           "tokenizer.json: merges[%zu] must be \"a b\" or [\"a\", \"b\"]", rank);
            break;
        }
        int32_t a = tokenizer_strmap_get(&tok->vocab, left, llen);
        int32_t b = tokenizer_strmap_get(&tok->vocab, right, rlen);
        if (a < 0 || b < 0) {
            st = error_set(err, ALKFW_ERR_FORMAT,
                           "tokenizer.json: merges[%zu] refers to unknown token '%.*s'", rank,
                           (int)(a < 0 ? (llen > 60 ? 60 : llen) : (rlen > 60 ? 60 : rlen)),
                           a < 0 ? left : right);
            break;
        }
        if (llen + rlen > buf_cap) {
            buf_cap = (llen + rlen) * 2 + 16;
            char *nb = realloc(buf, buf_cap);
            if (nb == NULL) {
                st = nomem(err);
                break;
            }
            buf = nb;
        }
        memcpy(buf, left, llen);
        memcpy(buf + llen, right, rlen);
        int32_t id = tokenizer_strmap_get(&tok->vocab, buf, llen + rlen);
        if (id < 0) {
            st = error_set(err, ALKFW_ERR_FORMAT,
                           "tokenizer.json: merges[%zu] makes '%.*s', which is not in the "
                           "vocabulary",
                           rank, (int)(llen + rlen > 60 ? 60 : llen + rlen), buf);
            break;
        }

        /* a repeated pair takes the later rank, as the reference library's map does */
        uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
        uint64_t h = key;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        size_t i = h & tok->merges_mask;
        while (tok->merge_keys[i] != UINT64_MAX && tok->merge_keys[i] != key)
            i = (i + 1) & tok->merges_mask;
        if (tok->merge_keys[i] == UINT64_MAX)
            tok->n_merges++;
        tok->merge_keys[i] = key;
        tok->merges[i] = (tokenizer_merge){(int32_t)rank, id};
        rank++;
    }
    free(buf);
    return st;
}

static alkfw_status parse_model(const cJSON *model, alkfw_tokenizer *tok, int32_t *max_id,
                                alkfw_error *err)
{
    if (!cJSON_IsObject(model))
        return error_set(err, ALKFW_ERR_FORMAT, "tokenizer.json: 'model' must be an object");
    const char *type = json_str(model, "type");
    if (type != NULL && strcmp(type, "BPE") != 0)
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "tokenizer.json: model type '%s' is not supported (only BPE)", type);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "tokenizer.json: model.dropout %g is not supported (encoding would "
                         "be random)",
                         dropout->valuedouble);
    const char *csp = json_str(model, "continuing_subword_prefix");
    const char *eow = json_str(model, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "tokenizer.json: model.continuing_subword_prefix and "
                         "end_of_word_suffix are not supported");

    tok->byte_fallback = json_bool(model, "byte_fallback", 0);
    tok->fuse_unk = json_bool(model, "fuse_unk", 0);
    tok->ignore_merges = json_bool(model, "ignore_merges", 0);
    if (tok->byte_fallback < 0 || tok->fuse_unk < 0 || tok->ignore_merges < 0)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "tokenizer.json: model byte_fallback, fuse_unk and ignore_merges must "
                         "be booleans");

    alkfw_status st =
        parse_vocab(cJSON_GetObjectItemCaseSensitive(model, "vocab"), tok, max_id, err);
    if (st != ALKFW_OK)
        return st;
    st = parse_merges(cJSON_GetObjectItemCaseSensitive(model, "merges"), tok, err);
    if (st != ALKFW_OK)
        return st;

    tok->unk_id = -1;
    const char *unk = json_str(model, "unk_token");
    if (unk != NULL) {
        tok->unk_id = tokenizer_strmap_get(&tok->vocab, unk, strlen(unk));
        if (tok->unk_id < 0)
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tokenizer.json: model.unk_token '%.60s' is not in the vocabulary",
                             unk);
    }
    for (int b = 0; b < 256; b++) {
        char name[8], enc[4];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_fallback_id[b] = tokenizer_strmap_get(&tok->vocab, name, strlen(name));
        size_t n = tokenizer_utf8_encode(tokenizer_bytelevel_char((uint8_t)b), enc);
        tok->byte_level_id[b] = tokenizer_strmap_get(&tok->vocab, enc, n);
        if (b < 128) {
            char c = (char)b;
            tok->ascii_id[b] = tokenizer_strmap_get(&tok->vocab, &c, 1);
        }
    }
    return ALKFW_OK;
}

static alkfw_status parse_added(const cJSON *list, alkfw_tokenizer *tok, int32_t *max_id,
                                alkfw_error *err)
{
    if (list == NULL || cJSON_IsNull(list))
        return ALKFW_OK;
    if (!cJSON_IsArray(list))
        return error_set(err, ALKFW_ERR_FORMAT, "tokenizer.json: added_tokens must be a list");
    size_t count = (size_t)cJSON_GetArraySize(list);
    tok->added = calloc(count ? count : 1, sizeof *tok->added);
    if (tok->added == NULL)
        return nomem(err);
    const cJSON *a;
    cJSON_ArrayForEach(a, list)
    {
        size_t i = tok->n_added;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const char *content = json_str(a, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= TOKENIZER_MAX_ID ||
            content == NULL || content[0] == '\0')
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tokenizer.json: added_tokens[%zu] needs an 'id' in [0, %d) and a "
                             "non-empty 'content'",
                             i, TOKENIZER_MAX_ID);
        tokenizer_added *t = &tok->added[i];
        t->id = (int32_t)id->valuedouble;
        t->len = strlen(content);
        t->content = dup_bytes(content, t->len);
        if (t->content == NULL)
            return nomem(err);
        tok->n_added++; /* owned from here on, even if a flag below is malformed */
        t->special = json_bool(a, "special", 0);
        t->lstrip = json_bool(a, "lstrip", 0);
        t->rstrip = json_bool(a, "rstrip", 0);
        t->single_word = json_bool(a, "single_word", 0);
        t->normalized = json_bool(a, "normalized", 1);
        if (t->special < 0 || t->lstrip < 0 || t->rstrip < 0 || t->single_word < 0 ||
            t->normalized < 0)
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tokenizer.json: added_tokens[%zu] flags must be booleans", i);
        if (t->id > *max_id)
            *max_id = t->id;
    }
    return ALKFW_OK;
}

/* Builds the id -> string table, the special flags and the normalized forms of normalized
 * added tokens, once everything else is loaded. */
static alkfw_status finish(alkfw_tokenizer *tok, alkfw_error *err)
{
    tok->id_to_token = calloc(tok->vocab_size ? tok->vocab_size : 1, sizeof *tok->id_to_token);
    tok->id_len = calloc(tok->vocab_size ? tok->vocab_size : 1, sizeof *tok->id_len);
    tok->is_special = calloc(tok->vocab_size ? tok->vocab_size : 1, 1);
    tok->added_first = calloc(256, 1);
    if (!tok->id_to_token || !tok->id_len || !tok->is_special || !tok->added_first)
        return nomem(err);
    for (size_t e = 0; e < tok->vocab.n_entries; e++) {
        const struct tokenizer_strmap_entry *en = &tok->vocab.entries[e];
        tok->id_to_token[en->value] = tok->vocab.arena + en->off;
        tok->id_len[en->value] = en->len;
    }
    for (size_t i = 0; i < tok->n_added; i++) {
        tokenizer_added *t = &tok->added[i];
        tok->id_to_token[t->id] = t->content;
        tok->id_len[t->id] = t->len;
        tok->is_special[t->id] = (uint8_t)t->special;
        if (!t->normalized || tok->normalizer == NULL) {
            tok->added_first[(uint8_t)t->content[0]] = 1;
            continue;
        }
        tokenizer_nstr ns = {0};
        if (tokenizer_nstr_append(&ns, t->content, t->len, 0, 1) != 0)
            return nomem(err);
        alkfw_status st = tokenizer_normalize(tok->normalizer, &ns, err);
        if (st != ALKFW_OK) {
            tokenizer_nstr_free(&ns);
            return st;
        }
        t->norm_content = ns.s;
        t->norm_len = ns.len;
        ns.s = NULL;
        tokenizer_nstr_free(&ns);
        if (t->norm_len == 0)
            t->normalized = 0; /* normalizes to nothing: can never match */
        else
            tok->n_norm_added++;
    }
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Public                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Frees a tokenizer and everything it owns. NULL does nothing. */
void alkfw_tokenizer_free(alkfw_tokenizer *tok)
{
    if (tok == NULL)
        return;
    tokenizer_strmap_free(&tok->vocab);
    free(tok->id_to_token);
    free(tok->id_len);
    free(tok->merges);
    free(tok->merge_keys);
    for (size_t i = 0; i < tok->n_added; i++) {
        free(tok->added[i].content);
        free(tok->added[i].norm_content);
    }
    free(tok->added);
    free(tok->added_first);
    free(tok->is_special);
    tokenizer_normalizer_free(tok->normalizer);
    tokenizer_pretok_free(tok->pretok);
    tokenizer_decoder_free(tok->decoder);
    free(tok->post_prefix);
    free(tok->post_suffix);
    free(tok->cache);
    free(tok->cache_hash);
    if (tok->cache_lock_ready)
        pthread_rwlock_destroy(&tok->cache_lock);
    free(tok);
}

/* Parses the optional component `key` of root with parse into a fresh node stored in *slot.
 * Absent or null leaves *slot NULL. */
#define LOAD_COMPONENT(root, key, type, parse, slot, st)                                           \
    do {                                                                                           \
        const cJSON *c_ = cJSON_GetObjectItemCaseSensitive(root, key);                             \
        if (c_ != NULL && !cJSON_IsNull(c_)) {                                                     \
            if (!cJSON_IsObject(c_)) {                                                             \
                st = error_set(err, ALKFW_ERR_FORMAT, "tokenizer.json: '%s' must be an object",    \
                               key);                                                               \
                break;                                                                             \
            }                                                                                      \
            slot = calloc(1, sizeof(type));                                                        \
            if (slot == NULL) {                                                                    \
                st = nomem(err);                                                                   \
                break;                                                                             \
            }                                                                                      \
            st = parse(c_, slot, key, err);                                                        \
        }                                                                                          \
    } while (0)

/* See alkfw.h. */
alkfw_status alkfw_tokenizer_load_buffer(const char *json, size_t len, alkfw_tokenizer **out,
                                         alkfw_error *err)
{
    if (out == NULL || (json == NULL && len > 0))
        return error_set(err, ALKFW_ERR_ARGUMENT, "tokenizer: NULL argument");
    *out = NULL;

    /* Every string of the file ends up matched by UTF-mode regexes, so the file must be
     * UTF-8, as JSON requires (the reference library refuses other files too). */
    size_t valid = tokenizer_utf8_valid_prefix(json ? json : "", len);
    if (valid < len)
        return error_set(err, ALKFW_ERR_FORMAT, "tokenizer.json: byte %zu is not valid UTF-8",
                         valid);
    cJSON *root = cJSON_ParseWithLength(json ? json : "", len);
    if (root == NULL)
        return error_set(err, ALKFW_ERR_FORMAT, "tokenizer.json: not valid JSON");
    alkfw_status st = ALKFW_OK;
    alkfw_tokenizer *tok = calloc(1, sizeof *tok);
    if (tok == NULL) {
        cJSON_Delete(root);
        return nomem(err);
    }
    tok->unk_id = -1;
    int32_t max_id = -1;

    if (!cJSON_IsObject(root)) {
        st = error_set(err, ALKFW_ERR_FORMAT, "tokenizer.json: the top level must be an object");
        goto done;
    }
    st = parse_model(cJSON_GetObjectItemCaseSensitive(root, "model"), tok, &max_id, err);
    if (st != ALKFW_OK)
        goto done;
    st = parse_added(cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), tok, &max_id, err);
    if (st != ALKFW_OK)
        goto done;
    tok->vocab_size = (size_t)(max_id + 1);

    LOAD_COMPONENT(root, "normalizer", tokenizer_normalizer, parse_normalizer, tok->normalizer, st);
    if (st != ALKFW_OK)
        goto done;
    LOAD_COMPONENT(root, "pre_tokenizer", tokenizer_pretok, parse_pretok, tok->pretok, st);
    if (st != ALKFW_OK)
        goto done;
    LOAD_COMPONENT(root, "decoder", tokenizer_decoder, parse_decoder, tok->decoder, st);
    if (st != ALKFW_OK)
        goto done;
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (post != NULL && !cJSON_IsNull(post)) {
        st = parse_post(post, tok, "post_processor", err);
        if (st != ALKFW_OK)
            goto done;
    }
    st = finish(tok, err);
    if (st == ALKFW_OK) {
        /* the word cache is optional: without memory or a lock, encoding just runs BPE */
        tok->cache = calloc(TOKENIZER_CACHE_SLOTS, sizeof *tok->cache);
        tok->cache_hash = calloc(TOKENIZER_CACHE_SLOTS, sizeof *tok->cache_hash);
        if (tok->cache != NULL && tok->cache_hash != NULL &&
            pthread_rwlock_init(&tok->cache_lock, NULL) == 0) {
            tok->cache_lock_ready = 1;
        } else {
            free(tok->cache);
            free(tok->cache_hash);
            tok->cache = NULL;
            tok->cache_hash = NULL;
        }
    }
done:
    cJSON_Delete(root);
    if (st != ALKFW_OK) {
        alkfw_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return ALKFW_OK;
}

/* See alkfw.h. */
alkfw_status alkfw_tokenizer_load(const char *path, alkfw_tokenizer **out, alkfw_error *err)
{
    if (path == NULL || out == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "tokenizer: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return error_set(err, ALKFW_ERR_IO, "%s: cannot open", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 20;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return nomem(err);
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return error_set(err, ALKFW_ERR_IO, "%s: read error", path);
    }
    alkfw_status st = alkfw_tokenizer_load_buffer(buf, len, out, err);
    free(buf);
    if (st != ALKFW_OK)
        error_prefix(err, "%s", path);
    return st;
}
