/*
 * cmd_hidden.c - alkfw hidden: dump the hidden states of chosen layers for a text or a list
 * of token ids, to a safetensors file or as JSON, for verification against other
 * implementations.
 */
#include "cli/cli.h"

#include "formats/safetensors.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hidden_usage(FILE *out)
{
    fprintf(out,
            "usage: alkfw hidden [--model DIR] [--layers I,J,...] (--text TEXT | --ids A,B,...)\n"
            "                    (--out FILE | --json) [--threads N] [--backend NAME]\n"
            "\n"
            "Computes hidden states (Hugging Face output_hidden_states indices: 0 = embeddings,\n"
            "i = after block i, n_layers = after the final norm) of every token.\n"
            "  --model DIR     model directory (default: the bundled stories260k)\n"
            "  --layers LIST   comma-separated indices (default: all, 0..n_layers)\n"
            "  --text TEXT     text to tokenize with DIR/tokenizer.json (BOS added)\n"
            "  --ids LIST      comma-separated token ids instead of text\n"
            "  --out FILE      write safetensors: input_ids (I32 [T]) and hidden.<i> (F32 [T, "
            "hidden])\n"
            "  --json          print {\"input_ids\": [...], \"hidden\": {\"<i>\": [[...], ...]}} "
            "instead\n"
            "  --threads N     threads for matrix products (default: all cores)\n"
            "  --backend NAME  auto, c, openblas or cuda (default auto)\n");
}

/* Parses a comma-separated list of integers in [lo, hi] into a malloc'ed array. Returns 0,
 * or -1 after printing what is wrong. */
static int parse_int_list(const char *what, const char *s, long lo, long hi, long **out, size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    long *v = malloc(cap * sizeof *v);
    if (v == NULL) {
        fprintf(stderr, "alkfw hidden: out of memory\n");
        return -1;
    }
    size_t k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno != 0 || x < lo || x > hi || (*end != ',' && *end != '\0')) {
            fprintf(stderr, "alkfw hidden: %s: '%s' is not a list of integers in [%ld, %ld]\n",
                    what, s, lo, hi);
            free(v);
            return -1;
        }
        v[k++] = x;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    *out = v;
    *n = k;
    return 0;
}

/* Prints the result as one JSON object; floats with 9 significant digits round-trip. JSON has
 * no NaN or infinity: such values are printed as null and counted on stderr. */
static void print_json(const int32_t *ids, size_t T, const int *layers, size_t n_layers,
                       const float *hidden, size_t H)
{
    size_t n_bad = 0;
    printf("{\"n_tokens\": %zu, \"hidden_size\": %zu, \"input_ids\": [", T, H);
    for (size_t t = 0; t < T; t++)
        printf(t ? ", %d" : "%d", (int)ids[t]);
    fputs("], \"hidden\": {", stdout);
    for (size_t j = 0; j < n_layers; j++) {
        printf("%s\"%d\": [", j ? ", " : "", layers[j]);
        for (size_t t = 0; t < T; t++) {
            fputs(t ? ", [" : "[", stdout);
            const float *row = hidden + (j * T + t) * H;
            for (size_t i = 0; i < H; i++) {
                if (isfinite(row[i]))
                    printf(i ? ", %.9g" : "%.9g", row[i]);
                else
                    fputs(i ? ", null" : "null", stdout);
                n_bad += !isfinite(row[i]);
            }
            fputc(']', stdout);
        }
        fputc(']', stdout);
    }
    fputs("}}\n", stdout);
    if (n_bad > 0)
        fprintf(stderr,
                "alkfw hidden: %zu values are NaN or infinite (printed as null): the model's "
                "weights or activations are not finite\n",
                n_bad);
}

