/*
 * config.c - reading config.json for Llama, Mistral and Qwen2 detector models.
 */
#include "model/config.h"

#include "common/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A config.json larger than this is not a configuration. */
#define CONFIG_MAX_BYTES (4u * 1024u * 1024u)

/* Upper bounds on sizes: far above any detector model, low enough that products of them
 * cannot overflow size_t on 64-bit machines. */
#define MAX_HIDDEN (1 << 16)
#define MAX_LAYERS 1024
#define MAX_HEADS 1024
#define MAX_VOCAB (1 << 24)
#define MAX_POSITIONS (1 << 24)

/* Reads integer key into *out: absent gives def (or an error when def < 0 means required);
 * the value must be an integer in [lo, hi]. */
static alkfw_status get_int(const cJSON *root, const char *key, int def, int lo, int hi, int *out,
                            alkfw_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (v == NULL || cJSON_IsNull(v)) {
        if (def < 0)
            return error_set(err, ALKFW_ERR_FORMAT, "missing required key %s", key);
        *out = def;
        return ALKFW_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return error_set(err, ALKFW_ERR_FORMAT, "%s is not an integer", key);
    double d = v->valuedouble;
    if (d < lo || d > hi)
        return error_set(err, ALKFW_ERR_FORMAT, "%s = %.0f is out of range [%d, %d]", key, d, lo,
                         hi);
    *out = (int)d;
    return ALKFW_OK;
}

/* Reads a positive finite number key into *out, def when absent. */
static alkfw_status get_positive(const cJSON *root, const char *key, double def, double *out,
                                 alkfw_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (v == NULL || cJSON_IsNull(v)) {
        *out = def;
        return ALKFW_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !(v->valuedouble > 0))
        return error_set(err, ALKFW_ERR_FORMAT, "%s is not a positive number", key);
    *out = v->valuedouble;
    return ALKFW_OK;
}

/* Reads a boolean key into *out, def when absent. */
static alkfw_status get_bool(const cJSON *root, const char *key, int def, int *out,
                             alkfw_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (v == NULL || cJSON_IsNull(v)) {
        *out = def;
        return ALKFW_OK;
    }
    if (!cJSON_IsBool(v))
        return error_set(err, ALKFW_ERR_FORMAT, "%s is not a boolean", key);
    *out = cJSON_IsTrue(v);
    return ALKFW_OK;
}

/* Picks the family from model_type, or from architectures[0] when model_type is absent. */
static alkfw_status detect_arch(const cJSON *root, model_config *c, alkfw_error *err)
{
    static const struct {
        const char *model_type;
        const char *class_name;
        model_arch arch;
    } families[] = {
        {"llama", "LlamaForCausalLM", MODEL_ARCH_LLAMA},
        {"mistral", "MistralForCausalLM", MODEL_ARCH_MISTRAL},
        {"qwen2", "Qwen2ForCausalLM", MODEL_ARCH_QWEN2},
    };
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char *arch_name = NULL;
    if (archs != NULL && !cJSON_IsNull(archs)) {
        if (!cJSON_IsArray(archs) || cJSON_GetArraySize(archs) < 1 || !cJSON_IsString(archs->child))
            return error_set(err, ALKFW_ERR_FORMAT, "architectures is not a list of names");
        arch_name = archs->child->valuestring;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt != NULL && !cJSON_IsString(mt))
        return error_set(err, ALKFW_ERR_FORMAT, "model_type is not a string");

    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        int match = mt != NULL
                        ? strcmp(mt->valuestring, families[i].model_type) == 0
                        : arch_name != NULL && strcmp(arch_name, families[i].class_name) == 0;
        if (match) {
            c->arch = families[i].arch;
            snprintf(c->architecture, sizeof c->architecture, "%s",
                     arch_name ? arch_name : families[i].class_name);
            return ALKFW_OK;
        }
    }
    if (mt != NULL)
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "model_type '%.64s' is not supported (llama, mistral, qwen2 are)",
                         mt->valuestring);
    if (arch_name != NULL)
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "architectures[0] '%.64s' is not supported (LlamaForCausalLM, "
                         "MistralForCausalLM, Qwen2ForCausalLM are)",
                         arch_name);
    return error_set(err, ALKFW_ERR_FORMAT, "missing model_type and architectures");
}

/* Reads rope_scaling: absent, null or "default" is plain RoPE; "linear" and "llama3" are
 * implemented; anything else is an error naming the type. */
