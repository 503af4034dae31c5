/*
 * model.c - loading a Llama-family detector and running its decoder with a KV cache.
 *
 * The forward pass follows Hugging Face transformers' LlamaModel (and its Mistral and Qwen2
 * relatives) step by step: embedding lookup, then per block RMSNorm, q/k/v projections,
 * RoPE in the rotate-half layout, causal grouped-query attention, o projection and residual,
 * RMSNorm, SiLU-gated MLP and residual; the final RMSNorm only for index n_layers. Every
 * position of the new tokens is computed at once with batched matrix products.
 */
#include "model/model.h"

#include "common/error.h"
#include "model/matmul.h"
#include "model/pool.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tensors of one decoder block; biases are NULL when the architecture has none. */
typedef struct model_layer {
    const safetensors_tensor *attn_norm;
    const safetensors_tensor *wq, *wk, *wv, *wo;
    const safetensors_tensor *bq, *bk, *bv, *bo;
    const safetensors_tensor *mlp_norm;
    const safetensors_tensor *w_gate, *w_up, *w_down;
    const safetensors_tensor *b_gate, *b_up, *b_down;
} model_layer;

struct alkfw_model {
    char *dir;
    model_config cfg;
    safetensors_checkpoint *ckpt;
    const safetensors_tensor *embed;
    const safetensors_tensor *norm;
    model_layer *layers;
    float *inv_freq; /* [head_dim / 2], computed as transformers does, in float32 */
    matmul_ctx mm;
    size_t max_matrix; /* elements of the largest weight matrix */
    size_t max_vector; /* elements of the largest norm weight or bias */
    /* One finished session kept for the next alkfw_model_hidden call of the same depth, so
     * repeated calls skip allocating (and the kernel zeroing) its buffers and starting its
     * threads. Guarded by spare_lock; the model is otherwise read-only after opening. */
    pthread_mutex_t spare_lock;
    model_session *spare;
};

struct model_session {
    const alkfw_model *m;
    size_t capacity;
    size_t length;
    int depth;      /* deepest hidden-state index computed */
    int n_blocks;   /* decoder blocks run: min(depth, n_layers) */
    float *k_cache; /* [n_blocks][capacity][n_kv_heads * head_dim], after RoPE */
    float *v_cache;
    float *wbuf; /* one converted weight matrix */
    float *vbuf; /* one converted norm weight or bias */
    size_t rows; /* rows the activation buffers below hold */
    float *x, *xn, *q, *att, *gate, *up;
    float *rope_cs; /* [rows][head_dim]: cos, sin of the new positions' angles */
    model_pool *pool;
    size_t attn_rows; /* query rows of one kv group processed together */
    float *scores;    /* [group * attn_rows][capacity] */
    float *qg, *og;   /* [group * attn_rows][head_dim]: stacked queries and outputs */
};

/* Stacked query rows (query heads of one kv group x positions) per attention step: large
 * enough for efficient sgemm calls, small enough to bound the score buffer. */
#define ATTN_STACK 384

/* ------------------------------------------------------------------------------------------ */
/* loading                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Finds prefix+name, checks its dtype converts to F32 and its shape is [d0] (d1 < 0) or
 * [d0, d1]. A missing optional tensor gives *out = NULL. */
static alkfw_status find_weight(const alkfw_model *m, const char *prefix, const char *name,
                                int64_t d0, int64_t d1, int optional,
                                const safetensors_tensor **out, alkfw_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const safetensors_tensor *t = safetensors_checkpoint_find(m->ckpt, full);
    *out = t;
    if (t == NULL) {
        if (optional)
            return ALKFW_OK;
        return error_set(err, ALKFW_ERR_FORMAT, "missing tensor %s", full);
    }
    if (t->dtype != SAFETENSORS_F32 && t->dtype != SAFETENSORS_F16 && t->dtype != SAFETENSORS_BF16)
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "tensor %s has dtype %s (F32, F16 or BF16 expected)", full,
                         safetensors_dtype_name(t->dtype));
    int ndim = d1 < 0 ? 1 : 2;
    if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1)) {
        char got[96] = "";
        size_t at = 0;
        for (int i = 0; i < t->ndim && at < sizeof got - 24; i++)
            at += (size_t)snprintf(got + at, sizeof got - at, "%s%lld", i ? ", " : "",
                                   (long long)t->shape[i]);
        if (ndim == 1)
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tensor %s has shape [%s] but the config needs [%lld]", full, got,
                             (long long)d0);
        return error_set(err, ALKFW_ERR_FORMAT,
                         "tensor %s has shape [%s] but the config needs [%lld, %lld]", full, got,
                         (long long)d0, (long long)d1);
    }
    size_t n = (size_t)t->numel;
    if (ndim == 2 && n > m->max_matrix)
        ((alkfw_model *)m)->max_matrix = n;
    if (ndim == 1 && n > m->max_vector)
        ((alkfw_model *)m)->max_vector = n;
    return ALKFW_OK;
}

