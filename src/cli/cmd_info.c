/*
 * cmd_info.c - alkfw info: the metadata of a detector model and of a codebook, and whether
 * the codebook was built for that model.
 */
#include "cli/cli.h"
#include "cli/fw_util.h"
#include "codebook/codebook.h"
#include "firewall/firewall.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void info_usage(FILE *out)
{
    fprintf(out, "usage: alkfw info [--model DIR] [--codebook FILE] [--json]\n"
                 "\n"
                 "Prints the model's and the codebook's metadata and whether they match.\n"
                 "Without --model: the embedded default detector; without --codebook: the\n"
                 "model directory's codebook.safetensors. Exit status 1 when they do not\n"
                 "match or a file cannot be read.\n");
}

/* The model side: config values and the fingerprint. */
static cJSON *model_json(const char *dir, const alkfw_model_info *mi, const char *fingerprint,
                         size_t vocab)
{
    cJSON *o = cJSON_CreateObject();
    char id[FIREWALL_ID_SIZE];
    firewall_model_id(dir, id, sizeof id);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "dir", dir);
    cJSON_AddStringToObject(o, "architecture", mi->architecture ? mi->architecture : "");
    cJSON_AddNumberToObject(o, "hidden_size", mi->hidden_size);
    cJSON_AddNumberToObject(o, "n_layers", mi->n_layers);
    cJSON_AddNumberToObject(o, "n_heads", mi->n_heads);
    cJSON_AddNumberToObject(o, "n_kv_heads", mi->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", mi->head_dim);
    cJSON_AddNumberToObject(o, "intermediate_size", mi->intermediate_size);
    cJSON_AddNumberToObject(o, "vocab_size", mi->vocab_size);
    cJSON_AddNumberToObject(o, "tokenizer_vocab_size", (double)vocab);
    cJSON_AddNumberToObject(o, "max_positions", mi->max_positions);
    cJSON_AddNumberToObject(o, "rope_theta", mi->rope_theta);
    cJSON_AddNumberToObject(o, "rms_norm_eps", mi->rms_norm_eps);
    cJSON_AddBoolToObject(o, "tied_embeddings", mi->tied_embeddings != 0);
    cJSON_AddStringToObject(o, "fingerprint", fingerprint);
    return o;
}

/* Adds a metadata string that holds JSON as parsed JSON, else as a string. */
static void add_json_or_string(cJSON *o, const char *key, const char *text)
{
    cJSON *v = text && text[0] ? cJSON_Parse(text) : NULL;
    if (v != NULL)
        cJSON_AddItemToObject(o, key, v);
    else
        cJSON_AddStringToObject(o, key, text ? text : "");
}

/* The codebook side: shape, directions, thresholds and metadata. */
static cJSON *codebook_json(const char *path, const char *id, const codebook *cb)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "path", path);
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int l = 0; l < cb->n_layers; l++)
        cJSON_AddItemToArray(layers, cJSON_CreateNumber(cb->layers[l]));
    cJSON_AddNumberToObject(o, "hidden", cb->hidden);
    cJSON_AddNumberToObject(o, "k", cb->k);
    cJSON_AddNumberToObject(o, "knots", cb->n_knots);
    cJSON *dirs = cJSON_AddArrayToObject(o, "directions");
    for (int d = 0; d <= cb->n_dirs; d++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", codebook_output_name(cb, d));
        cJSON_AddNumberToObject(e, "weight", cb->dir_alpha[d]);
        cJSON_AddItemToArray(dirs, e);
    }
    cJSON_AddNumberToObject(o, "smoothing_window", cb->smoothing_window);
    cJSON *th = cJSON_AddObjectToObject(o, "thresholds");
    cJSON_AddNumberToObject(th, "suspicious", cb->threshold_suspicious);
    cJSON_AddNumberToObject(th, "dangerous", cb->threshold_dangerous);
    cJSON_AddStringToObject(o, "model_id", cb->model_id);
    cJSON_AddStringToObject(o, "model_revision", cb->model_revision);
    cJSON_AddStringToObject(o, "model_fingerprint", cb->model_fingerprint);
    cJSON_AddStringToObject(o, "created_by", cb->created_by);
    add_json_or_string(o, "metrics", cb->metrics);
    add_json_or_string(o, "training_data", cb->training_data);
    return o;
}