static alkfw_status parse_rope_scaling(const cJSON *root, model_config *c, alkfw_error *err)
{
    c->rope_scaling = MODEL_ROPE_DEFAULT;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs == NULL || cJSON_IsNull(rs))
        return ALKFW_OK;
    if (!cJSON_IsObject(rs))
        return error_set(err, ALKFW_ERR_FORMAT, "rope_scaling is not an object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (type == NULL)
        type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(type))
        return error_set(err, ALKFW_ERR_FORMAT, "rope_scaling has no rope_type");
    const char *t = type->valuestring;
    alkfw_status st;
    if (strcmp(t, "default") == 0)
        return ALKFW_OK;
    if (strcmp(t, "linear") == 0) {
        c->rope_scaling = MODEL_ROPE_LINEAR;
        if ((st = get_positive(rs, "factor", -1, &c->rope_factor, err)))
            return err ? error_prefix(err, "rope_scaling") : st;
        if (c->rope_factor < 0)
            return error_set(err, ALKFW_ERR_FORMAT, "rope_scaling: missing factor");
        return ALKFW_OK;
    }
    if (strcmp(t, "llama3") == 0) {
        c->rope_scaling = MODEL_ROPE_LLAMA3;
        if ((st = get_positive(rs, "factor", -1, &c->rope_factor, err)) ||
            (st = get_positive(rs, "low_freq_factor", -1, &c->rope_low_freq_factor, err)) ||
            (st = get_positive(rs, "high_freq_factor", -1, &c->rope_high_freq_factor, err)) ||
            (st = get_positive(rs, "original_max_position_embeddings", -1,
                               &c->rope_original_max_positions, err)))
            return err ? error_prefix(err, "rope_scaling") : st;
        if (c->rope_factor < 0 || c->rope_low_freq_factor < 0 || c->rope_high_freq_factor < 0 ||
            c->rope_original_max_positions < 0)
            return error_set(err, ALKFW_ERR_FORMAT,
                             "rope_scaling: llama3 needs factor, low_freq_factor, "
                             "high_freq_factor and original_max_position_embeddings");
        if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
            return error_set(err, ALKFW_ERR_FORMAT,
                             "rope_scaling: high_freq_factor must exceed low_freq_factor");
        return ALKFW_OK;
    }
    /* LIMIT: dynamic, yarn, longrope and the other scaled variants are not implemented. */
    return error_set(err, ALKFW_ERR_UNSUPPORTED,
                     "rope_scaling type '%.32s' is not supported (default, linear and llama3 "
                     "are)",
                     t);
}

/* Rejects options that change the computation in ways not implemented here. */
static alkfw_status check_unsupported(const cJSON *root, const model_config *c, alkfw_error *err)
{
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act != NULL && !cJSON_IsNull(act) &&
        !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "hidden_act must be \"silu\" (the only activation implemented)");

    int flag = 0;
    alkfw_status st = get_bool(root, "rope_interleaved", 0, &flag, err);
    if (st != ALKFW_OK)
        return st;
    if (flag)
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "rope_interleaved = true is not supported (rotate-half layout only)");

    const cJSON *prf = cJSON_GetObjectItemCaseSensitive(root, "partial_rotary_factor");
    if (prf != NULL && !cJSON_IsNull(prf) && !(cJSON_IsNumber(prf) && prf->valuedouble == 1.0))
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "partial_rotary_factor other than 1 is not supported");

    /* LIMIT: sliding-window attention is not implemented. A window at least as long as the
     * longest input (max_position_embeddings) changes nothing and is accepted. */
    if (c->arch == MODEL_ARCH_QWEN2) {
        st = get_bool(root, "use_sliding_window", 0, &flag, err);
        if (st != ALKFW_OK)
            return st;
        if (flag)
            return error_set(err, ALKFW_ERR_UNSUPPORTED,
                             "use_sliding_window = true is not supported");
    } else {
        const cJSON *sw = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
        int absent = sw == NULL || cJSON_IsNull(sw);
        if (absent && c->arch == MODEL_ARCH_MISTRAL && c->max_positions > 4096)
            return error_set(err, ALKFW_ERR_UNSUPPORTED,
                             "sliding_window (absent: Mistral's default 4096) is shorter than "
                             "max_position_embeddings; sliding windows are not supported");
        if (!absent) {
            if (!cJSON_IsNumber(sw) || !(sw->valuedouble > 0))
                return error_set(err, ALKFW_ERR_FORMAT,
                                 "sliding_window is not a positive "
                                 "integer");
            if (sw->valuedouble < c->max_positions)
                return error_set(err, ALKFW_ERR_UNSUPPORTED,
                                 "sliding_window = %.0f is shorter than max_position_embeddings "
                                 "= %d; sliding windows are not supported",
                                 sw->valuedouble, c->max_positions);
        }
    }
    return ALKFW_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A key given twice means different things to different JSON readers (Python keeps the last,
 * cJSON finds the first), so it is rejected. Sorting keeps this O(n log n) on hostile input. */