/* Binds and checks every tensor of every block against the configuration. Only headers are
 * read; no weight byte is touched. */
static alkfw_status bind_weights(alkfw_model *m, alkfw_error *err)
{
    const model_config *c = &m->cfg;
    const char *prefix = "model.";
    if (safetensors_checkpoint_find(m->ckpt, "model.embed_tokens.weight") == NULL &&
        safetensors_checkpoint_find(m->ckpt, "embed_tokens.weight") != NULL)
        prefix = ""; /* saved from the bare decoder (LlamaModel) */

    int64_t H = c->hidden_size, I = c->intermediate_size;
    int64_t QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    alkfw_status st;
    if ((st = find_weight(m, prefix, "embed_tokens.weight", c->vocab_size, H, 0, &m->embed, err)) ||
        (st = find_weight(m, prefix, "norm.weight", H, -1, 0, &m->norm, err)))
        return st;

    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (m->layers == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory for %d layers", c->n_layers);
    for (int l = 0; l < c->n_layers; l++) {
        model_layer *L = &m->layers[l];
        const struct {
            const char *name;
            int64_t d0, d1;
            int present; /* whether the architecture has this tensor */
            const safetensors_tensor **slot;
        } spec[] = {
            {"input_layernorm.weight", H, -1, 1, &L->attn_norm},
            {"self_attn.q_proj.weight", QD, H, 1, &L->wq},
            {"self_attn.k_proj.weight", KD, H, 1, &L->wk},
            {"self_attn.v_proj.weight", KD, H, 1, &L->wv},
            {"self_attn.o_proj.weight", H, QD, 1, &L->wo},
            {"self_attn.q_proj.bias", QD, -1, c->qkv_bias, &L->bq},
            {"self_attn.k_proj.bias", KD, -1, c->qkv_bias, &L->bk},
            {"self_attn.v_proj.bias", KD, -1, c->qkv_bias, &L->bv},
            {"self_attn.o_proj.bias", H, -1, c->o_bias, &L->bo},
            {"post_attention_layernorm.weight", H, -1, 1, &L->mlp_norm},
            {"mlp.gate_proj.weight", I, H, 1, &L->w_gate},
            {"mlp.up_proj.weight", I, H, 1, &L->w_up},
            {"mlp.down_proj.weight", H, I, 1, &L->w_down},
            {"mlp.gate_proj.bias", I, -1, c->mlp_bias, &L->b_gate},
            {"mlp.up_proj.bias", I, -1, c->mlp_bias, &L->b_up},
            {"mlp.down_proj.bias", H, -1, c->mlp_bias, &L->b_down},
        };
        for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
            if (!spec[i].present)
                continue; /* a bias the architecture does not have is never read */
            char name[128];
            snprintf(name, sizeof name, "layers.%d.%s", l, spec[i].name);
            if ((st = find_weight(m, prefix, name, spec[i].d0, spec[i].d1, 0, spec[i].slot, err)))
                return st;
        }
    }
    return ALKFW_OK;
}

/* inv_freq[i] = 1 / theta^(2i / head_dim), then the rope_scaling adjustment, each step in
 * float32 and in the order of transformers' RoPE initialisation functions, so the angles
 * agree with its to the last bit where the platform's powf does. */
