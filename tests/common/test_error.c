/*
 * test_error.c - error messages are filled, prefixed and named as the API promises.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "common/error.h"

static void error_set_fills_status_and_message(void **state)
{
    (void)state;
    alkfw_error err;
    alkfw_status s = error_set(&err, ALKFW_ERR_FORMAT, "tensor '%s' has %d dims", "w", 3);
    assert_int_equal(s, ALKFW_ERR_FORMAT);
    assert_int_equal(err.status, ALKFW_ERR_FORMAT);
    assert_string_equal(err.message, "tensor 'w' has 3 dims");
}

static void error_prefix_says_where(void **state)
{
    (void)state;
    alkfw_error err;
    error_set(&err, ALKFW_ERR_FORMAT, "missing key");
    assert_int_equal(error_prefix(&err, "config.json: %s", "hidden_size"), ALKFW_ERR_FORMAT);
    assert_string_equal(err.message, "config.json: hidden_size: missing key");
}

static void error_set_accepts_null(void **state)
{
    (void)state;
    assert_int_equal(error_set(NULL, ALKFW_ERR_IO, "x"), ALKFW_ERR_IO);
}

static void error_message_is_truncated_not_overflowed(void **state)
{
    (void)state;
    alkfw_error err;
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    error_set(&err, ALKFW_ERR_LIMIT, "%s", big);
    assert_int_equal(strlen(err.message), ALKFW_ERROR_MESSAGE_SIZE - 1);
}

static void every_status_has_a_name(void **state)
{
    (void)state;
    for (int s = ALKFW_OK; s <= ALKFW_ERR_INTERNAL; s++)
        assert_string_not_equal(alkfw_status_string((alkfw_status)s), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_set_fills_status_and_message),
        cmocka_unit_test(error_prefix_says_where),
        cmocka_unit_test(error_set_accepts_null),
        cmocka_unit_test(error_message_is_truncated_not_overflowed),
        cmocka_unit_test(every_status_has_a_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
