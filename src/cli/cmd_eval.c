/*
 * cmd_eval.c - alkfw eval: screen every row of a labeled JSONL file with a codebook and
 * measure it: ROC AUC, recall at 1% and 5% false-positive rate, precision / recall / F1 and the
 * confusion matrix at the codebook's thresholds, breakdowns by source and label, latency.
 */
#include "cli/cli.h"
#include "cli/fw_util.h"
#include "codebook/metrics.h"
#include "firewall/firewall.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POSITIVE 64

static void eval_usage(FILE *out)
{
    fprintf(out, "usage: alkfw eval --data FILE.jsonl [--codebook FILE] [--model DIR] [options]\n"
                 "\n"
                 "Screens every row {\"text\", \"label\", \"source\"} and measures the detector.\n"
                 "`benign` rows are negatives; every other label is positive unless --positive\n"
                 "names the positive labels (rows of other labels are then left out).\n"
                 "\n"
                 "options:\n"
                 "  --model DIR          detector model (default: the embedded stories260k)\n"
                 "  --codebook FILE      codebook (default: DIR/codebook.safetensors)\n"
                 "  --json               print the report as JSON\n"
                 "  --roc FILE.svg       write the ROC curve as an SVG plot\n"
                 "  --positive a,b,...   the labels counted as positive\n"
                 "  --threads N          texts screened at once (default 1; latency is per text)\n"
                 "  --max-tokens N       cut longer inputs (default: the model's max positions)\n"
                 "  --last-token         score the last position alone\n"
                 "  --no-smoothing       score unsmoothed per-token features\n"
                 "  --quiet              no progress bar\n");
}

/* ---------------------------------------------------------------------------------------- */
/* Screening every row                                                                       */
/* ---------------------------------------------------------------------------------------- */

typedef struct eval_row {
    int use;      /* 0: left out (label not asked for) */
    int positive; /* 1 attack, 0 benign */
    int failed;
    double score;
    int level;
    double ms;
} eval_row;

typedef struct eval_job {
    const alkfw_firewall *fw;
    const fwu_dataset *ds;
    eval_row *rows;
    size_t next, done;
    pthread_mutex_t lock;
    fwu_progress *prog;
} eval_job;

