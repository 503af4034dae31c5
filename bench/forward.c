/*
 * forward.c - speed and memory of the detector forward pass on SmolLM2-135M-shaped weights.
 *
 * Writes random weights of the shape in shared/models/smollm2-135m/config.json once, in BF16
 * and in F32, into a cache directory (ALKFW_BENCH_CACHE, default /tmp/alkfw-bench-forward),
 * then for T = 16, 64, 256, 512 tokens and hidden-state depth 8 (the default detector's
 * deepest layer) and 30 (all blocks plus the final norm) reports:
 *   - median wall time of alkfw_model_hidden over several runs after one warm-up,
 *   - GFLOP/s of the forward (matrix products plus causal attention, counted exactly),
 *   - the OpenBLAS sgemm GFLOP/s measured in the same run on the model's own matrix shapes
 *     ([T, in] x [out, in]^T for q, k, v, o, gate, up, down) and the ratio of the two,
 *   - peak RSS of a fresh process that loads the model and runs the forward, against the
 *     bytes of the weights that depth uses (embedding + blocks + final norm when used),
 *   - load time (alkfw_model_open: config, mapping, header validation).
 * Each configuration runs in its own child process (this program re-executed), so peak RSS
 * belongs to that configuration alone; inside it the timed forwards alternate with sgemm
 * rounds of the same number of blocks, so both rates are measured under the same load.
 *
 * Usage: bench_forward [--threads N] [--reps N] [--quick]
 *   --quick   only T = 16 and 256
 */
#include "alkfw.h"
#include "formats/safetensors.h"
#include "model/matmul.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SMOL_CONFIG ALKFW_SHARED_DIR "/models/smollm2-135m/config.json"

/* SmolLM2-135M's shape, checked against the config when the weights are written. */
enum { H = 576, L = 30, NH = 9, NKV = 3, HD = 64, I = 1536, V = 49152 };
enum { QD = NH * HD, KD = NKV * HD };

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float uniform_pm(float scale)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return scale * (2.0f * (float)((rng_state >> 11) * 0x1.0p-53) - 1.0f);
}

/* ---- writing the weights ---------------------------------------------------------------- */

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (in == NULL || out == NULL) {
        if (in)
            fclose(in);
        if (out)
            fclose(out);
        return -1;
    }
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    return fclose(out);
}

/* Writes dir/config.json and dir/model.safetensors with random weights of dtype (F32 or
 * BF16), unless already there. */
static int make_model(const char *dir, safetensors_dtype dtype)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, R_OK) == 0)
        return 0;
    mkdir(dir, 0755);
    fprintf(stderr, "bench_forward: writing random %s weights to %s\n",
            safetensors_dtype_name(dtype), dir);
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (copy_file(SMOL_CONFIG, cfg) != 0) {
        fprintf(stderr, "bench_forward: cannot copy %s\n", SMOL_CONFIG);
        return -1;
    }

    enum { PER_LAYER = 9 };
    size_t n = 2 + (size_t)L * PER_LAYER;
    safetensors_write_tensor *t = calloc(n, sizeof *t);
    char(*names)[96] = calloc(n, sizeof *names);
    int64_t(*shapes)[2] = calloc(n, sizeof *shapes);
    void **bufs = calloc(n, sizeof *bufs);
    if (!t || !names || !shapes || !bufs)
        return -1;
    size_t k = 0;
    size_t esize = safetensors_dtype_size(dtype);

