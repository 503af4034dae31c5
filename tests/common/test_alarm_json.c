/*
 * test_alarm_json.c - the fields every alarm JSON carries, for the suites that read one (see
 * test_util.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/test_util.h"

#include <cjson/cJSON.h>

void test_assert_alarm_json_fields(const cJSON *alarm)
{
    static const char *const keys[] = {"level", "score",    "thresholds",     "directions",
                                       "spans", "tokens",   "special_tokens", "truncated",
                                       "model", "codebook", "elapsed_ms"};
    assert_non_null(alarm);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (cJSON_GetObjectItemCaseSensitive(alarm, keys[i]) == NULL)
            fail_msg("alarm JSON: no \"%s\"", keys[i]);
}