static alkfw_status check_duplicate_keys(const cJSON *root, alkfw_error *err)
{
    size_t n = (size_t)cJSON_GetArraySize(root);
    if (n < 2)
        return ALKFW_OK;
    const char **keys = malloc(n * sizeof *keys);
    if (keys == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (const cJSON *e = root->child; e != NULL && k < n; e = e->next)
        keys[k++] = e->string;
    qsort(keys, k, sizeof *keys, cmp_str);
    alkfw_status st = ALKFW_OK;
    for (size_t i = 1; i < k; i++) {
        if (strcmp(keys[i - 1], keys[i]) == 0) {
            st = error_set(err, ALKFW_ERR_FORMAT, "duplicate key %.64s", keys[i]);
            break;
        }
    }
    free(keys);
    return st;
}

/* Reads every field of c from the parsed root object. */
static alkfw_status parse_root(const cJSON *root, model_config *c, alkfw_error *err)
{
    alkfw_status st;
    if (!cJSON_IsObject(root))
        return error_set(err, ALKFW_ERR_FORMAT, "not a JSON object");
    if ((st = check_duplicate_keys(root, err)) || (st = detect_arch(root, c, err)))
        return st;

    int def_max_pos = c->arch == MODEL_ARCH_LLAMA     ? 2048
                      : c->arch == MODEL_ARCH_MISTRAL ? 4096 * 32
                                                      : 32768;
    if ((st = get_int(root, "hidden_size", -1, 1, MAX_HIDDEN, &c->hidden_size, err)) ||
        (st = get_int(root, "num_hidden_layers", -1, 1, MAX_LAYERS, &c->n_layers, err)) ||
        (st = get_int(root, "num_attention_heads", -1, 1, MAX_HEADS, &c->n_heads, err)) ||
        (st =
             get_int(root, "num_key_value_heads", c->n_heads, 1, MAX_HEADS, &c->n_kv_heads, err)) ||
        (st = get_int(root, "intermediate_size", -1, 1, 16 * MAX_HIDDEN, &c->intermediate_size,
                      err)) ||
        (st = get_int(root, "vocab_size", -1, 1, MAX_VOCAB, &c->vocab_size, err)) ||
        (st = get_int(root, "max_position_embeddings", def_max_pos, 1, MAX_POSITIONS,
                      &c->max_positions, err)) ||
        (st = get_positive(root, "rope_theta", 10000.0, &c->rope_theta, err)) ||
        (st = parse_rope_scaling(root, c, err)) ||
        (st = get_positive(root, "rms_norm_eps", 1e-6, &c->rms_norm_eps, err)) ||
        (st = get_bool(root, "tie_word_embeddings", 0, &c->tied_embeddings, err)))
        return st;

    if (c->hidden_size % c->n_heads != 0 &&
        cJSON_GetObjectItemCaseSensitive(root, "head_dim") == NULL)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "hidden_size %d is not a multiple of num_attention_heads %d and no "
                         "head_dim is given",
                         c->hidden_size, c->n_heads);
    if ((st = get_int(root, "head_dim", c->hidden_size / c->n_heads, 1, MAX_HIDDEN, &c->head_dim,
                      err)))
        return st;
    if (c->head_dim % 2 != 0)
        return error_set(err, ALKFW_ERR_FORMAT, "head_dim %d is odd; RoPE needs pairs",
                         c->head_dim);
    if (c->n_heads % c->n_kv_heads != 0)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "num_attention_heads %d is not a multiple of num_key_value_heads %d",
                         c->n_heads, c->n_kv_heads);
    if ((size_t)c->n_heads * (size_t)c->head_dim > (size_t)16 * MAX_HIDDEN)
        return error_set(err, ALKFW_ERR_FORMAT, "num_attention_heads x head_dim is absurd");

    if (c->arch == MODEL_ARCH_QWEN2) {
        c->qkv_bias = 1;
        c->o_bias = 0;
        c->mlp_bias = 0;
    } else {
        int attention_bias = 0;
        if ((st = get_bool(root, "attention_bias", 0, &attention_bias, err)) ||
            (st = get_bool(root, "mlp_bias", 0, &c->mlp_bias, err)))
            return st;
        c->qkv_bias = c->o_bias = attention_bias;
    }
    return check_unsupported(root, c, err);
}

alkfw_status model_config_parse(const char *json, size_t len, model_config *out, alkfw_error *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (root == NULL)
        return error_set(err, ALKFW_ERR_FORMAT, "not valid JSON");
    alkfw_status st = parse_root(root, out, err);
    cJSON_Delete(root);
    return st;
}

alkfw_status model_config_load(const char *dir, model_config *out, alkfw_error *err)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return error_set(err, ALKFW_ERR_ARGUMENT, "model directory path is too long");
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return error_set(err, ALKFW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(CONFIG_MAX_BYTES + 1);
    if (buf == NULL) {
        fclose(fp);
        return error_set(err, ALKFW_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, CONFIG_MAX_BYTES + 1, fp);
    int bad = ferror(fp);
    fclose(fp);
    alkfw_status st;
    if (bad)
        st = error_set(err, ALKFW_ERR_IO, "read error");
    else if (n > CONFIG_MAX_BYTES)
        st = error_set(err, ALKFW_ERR_LIMIT, "larger than %u bytes", CONFIG_MAX_BYTES);
    else
        st = model_config_parse(buf, n, out, err);
    free(buf);
    if (st != ALKFW_OK)
        error_prefix(err, "%s", path);
    return st;
}
