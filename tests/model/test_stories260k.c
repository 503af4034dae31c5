/*
 * test_stories260k.c - hidden states of the bundled stories260k model agree with the
 * independent reference in models/stories260k/reference/, through the public call, through
 * KV-cache sessions fed in pieces, and on every backend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/test_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/matmul.h"
#include "model/model.h"

#define MODEL_DIR ALKFW_SOURCE_DIR "/models/stories260k"
#define N_REFS 6
#define N_LAYERS 5
#define HIDDEN 64

typedef struct reference {
    size_t n;
    int32_t ids[128];
    float *hidden; /* [N_LAYERS + 1][n][HIDDEN], HF convention: index 5 normed */
} reference;

/* Flattens a nested JSON array of numbers into out; returns the count. */
static size_t flatten(const cJSON *a, float *out, size_t at)
{
    if (cJSON_IsNumber(a)) {
        out[at] = (float)a->valuedouble;
        return at + 1;
    }
    for (const cJSON *e = a->child; e != NULL; e = e->next)
        at = flatten(e, out, at);
    return at;
}

static void load_reference(int k, reference *r)
{
    char path[512];
    snprintf(path, sizeof path, "%s/reference/ref_%d.json", MODEL_DIR, k);
    char *text = test_read_file(path, NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    const cJSON *ids = cJSON_GetObjectItem(root, "ids");
    r->n = (size_t)cJSON_GetArraySize(ids);
    assert_true(r->n > 0 && r->n <= 128);
    size_t i = 0;
    for (const cJSON *e = ids->child; e; e = e->next)
        r->ids[i++] = (int32_t)e->valueint;
    size_t per = r->n * HIDDEN;
    r->hidden = malloc((N_LAYERS + 1) * per * sizeof(float));
    assert_non_null(r->hidden);
    const cJSON *hs = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "hidden_states"), "data");
    assert_int_equal(flatten(hs, r->hidden, 0), (N_LAYERS + 1) * per);
    /* the reference stores the pre-norm residual at index 5; HF's index 5 is the normed one */
    const cJSON *fn = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "final_norm_hidden"), "data");
    assert_int_equal(flatten(fn, r->hidden + N_LAYERS * per, 0), per);
    cJSON_Delete(root);
}

/* Asserts |got - ref| <= 1e-4 * max(1, |ref|) everywhere; returns the largest scaled error. */
static double compare(const float *got, const float *ref, size_t n, const char *what)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double tol = 1e-4 * fmax(1.0, fabs((double)ref[i]));
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= tol))
            fail_msg("%s: element %zu: got %.7g, reference %.7g", what, i, got[i], ref[i]);
        worst = fmax(worst, d / tol);
    }
    return worst;
}

static alkfw_model *open_model(alkfw_backend backend, int threads)
{
    alkfw_model_options opts;
    alkfw_model_options_init(&opts);
    opts.backend = backend;
    opts.n_threads = threads;
    alkfw_model *m = NULL;
    alkfw_error err = {0};
    if (alkfw_model_open(MODEL_DIR, &opts, &m, &err) != ALKFW_OK)
        fail_msg("open: %s", err.message);
    return m;
}

static void check_all_references(alkfw_model *m, const char *label)
{
    int indices[N_LAYERS + 1] = {0, 1, 2, 3, 4, 5};
    for (int k = 0; k < N_REFS; k++) {
        reference r;
        load_reference(k, &r);
        size_t per = r.n * HIDDEN;
        float *out = malloc((N_LAYERS + 1) * per * sizeof(float));
        alkfw_error err = {0};
        assert_int_equal(alkfw_model_hidden(m, r.ids, r.n, indices, N_LAYERS + 1, out, &err),
                         ALKFW_OK);
        for (int l = 0; l <= N_LAYERS; l++) {
            char what[64];
            snprintf(what, sizeof what, "%s ref_%d index %d", label, k, l);
            compare(out + (size_t)l * per, r.hidden + (size_t)l * per, per, what);
        }
        free(out);
        free(r.hidden);
    }
}

static void hidden_states_match_reference_openblas(void **state)
{
    (void)state;
    alkfw_model *m = open_model(ALKFW_BACKEND_AUTO, 0);
    check_all_references(m, "auto");
    alkfw_model_free(m);
}

static void hidden_states_match_reference_portable_c(void **state)
{
    (void)state;
    alkfw_model *m = open_model(ALKFW_BACKEND_C, 1);
    check_all_references(m, "portable C");
    alkfw_model_free(m);
}