static void *eval_worker(void *arg)
{
    eval_job *j = arg;
    while (1) {
        pthread_mutex_lock(&j->lock);
        size_t i = j->next++;
        pthread_mutex_unlock(&j->lock);
        if (i >= j->ds->n)
            return NULL;
        eval_row *r = &j->rows[i];
        if (r->use) {
            const fwu_row *row = &j->ds->rows[i];
            alkfw_alarm alarm;
            alkfw_error err = {0};
            if (alkfw_screen(j->fw, row->text, row->len, &alarm, &err) == ALKFW_OK) {
                r->score = alarm.score;
                r->level = (int)alarm.level;
                r->ms = alarm.elapsed_ms;
            } else {
                r->failed = 1;
                fprintf(stderr, "alkfw eval: line %zu: %s\n", row->line, err.message);
            }
            alkfw_alarm_free(&alarm);
        }
        pthread_mutex_lock(&j->lock);
        j->done++;
        if (j->prog)
            fwu_progress_update(j->prog, j->done);
        pthread_mutex_unlock(&j->lock);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Metrics                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* A JSON number, or null for NaN (JSON has no NaN). */
static cJSON *num(double x)
{
    return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull();
}

static void add_num(cJSON *o, const char *key, double x)
{
    cJSON_AddItemToObject(o, key, num(x));
}

static cJSON *confusion_json(metrics_confusion c)
{
    cJSON *o = cJSON_CreateObject();
    add_num(o, "tp", (double)c.tp);
    add_num(o, "fp", (double)c.fp);
    add_num(o, "tn", (double)c.tn);
    add_num(o, "fn", (double)c.fn);
    return o;
}

/* The q-quantile (nearest rank) of n sorted values. */
static double percentile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return NAN;
    size_t rank = (size_t)ceil(q * (double)n);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Metrics of the subset of scored rows where keep[i] is set (NULL keeps all), with
 * thresholds ts (suspicious) and td (dangerous). */
static cJSON *group_json(const double *score, const int *label, const int *keep, size_t n,
                         double ts, double td)
{
    double *s = malloc((n ? n : 1) * sizeof *s);
    int *y = malloc((n ? n : 1) * sizeof *y);
    cJSON *o = cJSON_CreateObject();
    if (s == NULL || y == NULL) {
        free(s);
        free(y);
        return o;
    }
    size_t m = 0, pos = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        if (keep == NULL || keep[i]) {
            s[m] = score[i];
            y[m] = label[i];
            pos += (size_t)label[i];
            sum += score[i];
            m++;
        }
    metrics_confusion c = metrics_confusion_at(s, y, m, ts);
    metrics_confusion cd = metrics_confusion_at(s, y, m, td);
    add_num(o, "n", (double)m);
    add_num(o, "positive", (double)pos);
    add_num(o, "negative", (double)(m - pos));
    add_num(o, "flagged", (double)(c.tp + c.fp));
    add_num(o, "flagged_rate", m ? (double)(c.tp + c.fp) / (double)m : NAN);
    add_num(o, "dangerous_rate", m ? (double)(cd.tp + cd.fp) / (double)m : NAN);
    add_num(o, "mean_score", m ? sum / (double)m : NAN);
    if (pos > 0)
        add_num(o, "recall", metrics_recall(c));
    if (pos < m)
        add_num(o, "fpr", (double)c.fp / (double)(c.fp + c.tn));
    if (pos > 0 && pos < m)
        add_num(o, "roc_auc", metrics_roc_auc(s, y, m));
    free(s);
    free(y);
    return o;
}

/* Adds one breakdown object (by source or by label) to report under key. names[i] is row i's
 * group; rows with use[i] == 0 are skipped. */
static void add_breakdown(cJSON *report, const char *key, const char *const *names,
                          const double *score, const int *label, size_t n, double ts, double td)
{
    cJSON *o = cJSON_AddObjectToObject(report, key);
    int *keep = malloc((n ? n : 1) * sizeof *keep);
    int *seen = calloc(n ? n : 1, sizeof *seen);
    if (keep == NULL || seen == NULL) {
        free(keep);
        free(seen);
        return;
    }
    /* groups in order of first appearance */
    for (size_t i = 0; i < n; i++) {
        if (seen[i])
            continue;
        for (size_t j = i; j < n; j++) {
            keep[j] = strcmp(names[j], names[i]) == 0;
            seen[j] |= keep[j];
        }
        for (size_t j = 0; j < i; j++)
            keep[j] = 0;
        cJSON_AddItemToObject(o, names[i][0] ? names[i] : "(none)",
                              group_json(score, label, keep, n, ts, td));
    }
    free(keep);
    free(seen);
}

typedef struct eval_data {
    size_t n;      /* scored rows */
    double *score; /* [n] */
    int *label;    /* [n] 1 positive */
    double *ms;    /* [n] */
    const char **source, **lab;
    double ts, td; /* thresholds applied */
    double wall;   /* seconds for all screens */
    size_t failed, left_out;
} eval_data;

/* The whole report as JSON (keys listed in docs/firewall.md). */
static cJSON *eval_report(const eval_data *e, const alkfw_firewall *fw, const char *data)
{
    cJSON *r = cJSON_CreateObject();
    add_num(r, "roc_auc", metrics_roc_auc(e->score, e->label, e->n));
    add_num(r, "recall_at_1pct_fpr", metrics_recall_at_fpr(e->score, e->label, e->n, 0.01));
    add_num(r, "recall_at_5pct_fpr", metrics_recall_at_fpr(e->score, e->label, e->n, 0.05));
    metrics_confusion c = metrics_confusion_at(e->score, e->label, e->n, e->ts);
    add_num(r, "precision", metrics_precision(c));
    add_num(r, "recall", metrics_recall(c));
    add_num(r, "f1", metrics_f1(c));
    cJSON_AddItemToObject(r, "confusion", confusion_json(c));
    metrics_confusion cd = metrics_confusion_at(e->score, e->label, e->n, e->td);
    cJSON *dang = cJSON_AddObjectToObject(r, "at_dangerous");
    add_num(dang, "precision", metrics_precision(cd));
    add_num(dang, "recall", metrics_recall(cd));
    add_num(dang, "f1", metrics_f1(cd));
    cJSON_AddItemToObject(dang, "confusion", confusion_json(cd));
    add_breakdown(r, "by_source", e->source, e->score, e->label, e->n, e->ts, e->td);
    add_breakdown(r, "by_label", e->lab, e->score, e->label, e->n, e->ts, e->td);

    double *sorted = malloc((e->n ? e->n : 1) * sizeof *sorted);
    cJSON *lat = cJSON_AddObjectToObject(r, "latency_ms");
    if (sorted != NULL) {
        double sum = 0;
        for (size_t i = 0; i < e->n; i++)
            sorted[i] = e->ms[i], sum += e->ms[i];
        qsort(sorted, e->n, sizeof *sorted, cmp_double);
        add_num(lat, "p50", percentile(sorted, e->n, 0.50));
        add_num(lat, "p95", percentile(sorted, e->n, 0.95));
        add_num(lat, "p99", percentile(sorted, e->n, 0.99));
        add_num(lat, "mean", e->n ? sum / (double)e->n : NAN);
        add_num(lat, "max", e->n ? sorted[e->n - 1] : NAN);
        free(sorted);
    }
    add_num(r, "texts_per_second", e->wall > 0 ? (double)e->n / e->wall : NAN);

    size_t pos = 0;
    for (size_t i = 0; i < e->n; i++)
        pos += (size_t)e->label[i];
    add_num(r, "n", (double)e->n);
    add_num(r, "n_positive", (double)pos);
    add_num(r, "n_negative", (double)(e->n - pos));
    add_num(r, "failed", (double)e->failed);
    add_num(r, "left_out", (double)e->left_out);
    cJSON *th = cJSON_AddObjectToObject(r, "thresholds");
    add_num(th, "suspicious", e->ts);
    add_num(th, "dangerous", e->td);
    cJSON_AddStringToObject(r, "model", alkfw_firewall_model_id(fw));
    cJSON_AddStringToObject(r, "codebook", alkfw_firewall_codebook_id(fw));
    const char *base = strrchr(data, '/');
    cJSON_AddStringToObject(r, "data", base ? base + 1 : data);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Output                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void print_group_table(const cJSON *groups, const char *title)
{
    printf("\n%-22s %6s %6s %6s %9s %9s %8s %8s\n", title, "n", "pos", "neg", "flagged", "recall",
           "fpr", "auc");
    const cJSON *g;
    cJSON_ArrayForEach(g, groups)
    {
        printf("%-22s %6.0f %6.0f %6.0f %8.1f%% %9.3f %8.3f %8.3f\n", g->string, jnum(g, "n"),
               jnum(g, "positive"), jnum(g, "negative"), 100 * jnum(g, "flagged_rate"),
               jnum(g, "recall"), jnum(g, "fpr"), jnum(g, "roc_auc"));
    }
}

static void print_human(const cJSON *r)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "confusion");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "at_dangerous");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(r, "latency_ms");
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(r, "thresholds");
    printf("model %s, codebook %s, data %s\n",
           cJSON_GetObjectItemCaseSensitive(r, "model")->valuestring,
           cJSON_GetObjectItemCaseSensitive(r, "codebook")->valuestring,
           cJSON_GetObjectItemCaseSensitive(r, "data")->valuestring);
    printf("texts %.0f (positive %.0f, negative %.0f, failed %.0f, left out %.0f)\n\n",
           jnum(r, "n"), jnum(r, "n_positive"), jnum(r, "n_negative"), jnum(r, "failed"),
           jnum(r, "left_out"));
    printf("ROC AUC               %.4f\n", jnum(r, "roc_auc"));
    printf("recall at 1%% FPR      %.4f\n", jnum(r, "recall_at_1pct_fpr"));
    printf("recall at 5%% FPR      %.4f\n", jnum(r, "recall_at_5pct_fpr"));
    printf("at SUSPICIOUS (> %.4f): precision %.4f  recall %.4f  F1 %.4f\n", jnum(th, "suspicious"),
           jnum(r, "precision"), jnum(r, "recall"), jnum(r, "f1"));
    printf("   confusion: tp %.0f  fp %.0f  tn %.0f  fn %.0f\n", jnum(c, "tp"), jnum(c, "fp"),
           jnum(c, "tn"), jnum(c, "fn"));
    const cJSON *dc = cJSON_GetObjectItemCaseSensitive(d, "confusion");
    printf("at DANGEROUS  (> %.4f): precision %.4f  recall %.4f  F1 %.4f\n", jnum(th, "dangerous"),
           jnum(d, "precision"), jnum(d, "recall"), jnum(d, "f1"));
    printf("   confusion: tp %.0f  fp %.0f  tn %.0f  fn %.0f\n", jnum(dc, "tp"), jnum(dc, "fp"),
           jnum(dc, "tn"), jnum(dc, "fn"));
    print_group_table(cJSON_GetObjectItemCaseSensitive(r, "by_source"), "source");
    print_group_table(cJSON_GetObjectItemCaseSensitive(r, "by_label"), "label");
    printf("\nlatency ms: p50 %.2f  p95 %.2f  p99 %.2f   texts/s %.1f\n", jnum(l, "p50"),
           jnum(l, "p95"), jnum(l, "p99"), jnum(r, "texts_per_second"));
}

