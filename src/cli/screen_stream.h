/*
 * screen_stream.h - the --stream mode of alkfw screen: screen stdin as it arrives.
 */
#ifndef ALKFW_CLI_SCREEN_STREAM_H
#define ALKFW_CLI_SCREEN_STREAM_H

#include "alkfw.h"

/* Reads stdin with read() as data arrives, pushes each piece into a stream on fw and prints
 * one alarm JSON line per piece (then one for the end of input, which releases bytes of an
 * incomplete UTF-8 sequence held back). Returns the exit status of the final level (0, 3, 4)
 * or 1 on an error, which it reports on stderr. */
int cli_screen_stream(const alkfw_firewall *fw, const alkfw_document_options *opts);

#endif
