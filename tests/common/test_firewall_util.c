/*
 * test_firewall_util.c - opening a firewall for the suites that screen text (see test_util.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/test_util.h"

alkfw_firewall *test_open_firewall(const char *model_dir, const char *codebook,
                                   const alkfw_options *opts)
{
    alkfw_firewall *fw = NULL;
    alkfw_error err = {0};
    if (alkfw_firewall_open(model_dir, codebook, opts, &fw, &err) != ALKFW_OK)
        fail_msg("open %s with %s: %s", model_dir, codebook, err.message);
    return fw;
}