/* Writes the ROC curve of the scored rows as an SVG line plot with axes, ticks, the chance
 * diagonal and the operating points of the two thresholds. Returns 0, or -1 with a message
 * printed. */
static int write_roc_svg(const char *path, const eval_data *e, double auc, const char *title)
{
    double *fpr = NULL, *tpr = NULL;
    size_t np = 0;
    alkfw_error err = {0};
    if (metrics_roc_curve(e->score, e->label, e->n, &fpr, &tpr, NULL, &np, &err) != ALKFW_OK) {
        fprintf(stderr, "alkfw eval: --roc: %s\n", err.message);
        return -1;
    }
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "alkfw eval: %s: cannot write\n", path);
        free(fpr);
        free(tpr);
        return -1;
    }
    const double W = 520, H = 520, L = 70, R = 20, T = 50, B = 60;
    const double pw = W - L - R, ph = H - T - B;
#define PX(x) (L + (x)*pw)
#define PY(y) (T + (1 - (y)) * ph)
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"13\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f,
            "<text x=\"%.0f\" y=\"28\" text-anchor=\"middle\" font-size=\"12\">ROC of %.48s "
            "(AUC %.4f, %zu texts)</text>\n",
            W / 2, title, auc, e->n);
    for (int i = 0; i <= 5; i++) {
        double v = i / 5.0;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.1f</text>\n"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n",
                PX(v), PY(0), PX(v), PY(1), PX(0), PY(v), PX(1), PY(v), PX(v), PY(0) + 20, v,
                PX(0) - 8, PY(v) + 4, v);
    }
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"black\"/>\n"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
            "stroke-dasharray=\"5,5\"/>\n",
            L, T, pw, ph, PX(0), PY(0), PX(1), PY(1));
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">false positive rate "
            "(benign flagged)</text>\n",
            L + pw / 2, H - 15);
    fprintf(f,
            "<text transform=\"translate(20,%.1f) rotate(-90)\" text-anchor=\"middle\">true "
            "positive rate (attacks flagged)</text>\n",
            T + ph / 2);
    fprintf(f, "<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"2\" points=\"");
    for (size_t i = 0; i < np; i++)
        fprintf(f, "%.2f,%.2f ", PX(fpr[i]), PY(tpr[i]));
    fprintf(f, "\"/>\n");
    const double th[2] = {e->ts, e->td};
    const char *names[2] = {"SUSPICIOUS", "DANGEROUS"};
    const char *colors[2] = {"#e0a000", "#c02020"};
    for (int k = 0; k < 2; k++) {
        metrics_confusion c = metrics_confusion_at(e->score, e->label, e->n, th[k]);
        double x = c.fp + c.tn ? (double)c.fp / (double)(c.fp + c.tn) : 0;
        double y = c.tp + c.fn ? (double)c.tp / (double)(c.tp + c.fn) : 0;
        fprintf(f,
                "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"5\" fill=\"%s\"/>\n"
                "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s &gt; %.3f: FPR %.3f, TPR %.3f</text>\n",
                PX(x), PY(y), colors[k], PX(0.30), PY(0.20 - 0.07 * k), colors[k], names[k], th[k],
                x, y);
    }
    fprintf(f, "</svg>\n");