#define ADD(NAME_FMT, LAYER, D0, D1, SCALE, OFFSET)                                                \
    do {                                                                                           \
        snprintf(names[k], sizeof names[k], NAME_FMT, LAYER);                                      \
        shapes[k][0] = (D0);                                                                       \
        shapes[k][1] = (D1);                                                                       \
        size_t cnt = (size_t)(D0) * (size_t)((D1) > 0 ? (D1) : 1);                                 \
        bufs[k] = malloc(cnt * esize);                                                             \
        if (bufs[k] == NULL)                                                                       \
            return -1;                                                                             \
        for (size_t e = 0; e < cnt; e++) {                                                         \
            float x = (OFFSET) + uniform_pm(SCALE);                                                \
            if (dtype == SAFETENSORS_BF16)                                                         \
                ((uint16_t *)bufs[k])[e] = safetensors_f32_to_bf16(x);                             \
            else                                                                                   \
                ((float *)bufs[k])[e] = x;                                                         \
        }                                                                                          \
        t[k] = (safetensors_write_tensor){names[k], dtype, (D1) > 0 ? 2 : 1, shapes[k], bufs[k]};  \
        k++;                                                                                       \
    } while (0)

    ADD("model.embed_tokens.weight%.0d", 0, V, H, 1.0f, 0.0f);
    for (int l = 0; l < L; l++) {
        ADD("model.layers.%d.input_layernorm.weight", l, H, 0, 0.1f, 1.0f);
        ADD("model.layers.%d.self_attn.q_proj.weight", l, QD, H, 0.07f, 0.0f);
        ADD("model.layers.%d.self_attn.k_proj.weight", l, KD, H, 0.07f, 0.0f);
        ADD("model.layers.%d.self_attn.v_proj.weight", l, KD, H, 0.07f, 0.0f);
        ADD("model.layers.%d.self_attn.o_proj.weight", l, H, QD, 0.07f, 0.0f);
        ADD("model.layers.%d.post_attention_layernorm.weight", l, H, 0, 0.1f, 1.0f);
        ADD("model.layers.%d.mlp.gate_proj.weight", l, I, H, 0.07f, 0.0f);
        ADD("model.layers.%d.mlp.up_proj.weight", l, I, H, 0.07f, 0.0f);
        ADD("model.layers.%d.mlp.down_proj.weight", l, H, I, 0.04f, 0.0f);
    }
    ADD("model.norm.weight%.0d", 0, H, 0, 0.1f, 1.0f);
#undef ADD

    const char *mk[1] = {"format"}, *mv[1] = {"pt"};
    alkfw_error err = {0};
    alkfw_status st = safetensors_write(path, t, k, mk, mv, 1, &err);
    for (size_t i = 0; i < k; i++)
        free(bufs[i]);
    free(bufs);
    free(t);
    free(names);
    free(shapes);
    if (st != ALKFW_OK) {
        fprintf(stderr, "bench_forward: %s\n", err.message);
        return -1;
    }
    return 0;
}

/* ---- the measurements (run in child processes) ----------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Floating-point operations of a forward of T tokens through `blocks` blocks: the matrix
 * products and the causal attention (QK^T and PV over the visible keys only). */
static double forward_flops(int T, int blocks)
{
    double per_token = 2.0 * ((double)H * QD + 2.0 * H * KD + (double)QD * H + 3.0 * H * I);
    double attn = 2.0 * 2.0 * NH * HD * ((double)T * (T + 1) / 2.0);
    return blocks * (T * per_token + attn);
}

/* sgemm on one block's matrix shapes at T rows (F32, through the same matmul interface and
 * backend as the forward): [T, in] x [out, in]^T for q, k, v, o, gate, up and down. */
typedef struct sgemm_bench {
    matmul_ctx mm;
    int T;
    float *x, *y, *w[7];
    double flops; /* per round */
} sgemm_bench;

static const int sgemm_shapes[7][2] = {{QD, H}, {KD, H}, {KD, H}, {H, QD}, {I, H}, {I, H}, {H, I}};