static void print_human(const cJSON *r)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r, "model");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "codebook");
    const cJSON *v;
    if (m != NULL) {
        printf("model\n");
        cJSON_ArrayForEach(v, m)
        {
            if (cJSON_IsString(v))
                printf("  %-22s %s\n", v->string, v->valuestring);
            else if (cJSON_IsBool(v))
                printf("  %-22s %s\n", v->string, cJSON_IsTrue(v) ? "yes" : "no");
            else if (cJSON_IsNumber(v))
                printf("  %-22s %g\n", v->string, v->valuedouble);
        }
    }
    if (c != NULL) {
        printf("codebook\n");
        cJSON_ArrayForEach(v, c)
        {
            if (cJSON_IsString(v)) {
                printf("  %-22s %s\n", v->string, v->valuestring);
            } else if (cJSON_IsNumber(v)) {
                printf("  %-22s %g\n", v->string, v->valuedouble);
            } else {
                char *s = cJSON_PrintUnformatted(v);
                printf("  %-22s %s\n", v->string, s ? s : "?");
                free(s);
            }
        }
    }
    const cJSON *match = cJSON_GetObjectItemCaseSensitive(r, "match");
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(r, "mismatch");
    const cJSON *note = cJSON_GetObjectItemCaseSensitive(r, "note");
    if (match != NULL)
        printf("match: %s%s%s%s%s%s\n", cJSON_IsTrue(match) ? "yes" : "NO",
               cJSON_IsString(why) ? ": " : "", cJSON_IsString(why) ? why->valuestring : "",
               cJSON_IsString(note) ? " (" : "", cJSON_IsString(note) ? note->valuestring : "",
               cJSON_IsString(note) ? ")" : "");
}

int cmd_info(int argc, char **argv)
{
    const char *model = NULL, *codebook_arg = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            info_usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(o, "--json") == 0) {
            json = 1;
        } else if (strcmp(o, "--model") == 0 && v) {
            model = v, i++;
        } else if (strcmp(o, "--codebook") == 0 && v) {
            codebook_arg = v, i++;
        } else {
            fprintf(stderr, "alkfw info: bad option '%s'\n\n", o);
            info_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }

    char model_dir[PATH_MAX], codebook_path[PATH_MAX];
    int is_default;
    alkfw_error err = {0};
    if (fwu_resolve(model, codebook_arg, model_dir, codebook_path, sizeof model_dir, &is_default,
                    &err) != ALKFW_OK)
        return cli_fail("info", &err);
    int have_codebook = codebook_arg != NULL || access(codebook_path, R_OK) == 0;

    int rc = CLI_EXIT_OK;
    cJSON *r = cJSON_CreateObject();
    alkfw_model *m = NULL;
    alkfw_tokenizer *tok = NULL;
    codebook *cb = NULL;
    char fingerprint[CODEBOOK_FINGERPRINT_SIZE] = "";
    char path[PATH_MAX + 32];

    /* the model side */
    alkfw_model_options mo;
    alkfw_model_options_init(&mo);
    mo.n_threads = 1;
    alkfw_model_info mi;
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    if (alkfw_model_open(model_dir, &mo, &m, &err) != ALKFW_OK ||
        (alkfw_model_get_info(m, &mi), 0) ||
        firewall_model_fingerprint(model_dir, &mi, fingerprint, &err) != ALKFW_OK ||
        alkfw_tokenizer_load(path, &tok, &err) != ALKFW_OK) {
        rc = cli_fail("info", &err);
        goto done;
    }
    cJSON_AddItemToObject(r, "model",
                          model_json(model_dir, &mi, fingerprint, alkfw_tokenizer_vocab_size(tok)));

    /* the codebook side and the check */
    if (have_codebook) {
        char id[FIREWALL_ID_SIZE];
        if (codebook_load(codebook_path, &cb, &err) != ALKFW_OK ||
            firewall_codebook_id(codebook_path, id, sizeof id, &err) != ALKFW_OK) {
            rc = cli_fail("info", &err);
            goto done;
        }
        cJSON_AddItemToObject(r, "codebook", codebook_json(codebook_path, id, cb));
        alkfw_error why = {0};
        int match =
            codebook_check_model(cb, fingerprint, &why) == ALKFW_OK && cb->hidden == mi.hidden_size;
        if (match)
            for (int l = 0; l < cb->n_layers; l++)
                if (cb->layers[l] > mi.n_layers) {
                    match = 0;
                    snprintf(why.message, sizeof why.message,
                             "layer %d does not exist in a model of %d layers", (int)cb->layers[l],
                             mi.n_layers);
                }
        size_t tok_vocab = alkfw_tokenizer_vocab_size(tok);
        if (match && tok_vocab > (size_t)mi.vocab_size) { /* as alkfw_firewall_open refuses */
            match = 0;
            snprintf(why.message, sizeof why.message,
                     "tokenizer ids reach %zu but the model's vocab_size is %d", tok_vocab - 1,
                     mi.vocab_size);
        }
        if (!match && why.message[0] == '\0')
            snprintf(why.message, sizeof why.message, "hidden size %d, the model has %d",
                     cb->hidden, mi.hidden_size);
        cJSON_AddBoolToObject(r, "match", match);
        if (match && cb->model_fingerprint[0] == '\0')
            cJSON_AddStringToObject(r, "note",
                                    "the codebook has no model fingerprint: only its hidden size "
                                    "and layers were checked against the model");
        if (!match) {
            cJSON_AddStringToObject(r, "mismatch", why.message);
            rc = CLI_EXIT_ERROR;
        }
    }

    if (json) {
        char *s = cJSON_Print(r);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        print_human(r);
    }

done:
    cJSON_Delete(r);
    codebook_free(cb);
    alkfw_tokenizer_free(tok);
    alkfw_model_free(m);
    return rc;
}