#undef PX
#undef PY
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    free(fpr);
    free(tpr);
    if (bad) {
        fprintf(stderr, "alkfw eval: %s: write failed\n", path);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The command                                                                               */
/* ---------------------------------------------------------------------------------------- */

/* Splits a comma list into at most MAX_POSITIVE names (pointers into a copy in *buf). */
static int split_names(const char *s, char **buf, char **names)
{
    *buf = strdup(s);
    if (*buf == NULL)
        return -1;
    int n = 0;
    for (char *tok = strtok(*buf, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (n >= MAX_POSITIVE)
            return -1;
        names[n++] = tok;
    }
    return n;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *codebook = NULL, *data = NULL, *roc = NULL, *positive = NULL;
    int json = 0, quiet = 0;
    long threads = 1;
    alkfw_options opts;
    alkfw_options_init(&opts);
    opts.max_spans = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        int ok = 1, takes = 1;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            eval_usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(o, "--json") == 0) {
            json = 1, takes = 0;
        } else if (strcmp(o, "--quiet") == 0) {
            quiet = 1, takes = 0;
        } else if (strcmp(o, "--last-token") == 0) {
            opts.last_token = 1, takes = 0;
        } else if (strcmp(o, "--no-smoothing") == 0) {
            opts.smoothing = 0, takes = 0;
        } else if (v == NULL) {
            ok = 0;
        } else if (strcmp(o, "--model") == 0) {
            model = v;
        } else if (strcmp(o, "--codebook") == 0) {
            codebook = v;
        } else if (strcmp(o, "--data") == 0) {
            data = v;
        } else if (strcmp(o, "--roc") == 0) {
            roc = v;
        } else if (strcmp(o, "--positive") == 0) {
            positive = v;
        } else if (strcmp(o, "--threads") == 0) {
            ok = fwu_parse_long(v, 1, 64, &threads) == 0;
        } else if (strcmp(o, "--max-tokens") == 0) {
            ok = fwu_parse_long(v, 1, 1L << 24, &n) == 0;
            opts.max_tokens = (size_t)n;
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "alkfw eval: bad option '%s'%s\n\n", o,
                    v ? " or its value" : " (or its value is missing)");
            eval_usage(stderr);
            return CLI_EXIT_USAGE;
        }
        i += takes;
    }
    if (data == NULL) {
        fprintf(stderr, "alkfw eval: --data is required\n\n");
        eval_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    char *pos_buf = NULL, *pos_names[MAX_POSITIVE];
    int n_pos = 0;
    if (positive != NULL && (n_pos = split_names(positive, &pos_buf, pos_names)) <= 0) {
        free(pos_buf);
        fprintf(stderr, "alkfw eval: --positive needs a comma-separated list of labels\n");
        return CLI_EXIT_USAGE;
    }

    int rc = CLI_EXIT_ERROR;
    fwu_dataset ds;
    memset(&ds, 0, sizeof ds);
    alkfw_firewall *fw = NULL;
    eval_row *rows = NULL;
    eval_data e;
    memset(&e, 0, sizeof e);
    cJSON *report = NULL;
    char msg[1024];
    alkfw_error err = {0};
    opts.n_threads = threads > 1 ? 1 : 0;

    if (fwu_dataset_load(data, 1, &ds, msg, sizeof msg) != 0) {
        fprintf(stderr, "alkfw eval: %s\n", msg);
        goto done;
    }
    if (fwu_open_firewall(model, codebook, &opts, &fw, NULL, &err) != ALKFW_OK) {
        rc = cli_fail("eval", &err);
        goto done;
    }

    /* which rows count, and as what */
    rows = calloc(ds.n + 1, sizeof *rows);
    if (rows == NULL)
        goto done;
    for (size_t i = 0; i < ds.n; i++) {
        const char *lab = ds.rows[i].label;
        rows[i].use = 1;
        rows[i].positive = strcmp(lab, "benign") != 0;
        if (n_pos > 0 && rows[i].positive) {
            rows[i].use = 0;
            for (int k = 0; k < n_pos; k++)
                rows[i].use |= strcmp(lab, pos_names[k]) == 0;
        }
        e.left_out += !rows[i].use;
    }
    /* a --positive label that no attack row carries would measure nothing, silently */
    for (int k = 0; k < n_pos; k++) {
        int seen = 0;
        for (size_t i = 0; i < ds.n && !seen; i++)
            seen = strcmp(ds.rows[i].label, pos_names[k]) == 0;
        if (strcmp(pos_names[k], "benign") == 0) {
            fprintf(stderr, "alkfw eval: --positive: 'benign' rows are the negatives; name "
                            "attack labels\n");
            goto done;
        }
        if (!seen) {
            fprintf(stderr, "alkfw eval: --positive: no row of %s has label '%s'\n", data,
                    pos_names[k]);
            goto done;
        }
    }

    /* screen them all */
    fwu_progress prog;
    fwu_progress_start(&prog, "eval", ds.n, 0);
    eval_job job = {fw, &ds, rows, 0, 0, PTHREAD_MUTEX_INITIALIZER, quiet ? NULL : &prog};
    double t0 = fwu_now();
    pthread_t tid[64];
    int started = 0;
    for (long t = 1; t < threads; t++)
        if (pthread_create(&tid[started], NULL, eval_worker, &job) == 0)
            started++;
    eval_worker(&job);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    e.wall = fwu_now() - t0;
    if (!quiet)
        fwu_progress_end(&prog, job.done);

    /* gather the scored rows */
    e.score = malloc((ds.n + 1) * sizeof *e.score);
    e.label = malloc((ds.n + 1) * sizeof *e.label);
    e.ms = malloc((ds.n + 1) * sizeof *e.ms);
    e.source = malloc((ds.n + 1) * sizeof *e.source);
    e.lab = malloc((ds.n + 1) * sizeof *e.lab);
    if (!e.score || !e.label || !e.ms || !e.source || !e.lab)
        goto done;
    for (size_t i = 0; i < ds.n; i++) {
        if (!rows[i].use)
            continue;
        if (rows[i].failed) {
            e.failed++;
            continue;
        }
        e.score[e.n] = rows[i].score;
        e.label[e.n] = rows[i].positive;
        e.ms[e.n] = rows[i].ms;
        e.source[e.n] = ds.rows[i].source;
        e.lab[e.n] = ds.rows[i].label;
        e.n++;
    }
    if (e.n == 0) {
        fprintf(stderr, "alkfw eval: no row could be scored\n");
        goto done;
    }
    /* the thresholds every screen applied: the options' overrides or the codebook's */
    firewall_thresholds(fw, &e.ts, &e.td);

    report = eval_report(&e, fw, data);
    if (report == NULL)
        goto done;
    if (json) {
        char *s = cJSON_Print(report);
        if (s == NULL)
            goto done;
        printf("%s\n", s);
        free(s);
    } else {
        print_human(report);
    }
    if (roc != NULL &&
        write_roc_svg(roc, &e, jnum(report, "roc_auc"), alkfw_firewall_codebook_id(fw)) != 0)
        goto done;
    rc = e.failed ? CLI_EXIT_ERROR : CLI_EXIT_OK;

done:
    cJSON_Delete(report);
    free(e.score);
    free(e.label);
    free(e.ms);
    free(e.source);
    free(e.lab);
    free(rows);
    free(pos_buf);
    alkfw_firewall_free(fw);
    fwu_dataset_free(&ds);
    return rc;
}