static alkfw_status init_rope(alkfw_model *m, alkfw_error *err)
{
    const model_config *c = &m->cfg;
    int half = c->head_dim / 2;
    m->inv_freq = malloc((size_t)half * sizeof *m->inv_freq);
    if (m->inv_freq == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory");
    float base = (float)c->rope_theta;
    for (int i = 0; i < half; i++) {
        float expo = (float)(2 * i) / (float)c->head_dim;
        m->inv_freq[i] = 1.0f / powf(base, expo);
    }

    if (c->rope_scaling == MODEL_ROPE_LINEAR) {
        for (int i = 0; i < half; i++)
            m->inv_freq[i] /= (float)c->rope_factor;
    } else if (c->rope_scaling == MODEL_ROPE_LLAMA3) {
        /* low frequencies (long wavelengths) are divided by factor, high ones kept, and the
         * band between interpolated smoothly */
        float factor = (float)c->rope_factor;
        float low = (float)c->rope_low_freq_factor;
        float old_len = (float)c->rope_original_max_positions;
        float low_wavelen = (float)(c->rope_original_max_positions / c->rope_low_freq_factor);
        float high_wavelen = (float)(c->rope_original_max_positions / c->rope_high_freq_factor);
        float span = (float)(c->rope_high_freq_factor - c->rope_low_freq_factor);
        float two_pi = (float)(2.0 * 3.14159265358979323846);
        for (int i = 0; i < half; i++) {
            float f = m->inv_freq[i];
            float wavelen = two_pi / f;
            float scaled = wavelen > low_wavelen ? f / factor : f;
            float smooth = (old_len / wavelen - low) / span;
            float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
            int medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
            m->inv_freq[i] = medium ? smoothed : scaled;
        }
    }
    return ALKFW_OK;
}

void alkfw_model_options_init(alkfw_model_options *opts)
{
    if (opts == NULL)
        return;
    opts->n_threads = 0;
    opts->backend = ALKFW_BACKEND_AUTO;
}

alkfw_status alkfw_model_open(const char *dir, const alkfw_model_options *opts, alkfw_model **out,
                              alkfw_error *err)
{
    if (dir == NULL || out == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "alkfw_model_open: NULL argument");
    *out = NULL;
    alkfw_model_options defaults;
    alkfw_model_options_init(&defaults);
    if (opts == NULL)
        opts = &defaults;

    alkfw_model *m = calloc(1, sizeof *m);
    if (m == NULL || (m->dir = strdup(dir)) == NULL) {
        free(m);
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory opening %s", dir);
    }
    pthread_mutex_init(&m->spare_lock, NULL);
    alkfw_status st;
    if ((st = matmul_init(opts->backend, opts->n_threads, &m->mm, err)) ||
        (st = model_config_load(dir, &m->cfg, err)) || (st = init_rope(m, err)))
        goto fail;
    if ((st = safetensors_checkpoint_open(dir, &m->ckpt, err)))
        goto fail;
    if ((st = bind_weights(m, err))) {
        error_prefix(err, "%s", dir);
        goto fail;
    }
    *out = m;
    return ALKFW_OK;
fail:
    alkfw_model_free(m);
    return st;
}

void alkfw_model_free(alkfw_model *model)
{
    if (model == NULL)
        return;
    model_session_free(model->spare);
    pthread_mutex_destroy(&model->spare_lock);
    safetensors_checkpoint_close(model->ckpt);
    free(model->layers);
    free(model->inv_freq);
    free(model->dir);
    free(model);
}

void alkfw_model_get_info(const alkfw_model *model, alkfw_model_info *out)
{
    const model_config *c = &model->cfg;
    out->architecture = c->architecture;
    out->hidden_size = c->hidden_size;
    out->n_layers = c->n_layers;
    out->n_heads = c->n_heads;
    out->n_kv_heads = c->n_kv_heads;
    out->head_dim = c->head_dim;
    out->intermediate_size = c->intermediate_size;
    out->vocab_size = c->vocab_size;
    out->max_positions = c->max_positions;
    out->rope_theta = c->rope_theta;
    out->rms_norm_eps = c->rms_norm_eps;
    out->tied_embeddings = c->tied_embeddings;
}

const model_config *model_get_config(const alkfw_model *model)
{
    return &model->cfg;
}

const char *model_dir(const alkfw_model *model)
{
    return model->dir;
}

void model_embed_bytes(const alkfw_model *model, const void **data, size_t *len,
                       safetensors_dtype *dtype)
{
    if (data != NULL)
        *data = model->embed->data;
    if (len != NULL)
        *len = model->embed->nbytes;
    if (dtype != NULL)
        *dtype = model->embed->dtype;
}

/* ------------------------------------------------------------------------------------------ */
/* sessions                                                                                    */
/* ------------------------------------------------------------------------------------------ */

alkfw_status model_session_new(const alkfw_model *model, size_t capacity_tokens, int deepest_index,
                               model_session **out, alkfw_error *err)
{
    if (model == NULL || out == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "model_session_new: NULL argument");
    *out = NULL;
    const model_config *c = &model->cfg;
    if (deepest_index < 0 || deepest_index > c->n_layers)
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "hidden-state index %d is out of range (0..%d for this model)",
                         deepest_index, c->n_layers);
    if (capacity_tokens == 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "session capacity is 0 tokens");
    if (capacity_tokens > (size_t)c->max_positions)
        return error_set(err, ALKFW_ERR_LIMIT,
                         "%zu tokens exceed the model's max_position_embeddings (%d)",
                         capacity_tokens, c->max_positions);

    model_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory for a session");
    s->m = model;
    s->capacity = capacity_tokens;
    s->depth = deepest_index;
    s->n_blocks = deepest_index < c->n_layers ? deepest_index : c->n_layers;
    size_t kvd = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    size_t cache = (size_t)s->n_blocks * capacity_tokens * kvd;
    size_t group = (size_t)(c->n_heads / c->n_kv_heads);
    s->attn_rows = ATTN_STACK / group > 0 ? ATTN_STACK / group : 1;
    if (s->attn_rows > capacity_tokens)
        s->attn_rows = capacity_tokens;
    size_t stack = group * s->attn_rows;
    if (s->n_blocks > 0) {
        s->k_cache = malloc(cache * sizeof(float));
        s->v_cache = malloc(cache * sizeof(float));
        s->wbuf = malloc((model->max_matrix ? model->max_matrix : 1) * sizeof(float));
        s->scores = malloc(stack * capacity_tokens * sizeof(float));
        s->qg = malloc(stack * (size_t)c->head_dim * sizeof(float));
        s->og = malloc(stack * (size_t)c->head_dim * sizeof(float));
    }
    s->vbuf = malloc((model->max_vector + (size_t)c->hidden_size) * sizeof(float));
    if ((s->n_blocks > 0 &&
         (!s->k_cache || !s->v_cache || !s->wbuf || !s->scores || !s->qg || !s->og)) ||
        !s->vbuf) {
        model_session_free(s);
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory for a %zu-token session",
                         capacity_tokens);
    }
    alkfw_status st = model_pool_new(model->mm.n_threads, &s->pool, err);
    if (st != ALKFW_OK) {
        model_session_free(s);
        return st;
    }
    *out = s;
    return ALKFW_OK;
}

