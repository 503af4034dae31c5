/*
 * test_util.h - helpers shared by the cmocka suites: reading a fixture file whole, comparing
 * doubles with a tolerance, opening a firewall. Include after <cmocka.h>.
 */
#ifndef ALKFW_TESTS_TEST_UTIL_H
#define ALKFW_TESTS_TEST_UTIL_H

#include "alkfw.h"

#include <math.h>
#include <stddef.h>

/* |a - b| <= tol, printing both values when not (cmocka 1.1 has no double assertion). */
#define assert_near(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fail_msg("%s = %.17g, expected %.17g (tolerance %g)", #a, a_, b_, (double)(tol));      \
    } while (0)

/* Reads the whole file at path into a malloc'd buffer with a NUL after the last byte; the caller
 * frees it. *len (when len is not NULL) receives the byte count, NUL not included. Fails the
 * running test when the file cannot be opened or read, so it never returns NULL. */
char *test_read_file(const char *path, size_t *len);

/* Opens the firewall of model_dir with codebook under opts (NULL: the defaults); the caller closes
 * it. Fails the running test, printing the library's message, when it cannot be opened. Defined
 * in test_firewall_util.c so that suites which never open a firewall need not link it. */
alkfw_firewall *test_open_firewall(const char *model_dir, const char *codebook,
                                   const alkfw_options *opts);

/* Checks that alarm, an alarm as alkfw_alarm_to_json writes it, has every field of the JSON
 * schema (docs/firewall.md); fails the running test naming the first one missing. Defined in
 * test_alarm_json.c. */
struct cJSON;
void test_assert_alarm_json_fields(const struct cJSON *alarm);

#endif
