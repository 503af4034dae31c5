/*
 * alarm.c - the alarm a screen returns: levels, the spans that drove it, JSON, and freeing.
 */
#include "firewall/firewall.h"

#include "common/error.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Levels and freeing                                                                        */
/* ---------------------------------------------------------------------------------------- */

const char *alkfw_level_string(alkfw_level level)
{
    switch (level) {
    case ALKFW_CLEAR:
        return "CLEAR";
    case ALKFW_SUSPICIOUS:
        return "SUSPICIOUS";
    case ALKFW_DANGEROUS:
        return "DANGEROUS";
    }
    return "UNKNOWN";
}

void alkfw_alarm_free(alkfw_alarm *alarm)
{
    if (alarm == NULL)
        return;
    for (size_t i = 0; i < alarm->n_directions; i++)
        free(alarm->directions[i].name);
    free(alarm->directions);
    for (size_t i = 0; i < alarm->n_spans; i++)
        free(alarm->spans[i].direction);
    free(alarm->spans);
    free(alarm->model);
    free(alarm->codebook);
    memset(alarm, 0, sizeof *alarm);
}

alkfw_level firewall_level(double score, double suspicious, double dangerous)
{
    if (score > dangerous)
        return ALKFW_DANGEROUS;
    if (score > suspicious)
        return ALKFW_SUSPICIOUS;
    return ALKFW_CLEAR;
}

/* ---------------------------------------------------------------------------------------- */
/* Spans                                                                                     */
/* ---------------------------------------------------------------------------------------- */

typedef struct span_run {
    size_t start, end;
    size_t direction;
    double p;
} span_run;

/* Orders runs by p, highest first; ties by start then direction, so the order is total and
 * the output deterministic. */
static int span_run_compare(const void *a, const void *b)
{
    const span_run *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->direction < y->direction ? -1 : (x->direction > y->direction);
}

/* Appends one run to a growing array. Returns 0, or -1 when out of memory. */
static int span_runs_push(span_run **runs, size_t *n, size_t *cap, span_run r)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        span_run *g = realloc(*runs, c * sizeof *g);
        if (g == NULL)
            return -1;
        *runs = g;
        *cap = c;
    }
    (*runs)[(*n)++] = r;
    return 0;
}

