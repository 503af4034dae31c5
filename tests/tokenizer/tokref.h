/*
 * tokref.h - helpers shared by the tokenizer tests: hex, the FNV-1a
 * hash of an id sequence (the same one tools/tokref/fnv.mjs computes).
 */
#ifndef ALKFW_TESTS_TOKREF_H
#define ALKFW_TESTS_TOKREF_H

#include "alkfw.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decodes a hex string into bytes (malloc'd); *len receives the count. */
static inline char *tokref_unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; out != NULL && i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    *len = n;
    return out;
}

/* 64-bit FNV-1a over the ids, each as 4 little-endian bytes, as 16 hex digits. */
static inline void tokref_fnv64(const int32_t *ids, size_t n, char out[17])
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int k = 0; k < 4; k++) {
            h ^= (v >> (8 * k)) & 0xFF;
            h *= 0x100000001b3ULL;
        }
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

#endif
