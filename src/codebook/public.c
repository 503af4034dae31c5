/*
 * public.c - the codebook section of the public API (alkfw.h): loading a codebook file for
 * inspection and checking it against a model fingerprint.
 */
#include "codebook/codebook.h"

#include "common/error.h"

#include <stdlib.h>

/* The public handle wraps the internal codebook. */
struct alkfw_codebook {
    codebook *cb;
};

alkfw_status alkfw_codebook_load(const char *path, alkfw_codebook **out, alkfw_error *err)
{
    if (out == NULL || path == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "codebook_load: path and out must not be NULL");
    *out = NULL;
    alkfw_codebook *h = malloc(sizeof *h);
    if (!h)
        return error_set(err, ALKFW_ERR_NOMEM, "codebook: out of memory");
    alkfw_status st = codebook_load(path, &h->cb, err);
    if (st != ALKFW_OK) {
        free(h);
        return st;
    }
    *out = h;
    return ALKFW_OK;
}

void alkfw_codebook_free(alkfw_codebook *h)
{
    if (!h)
        return;
    codebook_free(h->cb);
    free(h);
}

void alkfw_codebook_get_info(const alkfw_codebook *h, alkfw_codebook_info *out)
{
    const codebook *cb = h->cb;
    *out = (alkfw_codebook_info){.n_layers = cb->n_layers,
                                 .layers = cb->layers,
                                 .hidden_size = cb->hidden,
                                 .k = cb->k,
                                 .n_knots = cb->n_knots,
                                 .n_directions = cb->n_dirs,
                                 .directions = (const char *const *)cb->directions,
                                 .weights = cb->dir_alpha,
                                 .smoothing_window = cb->smoothing_window,
                                 .threshold_suspicious = cb->threshold_suspicious,
                                 .threshold_dangerous = cb->threshold_dangerous,
                                 .model_id = cb->model_id,
                                 .model_revision = cb->model_revision,
                                 .model_fingerprint = cb->model_fingerprint,
                                 .metrics = cb->metrics,
                                 .training_data = cb->training_data,
                                 .created_by = cb->created_by};
}

alkfw_status alkfw_codebook_check_model(const alkfw_codebook *h, const char *model_fingerprint,
                                        alkfw_error *err)
{
    if (h == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "codebook_check_model: codebook must not be NULL");
    return codebook_check_model(h->cb, model_fingerprint, err);
}
