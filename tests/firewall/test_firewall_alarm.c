/*
 * test_firewall_alarm.c - the parts of an alarm that need no model: levels by strict >, top
 * spans merged from per-token probabilities into input byte offsets, JSON, freeing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/test_util.h"

#include "firewall/firewall.h"

#include <math.h>
#include <stdio.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static void level_uses_strict_greater_than(void **state)
{
    (void)state;
    assert_int_equal(firewall_level(0.3, 0.3, 0.7), ALKFW_CLEAR);
    assert_int_equal(firewall_level(0.30001, 0.3, 0.7), ALKFW_SUSPICIOUS);
    assert_int_equal(firewall_level(0.7, 0.3, 0.7), ALKFW_SUSPICIOUS);
    assert_int_equal(firewall_level(0.70001, 0.3, 0.7), ALKFW_DANGEROUS);
    assert_string_equal(alkfw_level_string(ALKFW_CLEAR), "CLEAR");
    assert_string_equal(alkfw_level_string(ALKFW_SUSPICIOUS), "SUSPICIOUS");
    assert_string_equal(alkfw_level_string(ALKFW_DANGEROUS), "DANGEROUS");
    assert_string_equal(alkfw_level_string((alkfw_level)9), "UNKNOWN");
}

/* A codebook with two directions (alpha 1 and 0.5, anomaly 1) and nothing else filled. */
static codebook *two_direction_codebook(void)
{
    codebook *cb = NULL;
    assert_int_equal(codebook_alloc(1, 4, 2, 2, 2, &cb, NULL), ALKFW_OK);
    codebook_set_string(&cb->directions[0], "injection", NULL);
    codebook_set_string(&cb->directions[1], "jailbreak", NULL);
    cb->dir_alpha[0] = 1.0f;
    cb->dir_alpha[1] = 0.5f;
    cb->dir_alpha[2] = 1.0f;
    return cb;
}

/* Tokens: BOS (empty span) then 7 tokens of 3 bytes each: [0,3) [3,6) ... [18,21). */
static const alkfw_span token_spans[8] = {{0, 0},  {0, 3},   {3, 6},   {6, 9},
                                          {9, 12}, {12, 15}, {15, 18}, {18, 21}};

static void spans_merge_consecutive_high_tokens_and_rank_by_p(void **state)
{
    (void)state;
    codebook *cb = two_direction_codebook();
    /* P per output and token (T = 8) */
    double p[3][8] = {
        {0.9, 0.1, 0.6, 0.8, 0.2, 0.1, 0.1, 0.7},  /* injection: BOS high (skipped), runs 2-3, 7 */
        {0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.95, 0.1}, /* jailbreak, alpha 0.5: 0.45, 0.475 < 0.5 */
        {0.1, 0.55, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}, /* anomaly: run 1 */
    };
    codebook_result res = {0};
    res.n_tokens = 8;
    res.n_outputs = 3;
    res.p = &p[0][0];
    alkfw_alarm_span *spans = NULL;
    size_t n = 0;
    assert_int_equal(firewall_spans(cb, &res, token_spans, 0, 0.5, 5, &spans, &n, NULL), ALKFW_OK);
    assert_int_equal(n, 3);
    /* highest p first: injection [3,9) p 0.8, injection [18,21) p 0.7, anomaly [0,3) 0.55 */
    assert_int_equal(spans[0].start, 3);
    assert_int_equal(spans[0].end, 9);
    assert_string_equal(spans[0].direction, "injection");
    assert_near(spans[0].p, 0.8, 1e-12);
    assert_int_equal(spans[1].start, 18);
    assert_int_equal(spans[1].end, 21);
    assert_int_equal(spans[2].start, 0);
    assert_int_equal(spans[2].end, 3);
    assert_string_equal(spans[2].direction, "anomaly");
    for (size_t i = 0; i < n; i++)
        free(spans[i].direction);
    free(spans);

    /* at most max_spans, and from position `first` on (last-token mode) */
    assert_int_equal(firewall_spans(cb, &res, token_spans, 0, 0.5, 1, &spans, &n, NULL), ALKFW_OK);
    assert_int_equal(n, 1);
    free(spans[0].direction);
    free(spans);
    assert_int_equal(firewall_spans(cb, &res, token_spans, 7, 0.5, 5, &spans, &n, NULL), ALKFW_OK);
    assert_int_equal(n, 1);
    assert_int_equal(spans[0].start, 18);
    free(spans[0].direction);
    free(spans);

    /* nothing above the threshold: no spans */
    assert_int_equal(firewall_spans(cb, &res, token_spans, 0, 0.99, 5, &spans, &n, NULL), ALKFW_OK);
    assert_int_equal(n, 0);
    assert_null(spans);
    codebook_free(cb);
}

static void alarm_json_round_trips_values(void **state)
{
    (void)state;
    alkfw_alarm a;
    memset(&a, 0, sizeof a);
    a.level = ALKFW_SUSPICIOUS;
    a.score = 0.4375;
    a.threshold_suspicious = 0.3;
    a.threshold_dangerous = 0.7;
    a.n_directions = 1;
    a.directions = calloc(1, sizeof *a.directions);
    a.directions[0].name = strdup("injection");
    a.directions[0].mean = 0.4375;
    a.directions[0].max = 0.875;
    a.directions[0].max_position = 12;
    a.directions[0].weight = 1;
    a.n_spans = 1;
    a.spans = calloc(1, sizeof *a.spans);
    a.spans[0].start = 4;
    a.spans[0].end = 9;
    a.spans[0].direction = strdup("in\"jection");
    a.spans[0].p = 0.875;
    a.n_tokens = 20;
    a.n_special_tokens = 1;
    a.truncated = 1;
    a.model = strdup("m");
    a.codebook = strdup("c@00");
    a.elapsed_ms = 1.5;
    char *json = NULL;
    assert_int_equal(alkfw_alarm_to_json(&a, &json, NULL), ALKFW_OK);
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "level")->valuestring, "SUSPICIOUS");
    assert_near(cJSON_GetObjectItem(j, "score")->valuedouble, 0.4375, 0);
    const cJSON *th = cJSON_GetObjectItem(j, "thresholds");
    assert_near(cJSON_GetObjectItem(th, "suspicious")->valuedouble, 0.3, 0);
    assert_near(cJSON_GetObjectItem(th, "dangerous")->valuedouble, 0.7, 0);
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "directions"), 0);
    assert_int_equal(cJSON_GetObjectItem(d, "max_position")->valueint, 12);
    const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "spans"), 0);
    assert_string_equal(cJSON_GetObjectItem(s, "direction")->valuestring, "in\"jection");
    assert_int_equal(cJSON_GetObjectItem(s, "start")->valueint, 4);
    assert_int_equal(cJSON_GetObjectItem(j, "tokens")->valueint, 20);
    assert_int_equal(cJSON_GetObjectItem(j, "special_tokens")->valueint, 1);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "truncated")));
    cJSON_Delete(j);
    free(json);
    alkfw_alarm_free(&a);
    assert_null(a.directions);
    alkfw_alarm_free(&a); /* freeing twice is harmless: the alarm was emptied */
    alkfw_alarm_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(level_uses_strict_greater_than),
        cmocka_unit_test(spans_merge_consecutive_high_tokens_and_rank_by_p),
        cmocka_unit_test(alarm_json_round_trips_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