static void requested_indices_come_in_given_order(void **state)
{
    (void)state;
    alkfw_model *m = open_model(ALKFW_BACKEND_AUTO, 0);
    reference r;
    load_reference(0, &r);
    size_t per = r.n * HIDDEN;
    int indices[3] = {3, 1, 3};
    float *out = malloc(3 * per * sizeof(float));
    assert_int_equal(alkfw_model_hidden(m, r.ids, r.n, indices, 3, out, NULL), ALKFW_OK);
    compare(out, r.hidden + 3 * per, per, "slot 0 = index 3");
    compare(out + per, r.hidden + 1 * per, per, "slot 1 = index 1");
    compare(out + 2 * per, r.hidden + 3 * per, per, "slot 2 = index 3");
    free(out);
    free(r.hidden);
    alkfw_model_free(m);
}

/* Forwarding in pieces through a session equals forwarding at once, up to the float rounding
 * of sums taken in another order (sgemm blocks differently for other matrix sizes). */
#define PIECE_TOL 3e-5f

static void session_pieces_equal_whole_forward(void **state)
{
    (void)state;
    alkfw_model *m = open_model(ALKFW_BACKEND_AUTO, 0);
    reference r;
    load_reference(1, &r); /* 40 tokens */
    size_t per = r.n * HIDDEN;
    int indices[3] = {0, 2, 5};
    float *whole = malloc(3 * per * sizeof(float));
    assert_int_equal(alkfw_model_hidden(m, r.ids, r.n, indices, 3, whole, NULL), ALKFW_OK);

    model_session *s = NULL;
    alkfw_error err = {0};
    assert_int_equal(model_session_new(m, r.n, 5, &s, &err), ALKFW_OK);
    size_t cuts[] = {0, 1, 2, 9, 23, r.n};
    float piece[3 * 40 * HIDDEN];
    float worst = 0;
    for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0]; c++) {
        size_t a = cuts[c], n = cuts[c + 1] - a;
        assert_int_equal(model_session_forward(s, r.ids + a, n, indices, 3, piece, &err), ALKFW_OK);
        assert_int_equal(model_session_length(s), a + n);
        for (int j = 0; j < 3; j++) {
            for (size_t i = 0; i < n * HIDDEN; i++) {
                float w = whole[(size_t)j * per + a * HIDDEN + i];
                float p = piece[(size_t)j * n * HIDDEN + i];
                worst = fmaxf(worst, fabsf(w - p) / fmaxf(1.0f, fabsf(w)));
                if (fabsf(w - p) > PIECE_TOL * fmaxf(1.0f, fabsf(w)))
                    fail_msg("piece %zu index %d element %zu: %g vs %g", c, indices[j], i, p, w);
            }
        }
    }
    print_message("largest relative difference pieces vs whole: %.3g\n", worst);
    /* the capacity is full: one more token is a limit error and leaves the cache alone */
    assert_int_equal(model_session_forward(s, r.ids, 1, indices, 3, piece, &err), ALKFW_ERR_LIMIT);
    assert_int_equal(model_session_length(s), r.n);

    /* dropping the tail and forwarding it again gives the same states */
    model_session_truncate(s, 30);
    assert_int_equal(model_session_length(s), 30);
    assert_int_equal(model_session_forward(s, r.ids + 30, r.n - 30, indices, 3, piece, &err),
                     ALKFW_OK);
    for (int j = 0; j < 3; j++) {
        for (size_t i = 0; i < (r.n - 30) * HIDDEN; i++) {
            float w = whole[(size_t)j * per + 30 * HIDDEN + i];
            assert_true(fabsf(w - piece[(size_t)j * (r.n - 30) * HIDDEN + i]) <=
                        PIECE_TOL * fmaxf(1.0f, fabsf(w)));
        }
    }
    model_session_free(s);
    free(whole);
    free(r.hidden);
    alkfw_model_free(m);
}

/* One thread's share of the concurrency test: its own reference, many times over. */
typedef struct worker {
    alkfw_model *m;
    int ref;
    int failures;
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    reference r;
    load_reference(w->ref, &r);
    size_t per = r.n * HIDDEN;
    int indices[2] = {2, 5};
    float *out = malloc(2 * per * sizeof(float));
    for (int rep = 0; rep < 20; rep++) {
        if (alkfw_model_hidden(w->m, r.ids, r.n, indices, 2, out, NULL) != ALKFW_OK) {
            w->failures++;
            continue;
        }
        for (int j = 0; j < 2; j++) {
            const float *ref = r.hidden + (size_t)indices[j] * per;
            for (size_t i = 0; i < per; i++)
                if (!(fabsf(out[(size_t)j * per + i] - ref[i]) <=
                      1e-4f * fmaxf(1.0f, fabsf(ref[i]))))
                    w->failures++;
        }
    }
    free(out);
    free(r.hidden);
    return NULL;
}

