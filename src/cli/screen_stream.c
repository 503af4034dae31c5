/*
 * screen_stream.c - alkfw screen --stream: one alarm JSON line per piece of stdin read.
 */
#include "cli/screen_stream.h"

#include "cli/cli.h"
#include "cli/fw_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Bytes asked of read() at a time; read() returns whatever has arrived, up to this. */
#define STREAM_READ_SIZE 65536

/* Prints alarm as one JSON line and flushes, so a reader sees it at once. Returns 0 or -1. */
static int print_line(const alkfw_document_alarm *alarm, alkfw_error *err)
{
    char *json = NULL;
    if (alkfw_document_alarm_to_json(alarm, &json, err) != ALKFW_OK)
        return -1;
    printf("%s\n", json);
    fflush(stdout);
    free(json);
    return 0;
}

int cli_screen_stream(const alkfw_firewall *fw, const alkfw_document_options *opts)
{
    alkfw_error err = {0};
    alkfw_stream *stream = NULL;
    if (alkfw_stream_open(fw, opts, &stream, &err) != ALKFW_OK)
        return cli_fail("screen", &err);

    char *buf = malloc(STREAM_READ_SIZE);
    int rc = buf == NULL ? CLI_EXIT_ERROR : CLI_EXIT_OK, done = 0;
    if (buf == NULL)
        fprintf(stderr, "alkfw screen: out of memory\n");
    alkfw_level level = ALKFW_CLEAR;
    while (rc == CLI_EXIT_OK && !done) {
        ssize_t got = read(STDIN_FILENO, buf, STREAM_READ_SIZE);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            fprintf(stderr, "alkfw screen: reading stdin failed\n");
            rc = CLI_EXIT_ERROR;
            break;
        }
        done = got == 0;
        alkfw_document_alarm alarm;
        alkfw_status st = done ? alkfw_stream_finish(stream, &alarm, &err)
                               : alkfw_stream_push(stream, buf, (size_t)got, &alarm, &err);
        if (st != ALKFW_OK || print_line(&alarm, &err) != 0)
            rc = cli_fail("screen", &err);
        level = alarm.alarm.level;
        alkfw_document_alarm_free(&alarm);
    }
    free(buf);
    alkfw_stream_free(stream);
    if (rc != CLI_EXIT_OK)
        return rc;
    return fwu_exit_for_level(level);
}
