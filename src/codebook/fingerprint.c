/*
 * fingerprint.c - which model a codebook belongs to: "hidden:layers:vocab:<sha256>" where the
 * hash covers the stored bytes of model.embed_tokens.weight (DESIGN §4).
 */
#include "codebook/codebook.h"

#include "common/error.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

alkfw_status codebook_fingerprint(int hidden_size, int n_layers, int vocab_size,
                                  const void *embed_bytes, size_t embed_len, char *out,
                                  size_t out_size, alkfw_error *err)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;

    if (!out || (!embed_bytes && embed_len))
        return error_set(err, ALKFW_ERR_ARGUMENT, "fingerprint: NULL buffer");
    if (hidden_size < 0 || n_layers < 0 || vocab_size < 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "fingerprint: negative model dimension");

    /* sha256 of the embedding bytes */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             (embed_len == 0 || EVP_DigestUpdate(ctx, embed_bytes, embed_len) == 1) &&
             EVP_DigestFinal_ex(ctx, digest, &dlen) == 1 && dlen == 32;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return error_set(err, ALKFW_ERR_INTERNAL, "fingerprint: sha256 failed");

    char hex[65];
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    int n = snprintf(out, out_size, "%d:%d:%d:%s", hidden_size, n_layers, vocab_size, hex);
    if (n < 0 || (size_t)n >= out_size)
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "fingerprint: buffer of %zu bytes is too small (need %d)", out_size,
                         n + 1);
    return ALKFW_OK;
}

/* The parts of a fingerprint. */
typedef struct fingerprint_parts {
    long hidden, layers, vocab;
    char hash[65];
} fingerprint_parts;

/* Splits "h:l:v:hex". Returns 0, or -1 when fp is not of that form. */
static int parse_fingerprint(const char *fp, fingerprint_parts *p)
{
    int n = 0;
    memset(p, 0, sizeof *p);
    if (sscanf(fp, "%ld:%ld:%ld:%n", &p->hidden, &p->layers, &p->vocab, &n) != 3 || n == 0)
        return -1;
    if (strlen(fp + n) != 64)
        return -1;
    memcpy(p->hash, fp + n, 65);
    return 0;
}

alkfw_status codebook_check_model(const codebook *cb, const char *fingerprint, alkfw_error *err)
{
    fingerprint_parts m, c;
    if (!fingerprint || parse_fingerprint(fingerprint, &m) != 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "model fingerprint '%.80s' is malformed",
                         fingerprint ? fingerprint : "(null)");

    /* whatever the codebook says, its shapes must fit the model */
    if (m.hidden != cb->hidden)
        return error_set(err, ALKFW_ERR_MISMATCH,
                         "the codebook is for hidden size %d but the model has %ld (codebook "
                         "%.100s, model %.100s)",
                         cb->hidden, m.hidden,
                         cb->model_fingerprint[0] ? cb->model_fingerprint : "(no fingerprint)",
                         fingerprint);
    if (cb->layers[cb->n_layers - 1] > m.layers)
        return error_set(err, ALKFW_ERR_MISMATCH,
                         "the codebook reads hidden state %d but the model has only %ld layers",
                         (int)cb->layers[cb->n_layers - 1], m.layers);
    if (!cb->model_fingerprint[0])
        return ALKFW_OK;

    if (parse_fingerprint(cb->model_fingerprint, &c) != 0)
        return error_set(err, ALKFW_ERR_FORMAT, "codebook fingerprint '%.80s' is malformed",
                         cb->model_fingerprint);
    const char *what = NULL;
    if (c.hidden != m.hidden)
        what = "hidden size";
    else if (c.layers != m.layers)
        what = "layer count";
    else if (c.vocab != m.vocab)
        what = "vocabulary size";
    else if (strcmp(c.hash, m.hash) != 0)
        what = "embedding weights";
    if (what)
        return error_set(err, ALKFW_ERR_MISMATCH,
                         "the codebook was built for another model (%s differ): codebook "
                         "fingerprint %s, model fingerprint %s",
                         what, cb->model_fingerprint, fingerprint);
    return ALKFW_OK;
}