void model_session_free(model_session *s)
{
    if (s == NULL)
        return;
    free(s->k_cache);
    free(s->v_cache);
    free(s->wbuf);
    free(s->vbuf);
    free(s->x);
    free(s->xn);
    free(s->q);
    free(s->att);
    free(s->gate);
    free(s->up);
    free(s->rope_cs);
    model_pool_free(s->pool);
    free(s->scores);
    free(s->qg);
    free(s->og);
    free(s);
}

void model_session_truncate(model_session *s, size_t n_keep)
{
    if (n_keep < s->length)
        s->length = n_keep;
}

size_t model_session_length(const model_session *s)
{
    return s->length;
}

int model_session_depth(const model_session *s)
{
    return s->depth;
}

size_t model_session_capacity(const model_session *s)
{
    return s->capacity;
}

/* Makes the activation buffers hold at least n rows. */
static alkfw_status session_reserve(model_session *s, size_t n, alkfw_error *err)
{
    if (n <= s->rows)
        return ALKFW_OK;
    const model_config *c = &s->m->cfg;
    size_t H = (size_t)c->hidden_size, QD = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t I = (size_t)c->intermediate_size;
    float **bufs[7] = {&s->x, &s->xn, &s->q, &s->att, &s->gate, &s->up, &s->rope_cs};
    size_t widths[7] = {H, H, QD, QD, I, I, (size_t)c->head_dim};
    for (int i = 0; i < 7; i++) {
        float *p = realloc(*bufs[i], n * widths[i] * sizeof(float));
        if (p == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "out of memory for %zu activation rows", n);
        *bufs[i] = p;
    }
    s->rows = n;
    return ALKFW_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* the forward pass                                                                            */
/* ------------------------------------------------------------------------------------------ */

/* ---- element-wise steps, shared out over the session's threads ---- */

/* The element-wise loops get a second, AVX2 build chosen at load time on x86-64 CPUs that
 * have it (twice the vector width of the baseline SSE2 build). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MODEL_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MODEL_VECTOR_CLONES
#endif

/* Work below these sizes (elements, or rows) per thread runs on fewer threads. */
#define PAR_MIN_ELEMS 16384
#define PAR_MIN_CONVERT 65536

typedef struct convert_job {
    safetensors_dtype dtype;
    const uint8_t *src;
    float *dst;
} convert_job;

static void convert_share(void *ctx, size_t begin, size_t end)
{
    const convert_job *j = ctx;
    size_t es = safetensors_dtype_size(j->dtype);
    safetensors_convert_f32(j->dtype, j->src + begin * es, end - begin, j->dst + begin);
}

/* A weight as F32: in place when stored as aligned F32, else converted into buf. */
static const float *weight_f32(model_session *s, const safetensors_tensor *t, float *buf)
{
    if (t->dtype == SAFETENSORS_F32 && (uintptr_t)t->data % sizeof(float) == 0)
        return t->data;
    convert_job j = {t->dtype, t->data, buf};
    model_pool_run(s->pool, convert_share, &j, t->numel, PAR_MIN_CONVERT);
    return buf;
}

/* out[n, w.rows] = x[n, w.cols] . W^T (+ bias), out rows ldo floats apart; with accumulate
 * the product is added to out (the residual connection). */
static void linear(model_session *s, const float *x, size_t n, const safetensors_tensor *w,
                   const safetensors_tensor *bias, float *out, size_t ldo, int accumulate)
{
    size_t rows = (size_t)w->shape[0], cols = (size_t)w->shape[1];
    const float *W = weight_f32(s, w, s->wbuf);
    matmul_abt(&s->m->mm, n, rows, cols, 1.0f, x, cols, W, cols, accumulate ? 1.0f : 0.0f, out,
               ldo);
    if (bias != NULL) {
        const float *b = weight_f32(s, bias, s->vbuf);
        for (size_t t = 0; t < n; t++) {
            float *o = out + t * ldo;
            for (size_t j = 0; j < rows; j++)
                o[j] += b[j];
        }
    }
}

/* e^x for x <= 88.3, within about 2 ulp of expf (Cephes' polynomial on x - n ln 2), written
 * without branches or calls so that loops over it vectorize. Arguments below -87.3 give
 * about 1e-38 instead of a denormal or 0, which no sum or product here can tell apart. */
static inline float exp_approx(float x)
{
    /* clamped so that NaN never reaches the integer conversion below (undefined behaviour);
     * a NaN argument gives NaN back */
    float x0 = x;
    x = x > -87.3f ? x : -87.3f;
    x = x < 88.3f ? x : 88.3f;
    /* n = round(x / ln 2), by the 1.5 * 2^23 trick (valid for |n| < 2^22) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return x0 == x0 ? p * scale : x0;
}

/* The sum of n floats with eight partial sums, which the compiler keeps in one vector. */
static float sum_floats(const float *v, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += v[i + k];
    float s = 0;
    for (; i < n; i++)
        s += v[i];
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s;
}

typedef struct norm_job {
    const float *x;
    float *out;
    const float *g;
    size_t H;
    float eps;
} norm_job;

MODEL_VECTOR_CLONES
static void norm_share(void *ctx, size_t begin, size_t end)
{
    const norm_job *j = ctx;
    size_t H = j->H;
    for (size_t t = begin; t < end; t++) {
        const float *xt = j->x + t * H;
        float *ot = j->out + t * H;
        double ss = 0;
        for (size_t i = 0; i < H; i++)
            ss += (double)xt[i] * xt[i];
        float inv = 1.0f / sqrtf((float)(ss / (double)H) + j->eps);
        for (size_t i = 0; i < H; i++)
            ot[i] = j->g[i] * (xt[i] * inv);
    }
}

/* RMSNorm of n rows of width H: out = w * (x / sqrt(mean(x^2) + eps)). */
static void rmsnorm(model_session *s, const float *x, size_t n, const safetensors_tensor *w,
                    float *out)
{
    size_t H = (size_t)s->m->cfg.hidden_size;
    norm_job j = {x, out, weight_f32(s, w, s->vbuf), H, (float)s->m->cfg.rms_norm_eps};
    model_pool_run(s->pool, norm_share, &j, n, PAR_MIN_ELEMS / H + 1);
}

typedef struct rope_job {
    float *x;
    size_t ld;
    int n_heads, hd;
    const float *cs; /* [n][hd]: cos of the half angles, then sin */
} rope_job;

MODEL_VECTOR_CLONES
static void rope_share(void *ctx, size_t begin, size_t end)
{
    const rope_job *j = ctx;
    int half = j->hd / 2;
    for (size_t t = begin; t < end; t++) {
        const float *cosv = j->cs + t * (size_t)j->hd, *sinv = cosv + half;
        for (int h = 0; h < j->n_heads; h++) {
            float *v = j->x + t * j->ld + (size_t)h * (size_t)j->hd;
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * cosv[i] - x2 * sinv[i];
                v[i + half] = x2 * cosv[i] + x1 * sinv[i];
            }
        }
    }
}

/* Fills s->rope_cs for the n new positions: angle = position * inv_freq[i] in float32, then
 * its cosine and sine, as transformers computes its RoPE tables. */
static void rope_tables(model_session *s, size_t n)
{
    const alkfw_model *m = s->m;
    int hd = m->cfg.head_dim, half = hd / 2;
    for (size_t t = 0; t < n; t++) {
        float p = (float)(s->length + t);
        float *cs = s->rope_cs + t * (size_t)hd;
        for (int i = 0; i < half; i++) {
            float a = p * m->inv_freq[i];
            cs[i] = cosf(a);
            cs[half + i] = sinf(a);
        }
    }
}

/* Rotates n_heads heads of head_dim in each of n rows (row stride ld) by their positions in
 * the rotate-half layout: the pair (i, i + head_dim/2) turns by position * inv_freq[i]. */
static void rope(model_session *s, float *x, size_t n, size_t ld, int n_heads)
{
    rope_job j = {x, ld, n_heads, s->m->cfg.head_dim, s->rope_cs};
    model_pool_run(s->pool, rope_share, &j, n, 16);
}

typedef struct softmax_job {
    float *scores;
    size_t cols, rb, vis0; /* row r sees keys 0..vis0 + r % rb */
} softmax_job;

/* Softmax over the visible keys of each row; later keys get weight 0. */
MODEL_VECTOR_CLONES
static void softmax_share(void *ctx, size_t begin, size_t end)
{
    const softmax_job *j = ctx;
    for (size_t r = begin; r < end; r++) {
        float *row = j->scores + r * j->cols;
        size_t vis = j->vis0 + r % j->rb + 1;
        float mx = row[0];
        for (size_t k = 1; k < vis; k++)
            mx = row[k] > mx ? row[k] : mx;
        for (size_t k = 0; k < vis; k++)
            row[k] = exp_approx(row[k] - mx);
        float inv = 1.0f / sum_floats(row, vis);
        for (size_t k = 0; k < vis; k++)
            row[k] *= inv;
        memset(row + vis, 0, (j->cols - vis) * sizeof(float));
    }
}

typedef struct silu_job {
    float *gate;
    const float *up;
} silu_job;

/* gate = SiLU(gate) * up */
MODEL_VECTOR_CLONES
static void silu_share(void *ctx, size_t begin, size_t end)
{
    const silu_job *j = ctx;
    float *g = j->gate;
    const float *u = j->up;
    for (size_t i = begin; i < end; i++)
        g[i] = g[i] / (1.0f + exp_approx(-g[i])) * u[i];
}

/* Causal attention of the n new queries (positions len..len+n-1) of every head against the
 * cached keys and values of block l, 0..len+n-1, into s->att [n, n_heads * head_dim].
 * The query heads sharing one kv head are stacked into one matrix, so each step is two
 * sgemm calls (scores, then weighted values) per kv head instead of two per query head. */
static void attention(model_session *s, int l, size_t n)
{
    const model_config *c = &s->m->cfg;
    size_t hd = (size_t)c->head_dim, QD = (size_t)c->n_heads * hd;
    size_t KD = (size_t)c->n_kv_heads * hd;
    size_t group = (size_t)(c->n_heads / c->n_kv_heads);
    const float *K = s->k_cache + (size_t)l * s->capacity * KD;
    const float *V = s->v_cache + (size_t)l * s->capacity * KD;
    float scale = (float)(1.0 / sqrt((double)hd));

    for (size_t r0 = 0; r0 < n; r0 += s->attn_rows) {
        size_t r1 = r0 + s->attn_rows < n ? r0 + s->attn_rows : n;
        size_t rb = r1 - r0, cols = s->length + r1; /* keys visible to the last row */
        for (size_t g = 0; g < (size_t)c->n_kv_heads; g++) {
            /* stack the group's query heads: row hh * rb + i is head g*group+hh at r0+i */
            for (size_t hh = 0; hh < group; hh++)
                for (size_t i = 0; i < rb; i++)
                    memcpy(s->qg + (hh * rb + i) * hd, s->q + (r0 + i) * QD + (g * group + hh) * hd,
                           hd * sizeof(float));

            /* scores = q k^T / sqrt(head_dim) */
            matmul_abt(&s->m->mm, group * rb, cols, hd, scale, s->qg, hd, K + g * hd, KD, 0.0f,
                       s->scores, cols);

            /* softmax over the visible keys of each row */
            softmax_job sj = {s->scores, cols, rb, s->length + r0};
            model_pool_run(s->pool, softmax_share, &sj, group * rb, PAR_MIN_ELEMS / cols + 1);

            /* weighted values, scattered back to the heads' columns */
            matmul_ab(&s->m->mm, group * rb, hd, cols, s->scores, cols, V + g * hd, KD, s->og, hd);
            for (size_t hh = 0; hh < group; hh++)
                for (size_t i = 0; i < rb; i++)
                    memcpy(s->att + (r0 + i) * QD + (g * group + hh) * hd,
                           s->og + (hh * rb + i) * hd, hd * sizeof(float));
        }
    }
}

/* Copies the n rows of x [n, H] to every output slot whose index equals level. */
static void emit(const model_session *s, const float *x, size_t n, int level, const int *indices,
                 size_t n_indices, float *out)
{
    size_t H = (size_t)s->m->cfg.hidden_size;
    for (size_t j = 0; j < n_indices; j++) {
        if (indices[j] == level)
            memcpy(out + j * n * H, x, n * H * sizeof(float));
    }
}

/* One decoder block l over the n new rows of s->x, in place. */
static void block(model_session *s, int l, size_t n)
{
    const model_config *c = &s->m->cfg;
    const model_layer *L = &s->m->layers[l];
    size_t H = (size_t)c->hidden_size, I = (size_t)c->intermediate_size;
    size_t QD = (size_t)c->n_heads * (size_t)c->head_dim;
    size_t KD = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    float *kc = s->k_cache + ((size_t)l * s->capacity + s->length) * KD;
    float *vc = s->v_cache + ((size_t)l * s->capacity + s->length) * KD;

    /* attention rmsnorm */
    rmsnorm(s, s->x, n, L->attn_norm, s->xn);

    /* q, k, v projections; k and v go straight into the cache */
    linear(s, s->xn, n, L->wq, L->bq, s->q, QD, 0);
    linear(s, s->xn, n, L->wk, L->bk, kc, KD, 0);
    linear(s, s->xn, n, L->wv, L->bv, vc, KD, 0);

    /* rotary position embeddings on q and k */
    rope(s, s->q, n, QD, c->n_heads);
    rope(s, kc, n, KD, c->n_kv_heads);

    /* causal grouped-query attention */
    attention(s, l, n);

    /* output projection and residual connection */
    linear(s, s->att, n, L->wo, L->bo, s->x, H, 1);

    /* mlp rmsnorm */
    rmsnorm(s, s->x, n, L->mlp_norm, s->xn);

    /* gate and up projections, SiLU(gate) * up */
    linear(s, s->xn, n, L->w_gate, L->b_gate, s->gate, I, 0);
    linear(s, s->xn, n, L->w_up, L->b_up, s->up, I, 0);
    silu_job fj = {s->gate, s->up};
    model_pool_run(s->pool, silu_share, &fj, n * I, PAR_MIN_ELEMS);

    /* down projection and residual connection */
    linear(s, s->gate, n, L->w_down, L->b_down, s->x, H, 1);
}

alkfw_status model_session_forward(model_session *s, const int32_t *ids, size_t n_new,
                                   const int *indices, size_t n_indices, float *out,
                                   alkfw_error *err)
{
    if (s == NULL || (n_new > 0 && ids == NULL) || (n_indices > 0 && indices == NULL) ||
        (n_indices > 0 && n_new > 0 && out == NULL))
        return error_set(err, ALKFW_ERR_ARGUMENT, "model_session_forward: NULL argument");
    const alkfw_model *m = s->m;
    const model_config *c = &m->cfg;
    for (size_t j = 0; j < n_indices; j++) {
        if (indices[j] < 0 || indices[j] > s->depth)
            return error_set(err, ALKFW_ERR_ARGUMENT,
                             "hidden-state index %d is out of range (0..%d for this session)",
                             indices[j], s->depth);
    }
    if (n_new == 0)
        return ALKFW_OK;
    if (n_new > s->capacity - s->length)
        return error_set(err, ALKFW_ERR_LIMIT,
                         "%zu new tokens after %zu cached exceed the session's capacity of %zu "
                         "positions",
                         n_new, s->length, s->capacity);
    for (size_t t = 0; t < n_new; t++) {
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return error_set(err, ALKFW_ERR_ARGUMENT,
                             "token id %d at position %zu is outside the vocabulary (0..%d)",
                             (int)ids[t], s->length + t, c->vocab_size - 1);
    }
    alkfw_status st = session_reserve(s, n_new, err);
    if (st != ALKFW_OK)
        return st;
    rope_tables(s, n_new);

    /* token embeddings */
    size_t H = (size_t)c->hidden_size;
    size_t esize = safetensors_dtype_size(m->embed->dtype);
    for (size_t t = 0; t < n_new; t++) {
        const uint8_t *row = (const uint8_t *)m->embed->data + (size_t)ids[t] * H * esize;
        safetensors_convert_f32(m->embed->dtype, row, H, s->x + t * H);
    }
    emit(s, s->x, n_new, 0, indices, n_indices, out);

    /* decoder blocks up to the deepest requested index */
    for (int l = 0; l < s->n_blocks; l++) {
        block(s, l, n_new);
        if (l + 1 < c->n_layers)
            emit(s, s->x, n_new, l + 1, indices, n_indices, out);
    }

    /* the final norm belongs to index n_layers only */
    if (s->depth == c->n_layers) {
        rmsnorm(s, s->x, n_new, m->norm, s->xn);
        emit(s, s->xn, n_new, c->n_layers, indices, n_indices, out);
    }
    s->length += n_new;
    return ALKFW_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* the public call                                                                             */
/* ------------------------------------------------------------------------------------------ */

alkfw_status alkfw_model_hidden(const alkfw_model *model, const int32_t *ids, size_t n_tokens,
                                const int *indices, size_t n_indices, float *out, alkfw_error *err)
{
    if (model == NULL || (n_tokens > 0 && ids == NULL) || (n_indices > 0 && indices == NULL) ||
        (n_tokens > 0 && n_indices > 0 && out == NULL))
        return error_set(err, ALKFW_ERR_ARGUMENT, "alkfw_model_hidden: NULL argument");
    int deepest = 0;
    for (size_t j = 0; j < n_indices; j++) {
        if (indices[j] < 0 || indices[j] > model->cfg.n_layers)
            return error_set(err, ALKFW_ERR_ARGUMENT,
                             "hidden-state index %d is out of range (0..%d for this model)",
                             indices[j], model->cfg.n_layers);
        deepest = indices[j] > deepest ? indices[j] : deepest;
    }
    if (n_tokens == 0 || n_indices == 0)
        return ALKFW_OK;
    if (n_tokens > (size_t)model->cfg.max_positions)
        return error_set(err, ALKFW_ERR_LIMIT,
                         "%zu tokens exceed the model's max_position_embeddings (%d)", n_tokens,
                         model->cfg.max_positions);
    /* take the spare session when it fits, else make one */
    alkfw_model *m = (alkfw_model *)model; /* only the spare slot changes, under its lock */
    model_session *s = NULL;
    pthread_mutex_lock(&m->spare_lock);
    if (m->spare != NULL && m->spare->depth == deepest && m->spare->capacity >= n_tokens) {
        s = m->spare;
        m->spare = NULL;
    }
    pthread_mutex_unlock(&m->spare_lock);
    alkfw_status st = ALKFW_OK;
    if (s == NULL)
        st = model_session_new(model, n_tokens, deepest, &s, err);
    if (st != ALKFW_OK)
        return st;

    st = model_session_forward(s, ids, n_tokens, indices, n_indices, out, err);

    /* keep the most recent session as the spare */
    model_session_truncate(s, 0);
    pthread_mutex_lock(&m->spare_lock);
    model_session *old = m->spare;
    m->spare = s;
    pthread_mutex_unlock(&m->spare_lock);
    model_session_free(old);
    return st;
}
