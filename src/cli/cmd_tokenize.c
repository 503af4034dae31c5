/*
 * cmd_tokenize.c - alkfw tokenize: token ids (and byte offsets) of text, one text from the
 * command line or stdin, or a batch of JSONL lines.
 */
#include "cli/cli.h"
#include "cli/fw_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tokenize_usage(FILE *out)
{
    fprintf(
        out,
        "usage: alkfw tokenize [--model DIR | --tokenizer FILE] [--offsets] [--plain-specials]\n"
        "                      [--no-special-tokens] [--jsonl] [TEXT]\n"
        "\n"
        "Prints {\"ids\": [...], \"offsets\": [[start, end], ...]} for TEXT (stdin when absent).\n"
        "  --model DIR          model directory holding tokenizer.json (default: the bundled\n"
        "                       stories260k)\n"
        "  --tokenizer FILE     a tokenizer.json file\n"
        "  --offsets            add the byte span [start, end) of every token in the input\n"
        "  --plain-specials     treat special-token text in the input as plain text\n"
        "  --no-special-tokens  do not add the post-processor's tokens (BOS)\n"
        "  --jsonl              read lines {\"text\": ...} from stdin, write one result line "
        "each\n");
}

/* Reads all of stdin into a malloc'd buffer; returns NULL on failure. */
static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) { /* a closed or unreadable stdin is no empty text */
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Encodes one text and prints its JSON line. Returns 0 or 1 (error printed). */
static int tokenize_one(const alkfw_tokenizer *tok, const char *text, size_t len,
                        const alkfw_encode_options *opts, int offsets)
{
    alkfw_encoding enc;
    alkfw_error err = {0};
    if (alkfw_tokenizer_encode(tok, text, len, opts, &enc, &err) != ALKFW_OK)
        return cli_fail("tokenize", &err);
    /* printed by hand: numbers only, and much faster than building a cJSON tree */
    fputs("{\"ids\": [", stdout);
    for (size_t i = 0; i < enc.n_tokens; i++)
        printf(i ? ", %d" : "%d", (int)enc.ids[i]);
    fputc(']', stdout);
    if (offsets) {
        fputs(", \"offsets\": [", stdout);
        for (size_t i = 0; i < enc.n_tokens; i++)
            printf(i ? ", [%zu, %zu]" : "[%zu, %zu]", enc.spans[i].start, enc.spans[i].end);
        fputc(']', stdout);
    }
    fputs("}\n", stdout);
    alkfw_encoding_free(&enc);
    return 0;
}

/* --jsonl: one {"text": ...} object per stdin line, one result line per input line. */
static int tokenize_jsonl(const alkfw_tokenizer *tok, const alkfw_encode_options *opts, int offsets)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int status = CLI_EXIT_OK;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t blank = 0; /* blank lines (spaces, tabs, CR) are skipped, as screen --jsonl */
        while (blank < (size_t)n && strchr(" \t\r\n", line[blank]) != NULL && line[blank] != 0)
            blank++;
        if (blank == (size_t)n)
            continue;
        /* the rows of screen --jsonl: a NUL escape or a duplicate "text" is refused, not cut */
        fwu_row row;
        char why[256];
        if (fwu_parse_row(line, (size_t)n, &row, why, sizeof why) != 0) {
            fprintf(stderr, "alkfw tokenize: stdin line %ld: %s (expected {\"text\": \"...\"})\n",
                    lineno, why);
            status = CLI_EXIT_ERROR;
            break;
        }
        int r = tokenize_one(tok, row.text, row.len, opts, offsets);
        fwu_row_free(&row);
        if (r != 0) {
            status = CLI_EXIT_ERROR;
            break;
        }
    }
    if (status == CLI_EXIT_OK && ferror(stdin)) {
        fprintf(stderr, "alkfw tokenize: reading stdin failed after line %ld\n", lineno);
        status = CLI_EXIT_ERROR;
    }
    free(line);
    return status;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model_dir = NULL, *tok_file = NULL, *text = NULL;
    int offsets = 0, jsonl = 0;
    alkfw_encode_options opts;
    alkfw_encode_options_init(&opts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            tokenize_usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--model") == 0 && i + 1 < argc) {
            model_dir = argv[++i];
        } else if (strcmp(a, "--tokenizer") == 0 && i + 1 < argc) {
            tok_file = argv[++i];
        } else if (strcmp(a, "--offsets") == 0) {
            offsets = 1;
        } else if (strcmp(a, "--plain-specials") == 0) {
            opts.plain_specials = 1;
        } else if (strcmp(a, "--no-special-tokens") == 0) {
            opts.add_special_tokens = 0;
        } else if (strcmp(a, "--jsonl") == 0) {
            jsonl = 1;
        } else if (strcmp(a, "--") == 0 && i + 1 < argc && text == NULL) {
            text = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "alkfw tokenize: unknown option '%s'\n\n", a);
            tokenize_usage(stderr);
            return CLI_EXIT_USAGE;
        } else if (text == NULL) {
            text = a;
        } else {
            fprintf(stderr, "alkfw tokenize: more than one TEXT argument\n");
            return CLI_EXIT_USAGE;
        }
    }
    if (model_dir != NULL && tok_file != NULL) {
        fprintf(stderr, "alkfw tokenize: give --model or --tokenizer, not both\n");
        return CLI_EXIT_USAGE;
    }
    if (jsonl && text != NULL) {
        fprintf(stderr, "alkfw tokenize: --jsonl reads stdin; do not give TEXT\n");
        return CLI_EXIT_USAGE;
    }

    char path[4096];
    if (tok_file == NULL) {
        snprintf(path, sizeof path, "%s/tokenizer.json",
                 model_dir ? model_dir : cli_default_model_dir());
        tok_file = path;
    }
    alkfw_tokenizer *tok = NULL;
    alkfw_error err = {0};
    if (alkfw_tokenizer_load(tok_file, &tok, &err) != ALKFW_OK)
        return cli_fail("tokenize", &err);

    int status;
    if (jsonl) {
        status = tokenize_jsonl(tok, &opts, offsets);
    } else if (text != NULL) {
        status =
            tokenize_one(tok, text, strlen(text), &opts, offsets) ? CLI_EXIT_ERROR : CLI_EXIT_OK;
    } else {
        size_t len;
        char *buf = read_stdin(&len);
        if (buf == NULL) {
            fprintf(stderr, "alkfw tokenize: cannot read stdin\n");
            alkfw_tokenizer_free(tok);
            return CLI_EXIT_ERROR;
        }
        status = tokenize_one(tok, buf, len, &opts, offsets) ? CLI_EXIT_ERROR : CLI_EXIT_OK;
        free(buf);
    }
    alkfw_tokenizer_free(tok);
    return status;
}