/* Writes the result as safetensors at path. */
static alkfw_status write_out(const char *path, const char *model_dir, const int32_t *ids, size_t T,
                              const int *layers, size_t n_layers, const float *hidden, size_t H,
                              alkfw_error *err)
{
    safetensors_write_tensor *t = calloc(n_layers + 1, sizeof *t);
    char(*names)[32] = calloc(n_layers, sizeof *names);
    if (t == NULL || names == NULL) {
        free(t);
        free(names);
        err->status = ALKFW_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return ALKFW_ERR_NOMEM;
    }
    int64_t ids_shape[1] = {(int64_t)T}, h_shape[2] = {(int64_t)T, (int64_t)H};
    t[0] = (safetensors_write_tensor){"input_ids", SAFETENSORS_I32, 1, ids_shape, ids};
    for (size_t j = 0; j < n_layers; j++) {
        snprintf(names[j], sizeof names[j], "hidden.%d", layers[j]);
        t[j + 1] =
            (safetensors_write_tensor){names[j], SAFETENSORS_F32, 2, h_shape, hidden + j * T * H};
    }
    const char *keys[2] = {"format", "model"}, *values[2] = {"alkfw-hidden", model_dir};
    alkfw_status st = safetensors_write(path, t, n_layers + 1, keys, values, 2, err);
    free(t);
    free(names);
    return st;
}