static int sgemm_setup(sgemm_bench *b, int T, int threads)
{
    alkfw_error err = {0};
    if (matmul_init(ALKFW_BACKEND_AUTO, threads, &b->mm, &err) != ALKFW_OK) {
        fprintf(stderr, "bench_forward: %s\n", err.message);
        return -1;
    }
    b->T = T;
    b->x = malloc((size_t)T * I * sizeof(float));
    b->y = malloc((size_t)T * I * sizeof(float));
    for (size_t i = 0; i < (size_t)T * I; i++)
        b->x[i] = uniform_pm(1.0f);
    b->flops = 0;
    for (int s = 0; s < 7; s++) {
        size_t n = (size_t)sgemm_shapes[s][0] * sgemm_shapes[s][1];
        b->w[s] = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            b->w[s][i] = uniform_pm(0.05f);
        b->flops += 2.0 * T * n;
    }
    return 0;
}

/* One timed round of `rounds` blocks' products; returns GFLOP/s. */
static double sgemm_round(sgemm_bench *b, int rounds)
{
    double a = now_ms();
    for (int k = 0; k < rounds; k++)
        for (int s = 0; s < 7; s++)
            matmul_abt(&b->mm, (size_t)b->T, (size_t)sgemm_shapes[s][0], (size_t)sgemm_shapes[s][1],
                       1.0f, b->x, (size_t)sgemm_shapes[s][1], b->w[s], (size_t)sgemm_shapes[s][1],
                       0.0f, b->y, (size_t)sgemm_shapes[s][0]);
    return b->flops * rounds / ((now_ms() - a) * 1e6);
}

static void sgemm_free(sgemm_bench *b)
{
    for (int s = 0; s < 7; s++)
        free(b->w[s]);
    free(b->x);
    free(b->y);
}

/* Child: open the model in dir and run the forward to index depth on T random ids. Phase 1
 * (a warm-up and one run) fixes peak RSS before anything else is allocated; phase 2 times
 * reps forwards interleaved with sgemm rounds of as many blocks, so both rates see the same
 * machine load. Prints "ms=<median> load=<ms> rss=<kB> sgemm=<median GFLOP/s>". */
static int child_forward(const char *dir, int depth, int T, int reps, int threads)
{
    alkfw_model_options opts;
    alkfw_model_options_init(&opts);
    opts.n_threads = threads;
    alkfw_model *m = NULL;
    alkfw_error err = {0};
    double t0 = now_ms();
    if (alkfw_model_open(dir, &opts, &m, &err) != ALKFW_OK) {
        fprintf(stderr, "bench_forward: %s\n", err.message);
        return 1;
    }
    double load = now_ms() - t0;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    float *out = malloc((size_t)T * H * sizeof *out);
    for (int t = 0; t < T; t++)
        ids[t] = (int32_t)((rng_state = rng_state * 6364136223846793005ull + 1) >> 33) % V;
    int idx[1] = {depth};
    for (int r = 0; r < 2; r++) {
        if (alkfw_model_hidden(m, ids, (size_t)T, idx, 1, out, &err) != ALKFW_OK) {
            fprintf(stderr, "bench_forward: %s\n", err.message);
            return 1;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);

    sgemm_bench sb;
    if (sgemm_setup(&sb, T, threads) != 0)
        return 1;
    int blocks = depth < L ? depth : L;
    double *times = malloc((size_t)reps * sizeof *times);
    double *rates = malloc((size_t)reps * sizeof *rates);
    for (int r = 0; r < reps; r++) {
        double a = now_ms();
        alkfw_model_hidden(m, ids, (size_t)T, idx, 1, out, &err);
        times[r] = now_ms() - a;
        rates[r] = sgemm_round(&sb, blocks);
    }
    qsort(times, (size_t)reps, sizeof *times, cmp_double);
    qsort(rates, (size_t)reps, sizeof *rates, cmp_double);
    printf("ms=%.3f load=%.3f rss=%ld sgemm=%.3f\n", times[reps / 2], load, ru.ru_maxrss,
           rates[reps / 2]);
    sgemm_free(&sb);
    free(times);
    free(rates);
    free(ids);
    free(out);
    alkfw_model_free(m);
    return 0;
}

/* Runs this program again with args and returns its first stdout line in line. */
static int run_child(char *const args[], char *line, size_t size)
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    line[0] = '\0';
    if (in == NULL || fgets(line, (int)size, in) == NULL)
        line[0] = '\0';
    if (in)
        fclose(in);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && line[0] ? 0 : -1;
}

