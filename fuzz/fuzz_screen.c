/*
 * fuzz_screen.c - alkfw_screen on hostile bytes with the bundled stories260k model and its
 * codebook: any input gives an alarm whose fields are in range and whose spans lie inside the
 * input, and its JSON parses. Options vary with the first byte (last-token mode, smoothing,
 * a short token cut) so each path is reached.
 */
#include "alkfw.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_DIR ALKFW_SOURCE_DIR "/models/stories260k"
#define CODEBOOK ALKFW_SOURCE_DIR "/tests/fixtures/firewall/reference_codebook.safetensors"

/* One firewall per option set, opened on first use and kept for the process (the harness's
 * only state). */
static alkfw_firewall *fws[8];

static const alkfw_firewall *firewall_for(unsigned mode)
{
    if (fws[mode] != NULL)
        return fws[mode];
    alkfw_options o;
    alkfw_options_init(&o);
    o.n_threads = 1;
    o.last_token = mode & 1;
    o.smoothing = !(mode & 2);
    o.max_tokens = (mode & 4) ? 24 : 128; /* bounded, so each run stays fast */
    alkfw_error err;
    if (alkfw_firewall_open(MODEL_DIR, CODEBOOK, &o, &fws[mode], &err) != ALKFW_OK)
        abort();
    return fws[mode];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned mode = size > 0 ? data[0] & 7 : 0;
    const char *text = size > 0 ? (const char *)data + 1 : "";
    size_t len = size > 0 ? size - 1 : 0;
    const alkfw_firewall *fw = firewall_for(mode);

    alkfw_alarm a;
    alkfw_error err;
    if (alkfw_screen(fw, text, len, &a, &err) != ALKFW_OK)
        abort(); /* every byte string is screenable */
    if (!(a.score >= 0 && a.score <= 1) || a.level > ALKFW_DANGEROUS || a.n_tokens == 0)
        abort();
    for (size_t i = 0; i < a.n_spans; i++)
        if (a.spans[i].start >= a.spans[i].end || a.spans[i].end > len)
            abort();
    for (size_t i = 0; i < a.n_directions; i++)
        if (a.directions[i].max_position >= a.n_tokens)
            abort();
    char *json = NULL;
    if (alkfw_alarm_to_json(&a, &json, &err) != ALKFW_OK)
        abort();
    cJSON *j = cJSON_Parse(json);
    if (j == NULL)
        abort();
    cJSON_Delete(j);
    free(json);
    alkfw_alarm_free(&a);
    return 0;
}