/* One model handle serves concurrent forwards from several threads. */
static void concurrent_calls_on_one_model_agree(void **state)
{
    (void)state;
    alkfw_model *m = open_model(ALKFW_BACKEND_AUTO, 0);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){m, i + 1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    alkfw_model_free(m);
}

static void info_reports_config(void **state)
{
    (void)state;
    alkfw_model *m = open_model(ALKFW_BACKEND_AUTO, 0);
    alkfw_model_info info;
    alkfw_model_get_info(m, &info);
    assert_string_equal(info.architecture, "LlamaForCausalLM");
    assert_int_equal(info.hidden_size, 64);
    assert_int_equal(info.n_layers, 5);
    assert_int_equal(info.n_heads, 8);
    assert_int_equal(info.n_kv_heads, 4);
    assert_int_equal(info.head_dim, 8);
    assert_int_equal(info.intermediate_size, 172);
    assert_int_equal(info.vocab_size, 512);
    assert_int_equal(info.max_positions, 512);
    assert_true(info.tied_embeddings);
    assert_true(info.rope_theta == 10000.0);
    const void *data;
    size_t len;
    safetensors_dtype dt;
    model_embed_bytes(m, &data, &len, &dt);
    assert_int_equal(len, 512 * 64 * 4);
    assert_int_equal(dt, SAFETENSORS_F32);
    assert_non_null(data);
    assert_string_equal(model_dir(m), MODEL_DIR);
    alkfw_model_free(m);
}

static void bad_requests_are_errors(void **state)
{
    (void)state;
    alkfw_model *m = open_model(ALKFW_BACKEND_AUTO, 0);
    int32_t ids[3] = {1, 2, 3};
    int idx[1] = {6};
    float out[3 * HIDDEN];
    alkfw_error err = {0};
    assert_int_equal(alkfw_model_hidden(m, ids, 3, idx, 1, out, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "index 6"));
    idx[0] = 1;
    ids[1] = 512;
    assert_int_equal(alkfw_model_hidden(m, ids, 3, idx, 1, out, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "token id 512 at position 1"));
    ids[1] = -1;
    assert_int_equal(alkfw_model_hidden(m, ids, 3, idx, 1, out, &err), ALKFW_ERR_ARGUMENT);

    int32_t *many = calloc(513, sizeof *many);
    float *big = malloc(513 * HIDDEN * sizeof(float));
    assert_int_equal(alkfw_model_hidden(m, many, 513, idx, 1, big, &err), ALKFW_ERR_LIMIT);
    assert_non_null(strstr(err.message, "max_position_embeddings"));
    /* exactly max positions is fine */
    assert_int_equal(alkfw_model_hidden(m, many, 512, idx, 1, big, &err), ALKFW_OK);
    free(many);
    free(big);

    model_session *s = NULL;
    assert_int_equal(model_session_new(m, 8, 2, &s, &err), ALKFW_OK);
    idx[0] = 3;
    ids[1] = 2;
    assert_int_equal(model_session_forward(s, ids, 3, idx, 1, out, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "0..2"));
    assert_int_equal(model_session_length(s), 0);
    model_session_free(s);
    alkfw_model_free(m);
}

static void backend_not_built_is_backend_error(void **state)
{
    (void)state;
    alkfw_model_options opts;
    alkfw_model_options_init(&opts);
    opts.backend = ALKFW_BACKEND_CUDA;
    alkfw_model *m = NULL;
    alkfw_error err = {0};
    assert_int_equal(alkfw_model_open(MODEL_DIR, &opts, &m, &err), ALKFW_ERR_BACKEND);
    assert_non_null(strstr(err.message, "cuda"));
    assert_null(m);

    /* OpenBLAS works when built in and is a backend error otherwise */
    opts.backend = ALKFW_BACKEND_OPENBLAS;
    alkfw_status want = matmul_have_openblas() ? ALKFW_OK : ALKFW_ERR_BACKEND;
    assert_int_equal(alkfw_model_open(MODEL_DIR, &opts, &m, &err), want);
    if (want != ALKFW_OK)
        assert_non_null(strstr(err.message, "ALKFW_WITH_OPENBLAS"));
    alkfw_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hidden_states_match_reference_openblas),
        cmocka_unit_test(hidden_states_match_reference_portable_c),
        cmocka_unit_test(requested_indices_come_in_given_order),
        cmocka_unit_test(session_pieces_equal_whole_forward),
        cmocka_unit_test(concurrent_calls_on_one_model_agree),
        cmocka_unit_test(info_reports_config),
        cmocka_unit_test(bad_requests_are_errors),
        cmocka_unit_test(backend_not_built_is_backend_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