/* ---- the table ----------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc >= 7 && strcmp(argv[1], "--child-forward") == 0)
        return child_forward(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));

    int threads = 0, reps = 5, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else {
            fprintf(stderr, "usage: bench_forward [--threads N] [--reps N] [--quick]\n");
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    const char *cache = getenv("ALKFW_BENCH_CACHE");
    if (cache == NULL || cache[0] == '\0')
        cache = "/tmp/alkfw-bench-forward";
    mkdir(cache, 0755);
    char dirs[2][1024];
    const char *dtype_names[2] = {"BF16", "F32"};
    snprintf(dirs[0], sizeof dirs[0], "%s/smollm2-bf16", cache);
    snprintf(dirs[1], sizeof dirs[1], "%s/smollm2-f32", cache);
    if (make_model(dirs[0], SAFETENSORS_BF16) != 0 || make_model(dirs[1], SAFETENSORS_F32) != 0)
        return 1;

    const int all_T[4] = {16, 64, 256, 512}, quick_T[2] = {16, 256};
    const int *Ts = quick ? quick_T : all_T;
    int nT = quick ? 2 : 4;
    const int depths[2] = {8, 30};
    char targ[16], rarg[16], harg[16], darg[16], line[256];
    snprintf(rarg, sizeof rarg, "%d", reps);
    snprintf(harg, sizeof harg, "%d", threads);

    printf("bench_forward: SmolLM2-135M-shaped random weights (hidden %d, %d layers, %d/%d "
           "heads, mlp %d, vocab %d), threads %s, median of %d runs\n",
           H, L, NH, NKV, I, V, threads ? harg : "all cores", reps);
    printf("%-5s %5s %4s %10s %8s %8s %6s %9s %9s %7s %8s\n", "dtype", "depth", "T", "median ms",
           "GFLOP/s", "sgemm", "ratio", "peak RSS", "weights", "RSS/w", "load ms");
    for (int d = 0; d < 2; d++) {
        size_t esize = d == 0 ? 2 : 4;
        for (int k = 0; k < 2; k++) {
            int depth = depths[k], blocks = depth < L ? depth : L;
            double layer = (double)(H + QD * H + 2 * KD * H + H * QD + H + 3 * H * I);
            double weights =
                esize * ((double)V * H + blocks * layer + (depth == L ? (double)H : 0.0));
            for (int i = 0; i < nT; i++) {
                snprintf(targ, sizeof targ, "%d", Ts[i]);
                snprintf(darg, sizeof darg, "%d", depth);
                char *args[] = {argv[0], "--child-forward", dirs[d], darg, targ, rarg, harg, NULL};
                double ms, load, sgemm;
                long rss;
                if (run_child(args, line, sizeof line) != 0 ||
                    sscanf(line, "ms=%lf load=%lf rss=%ld sgemm=%lf", &ms, &load, &rss, &sgemm) !=
                        4) {
                    fprintf(stderr, "bench_forward: forward child failed\n");
                    return 1;
                }
                double gf = forward_flops(Ts[i], blocks) / (ms * 1e6);
                printf("%-5s %5d %4d %10.1f %8.1f %8.1f %5.0f%% %7.1fMB %7.1fMB %7.2f %8.1f\n",
                       dtype_names[d], depth, Ts[i], ms, gf, sgemm, 100.0 * gf / sgemm,
                       rss / 1024.0, weights / 1048576.0, rss * 1024.0 / weights, load);
                fflush(stdout);
            }
        }
    }
    return 0;
}