/* Fills ids from --ids or by tokenizing --text with DIR/tokenizer.json. */
static int get_ids(const char *model_dir, const char *text, const char *ids_arg, int32_t **ids,
                   size_t *T)
{
    if (ids_arg != NULL) {
        long *v;
        if (parse_int_list("--ids", ids_arg, 0, INT32_MAX, &v, T) != 0)
            return CLI_EXIT_USAGE;
        *ids = malloc(*T * sizeof **ids);
        if (*ids == NULL) {
            free(v);
            fprintf(stderr, "alkfw hidden: out of memory\n");
            return CLI_EXIT_ERROR;
        }
        for (size_t i = 0; i < *T; i++)
            (*ids)[i] = (int32_t)v[i];
        free(v);
        return CLI_EXIT_OK;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
    alkfw_tokenizer *tok = NULL;
    alkfw_error err = {0};
    if (alkfw_tokenizer_load(path, &tok, &err) != ALKFW_OK)
        return cli_fail("hidden", &err);
    alkfw_encoding enc;
    alkfw_status st = alkfw_tokenizer_encode(tok, text, strlen(text), NULL, &enc, &err);
    alkfw_tokenizer_free(tok);
    if (st != ALKFW_OK)
        return cli_fail("hidden", &err);
    *T = enc.n_tokens;
    *ids = malloc((enc.n_tokens ? enc.n_tokens : 1) * sizeof **ids);
    if (*ids != NULL)
        memcpy(*ids, enc.ids, enc.n_tokens * sizeof **ids);
    alkfw_encoding_free(&enc);
    if (*ids == NULL) {
        fprintf(stderr, "alkfw hidden: out of memory\n");
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}

int cmd_hidden(int argc, char **argv)
{
    const char *model_dir = cli_default_model_dir(), *layers_arg = NULL, *text = NULL;
    const char *ids_arg = NULL, *out_path = NULL, *backend = "auto";
    int json = 0;
    long threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            hidden_usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        }
        if (next == NULL) {
            fprintf(stderr, "alkfw hidden: %s needs a value\n\n", a);
            hidden_usage(stderr);
            return CLI_EXIT_USAGE;
        }
        if (strcmp(a, "--model") == 0)
            model_dir = next;
        else if (strcmp(a, "--layers") == 0)
            layers_arg = next;
        else if (strcmp(a, "--text") == 0)
            text = next;
        else if (strcmp(a, "--ids") == 0)
            ids_arg = next;
        else if (strcmp(a, "--out") == 0)
            out_path = next;
        else if (strcmp(a, "--backend") == 0)
            backend = next;
        else if (strcmp(a, "--threads") == 0) {
            char *end;
            threads = strtol(next, &end, 10);
            if (*end != '\0' || threads < 0 || threads > 1024) {
                fprintf(stderr, "alkfw hidden: --threads: '%s' is not a count in [0, 1024]\n",
                        next);
                return CLI_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "alkfw hidden: unknown option '%s'\n\n", a);
            hidden_usage(stderr);
            return CLI_EXIT_USAGE;
        }
        i++;
    }
    if ((text == NULL) == (ids_arg == NULL) || (out_path == NULL) == (json == 0)) {
        fprintf(stderr, "alkfw hidden: give exactly one of --text and --ids, and exactly one "
                        "of --out and --json\n\n");
        hidden_usage(stderr);
        return CLI_EXIT_USAGE;
    }

    alkfw_model_options opts;
    alkfw_model_options_init(&opts);
    opts.n_threads = (int)threads;
    if (strcmp(backend, "auto") == 0)
        opts.backend = ALKFW_BACKEND_AUTO;
    else if (strcmp(backend, "c") == 0)
        opts.backend = ALKFW_BACKEND_C;
    else if (strcmp(backend, "openblas") == 0)
        opts.backend = ALKFW_BACKEND_OPENBLAS;
    else if (strcmp(backend, "cuda") == 0)
        opts.backend = ALKFW_BACKEND_CUDA;
    else {
        fprintf(stderr, "alkfw hidden: --backend: unknown backend '%s'\n", backend);
        return CLI_EXIT_USAGE;
    }

    alkfw_model *model = NULL;
    alkfw_error err = {0};
    if (alkfw_model_open(model_dir, &opts, &model, &err) != ALKFW_OK)
        return cli_fail("hidden", &err);
    alkfw_model_info info;
    alkfw_model_get_info(model, &info);

    /* indices: the given ones without repeats (each becomes one tensor), or all */
    int *layers = NULL;
    size_t n_layers = 0;
    int rc = CLI_EXIT_OK;
    if (layers_arg != NULL) {
        long *v;
        if (parse_int_list("--layers", layers_arg, 0, info.n_layers, &v, &n_layers) != 0) {
            alkfw_model_free(model);
            return CLI_EXIT_USAGE;
        }
        layers = malloc(n_layers * sizeof *layers);
        size_t k = 0;
        for (size_t i = 0; layers != NULL && i < n_layers; i++) {
            int seen = 0;
            for (size_t j = 0; j < k; j++)
                seen |= layers[j] == (int)v[i];
            if (!seen)
                layers[k++] = (int)v[i];
        }
        n_layers = k;
        free(v);
    } else {
        n_layers = (size_t)info.n_layers + 1;
        layers = malloc(n_layers * sizeof *layers);
        for (size_t i = 0; layers != NULL && i < n_layers; i++)
            layers[i] = (int)i;
    }

    int32_t *ids = NULL;
    size_t T = 0;
    float *hidden = NULL;
    size_t H = (size_t)info.hidden_size;
    if (layers == NULL) {
        fprintf(stderr, "alkfw hidden: out of memory\n");
        rc = CLI_EXIT_ERROR;
        goto done;
    }
    if ((rc = get_ids(model_dir, text, ids_arg, &ids, &T)) != CLI_EXIT_OK)
        goto done;
    hidden = malloc((n_layers * T * H > 0 ? n_layers * T * H : 1) * sizeof *hidden);
    if (hidden == NULL) {
        fprintf(stderr, "alkfw hidden: out of memory for %zu tokens\n", T);
        rc = CLI_EXIT_ERROR;
        goto done;
    }
    if (alkfw_model_hidden(model, ids, T, layers, n_layers, hidden, &err) != ALKFW_OK) {
        rc = cli_fail("hidden", &err);
        goto done;
    }
    if (json)
        print_json(ids, T, layers, n_layers, hidden, H);
    else if (write_out(out_path, model_dir, ids, T, layers, n_layers, hidden, H, &err) != ALKFW_OK)
        rc = cli_fail("hidden", &err);
    else
        fprintf(stderr, "alkfw hidden: %zu tokens, %zu indices -> %s\n", T, n_layers, out_path);
done:
    free(hidden);
    free(ids);
    free(layers);
    alkfw_model_free(model);
    return rc;
}