alkfw_status firewall_spans(const codebook *cb, const codebook_result *res,
                            const alkfw_span *token_spans, size_t first, double threshold,
                            size_t max_spans, alkfw_alarm_span **out, size_t *n_out,
                            alkfw_error *err)
{
    *out = NULL;
    *n_out = 0;
    size_t T = res->n_tokens;
    if (max_spans == 0 || first >= T)
        return ALKFW_OK;

    span_run *runs = NULL;
    size_t n_runs = 0, cap = 0;
    for (int d = 0; d < res->n_outputs; d++) {
        const double *p = res->p + (size_t)d * T;
        double alpha = cb->dir_alpha[d];
        int open = 0;
        span_run cur = {0, 0, (size_t)d, 0.0};
        for (size_t t = first; t <= T; t++) {
            int high = t < T && alpha * p[t] > threshold;
            int has_bytes = high && token_spans[t].end > token_spans[t].start;
            if (high && !has_bytes)
                continue; /* a token without bytes (BOS) neither opens nor closes a run */
            if (high && !open) {
                cur.start = token_spans[t].start;
                cur.end = token_spans[t].end;
                cur.p = p[t];
                open = 1;
                continue;
            }
            if (high) {
                if (token_spans[t].start < cur.start)
                    cur.start = token_spans[t].start;
                if (token_spans[t].end > cur.end)
                    cur.end = token_spans[t].end;
                if (p[t] > cur.p)
                    cur.p = p[t];
                continue;
            }
            if (open && span_runs_push(&runs, &n_runs, &cap, cur) != 0) {
                free(runs);
                return error_set(err, ALKFW_ERR_NOMEM, "spans: out of memory");
            }
            open = 0;
        }
    }
    if (n_runs == 0)
        return ALKFW_OK;

    qsort(runs, n_runs, sizeof *runs, span_run_compare);
    size_t n = n_runs < max_spans ? n_runs : max_spans;
    alkfw_alarm_span *spans = calloc(n, sizeof *spans);
    if (spans == NULL) {
        free(runs);
        return error_set(err, ALKFW_ERR_NOMEM, "spans: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        spans[i].start = runs[i].start;
        spans[i].end = runs[i].end;
        spans[i].p = runs[i].p;
        spans[i].direction = strdup(codebook_output_name(cb, (int)runs[i].direction));
        if (spans[i].direction == NULL) {
            for (size_t j = 0; j < i; j++)
                free(spans[j].direction);
            free(spans);
            free(runs);
            return error_set(err, ALKFW_ERR_NOMEM, "spans: out of memory");
        }
    }
    free(runs);
    *out = spans;
    *n_out = n;
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON                                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* Builds the alarm object; NULL when out of memory. */
static cJSON *alarm_json_object(const alkfw_alarm *a)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    int ok = cJSON_AddStringToObject(o, "level", alkfw_level_string(a->level)) != NULL &&
             cJSON_AddNumberToObject(o, "score", a->score) != NULL;

    cJSON *th = ok ? cJSON_AddObjectToObject(o, "thresholds") : NULL;
    ok = ok && th != NULL &&
         cJSON_AddNumberToObject(th, "suspicious", a->threshold_suspicious) != NULL &&
         cJSON_AddNumberToObject(th, "dangerous", a->threshold_dangerous) != NULL;

    cJSON *dirs = ok ? cJSON_AddArrayToObject(o, "directions") : NULL;
    ok = ok && dirs != NULL;
    for (size_t i = 0; ok && i < a->n_directions; i++) {
        const alkfw_direction_score *d = &a->directions[i];
        cJSON *e = cJSON_CreateObject();
        ok = e != NULL && cJSON_AddItemToArray(dirs, e) &&
             cJSON_AddStringToObject(e, "name", d->name ? d->name : "") != NULL &&
             cJSON_AddNumberToObject(e, "mean", d->mean) != NULL &&
             cJSON_AddNumberToObject(e, "max", d->max) != NULL &&
             cJSON_AddNumberToObject(e, "max_position", (double)d->max_position) != NULL &&
             cJSON_AddNumberToObject(e, "weight", d->weight) != NULL;
    }

    cJSON *spans = ok ? cJSON_AddArrayToObject(o, "spans") : NULL;
    ok = ok && spans != NULL;
    for (size_t i = 0; ok && i < a->n_spans; i++) {
        const alkfw_alarm_span *s = &a->spans[i];
        cJSON *e = cJSON_CreateObject();
        ok = e != NULL && cJSON_AddItemToArray(spans, e) &&
             cJSON_AddNumberToObject(e, "start", (double)s->start) != NULL &&
             cJSON_AddNumberToObject(e, "end", (double)s->end) != NULL &&
             cJSON_AddStringToObject(e, "direction", s->direction ? s->direction : "") != NULL &&
             cJSON_AddNumberToObject(e, "p", s->p) != NULL;
    }

    ok = ok && cJSON_AddNumberToObject(o, "tokens", (double)a->n_tokens) != NULL &&
         cJSON_AddNumberToObject(o, "special_tokens", (double)a->n_special_tokens) != NULL &&
         cJSON_AddNumberToObject(o, "replaced", (double)a->n_replaced) != NULL &&
         cJSON_AddBoolToObject(o, "truncated", a->truncated != 0) != NULL &&
         cJSON_AddStringToObject(o, "model", a->model ? a->model : "") != NULL &&
         cJSON_AddStringToObject(o, "codebook", a->codebook ? a->codebook : "") != NULL &&
         cJSON_AddNumberToObject(o, "elapsed_ms", a->elapsed_ms) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

alkfw_status alkfw_alarm_to_json(const alkfw_alarm *alarm, char **json, alkfw_error *err)
{
    if (alarm == NULL || json == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "alarm_to_json: alarm and json must not be NULL");
    *json = NULL;
    cJSON *o = alarm_json_object(alarm);
    if (o == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "alarm_to_json: out of memory");
    *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (*json == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "alarm_to_json: out of memory");
    return ALKFW_OK;
}
