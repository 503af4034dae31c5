/*
 * checkpoint.c - the weights of a Hugging Face model directory: one model.safetensors, or
 * shards listed by model.safetensors.index.json.
 */
#include "formats/safetensors.h"

#include "common/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* An index file larger than this is not a plausible weight map. */
#define INDEX_MAX_BYTES (64u * 1024u * 1024u)

struct safetensors_checkpoint {
    safetensors_file **shards;
    char **shard_names;
    size_t n_shards;
};

/* Reads the whole file at path (at most max bytes) into a malloc'ed buffer. */
static alkfw_status read_small_file(const char *path, size_t max, char **out, size_t *len,
                                    alkfw_error *err)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return error_set(err, ALKFW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                fclose(fp);
                free(buf);
                return error_set(err, ALKFW_ERR_LIMIT, "%s: larger than %zu bytes", path, max);
            }
            cap = cap ? cap * 2 : 4096;
            if (cap > max)
                cap = max;
            char *p = realloc(buf, cap + 1);
            if (p == NULL) {
                fclose(fp);
                free(buf);
                return error_set(err, ALKFW_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = p;
        }
        size_t r = fread(buf + n, 1, cap - n, fp);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return error_set(err, ALKFW_ERR_IO, "%s: read error", path);
    }
    if (buf == NULL)
        buf = malloc(1);
    if (buf == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "%s: out of memory", path);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return ALKFW_OK;
}

/* Whether name is a plain file name: no directory part, not "." or "..". */
static int plain_file_name(const char *name)
{
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

/* Adds the shard file dir/name to c (unless already there) and returns its index, or -1. */
static long add_shard(safetensors_checkpoint *c, const char *dir, const char *name,
                      alkfw_error *err)
{
    for (size_t i = 0; i < c->n_shards; i++) {
        if (strcmp(c->shard_names[i], name) == 0)
            return (long)i;
    }
    safetensors_file **s = realloc(c->shards, (c->n_shards + 1) * sizeof *s);
    if (s == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory"), -1;
    c->shards = s;
    char **nm = realloc(c->shard_names, (c->n_shards + 1) * sizeof *nm);
    if (nm == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory"), -1;
    c->shard_names = nm;
    size_t plen = strlen(dir) + strlen(name) + 2;
    char *path = malloc(plen);
    char *copy = strdup(name);
    if (path == NULL || copy == NULL) {
        free(path);
        free(copy);
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory"), -1;
    }
    snprintf(path, plen, "%s/%s", dir, name);
    safetensors_file *f = NULL;
    alkfw_status st = safetensors_open(path, &f, err);
    free(path);
    if (st != ALKFW_OK) {
        free(copy);
        return -1;
    }
    c->shards[c->n_shards] = f;
    c->shard_names[c->n_shards] = copy;
    c->n_shards++;
    return (long)(c->n_shards - 1);
}

/* Opens every shard named by the index JSON text and checks each listed tensor is present. */
static alkfw_status open_index(safetensors_checkpoint *c, const char *dir, const char *ipath,
                               const char *text, size_t len, alkfw_error *err)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (root == NULL)
        return error_set(err, ALKFW_ERR_FORMAT, "%s: not valid JSON", ipath);
    alkfw_status st = ALKFW_OK;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        st = error_set(err, ALKFW_ERR_FORMAT, "%s: missing or non-object weight_map", ipath);
        goto done;
    }
    for (const cJSON *e = map->child; e != NULL; e = e->next) {
        if (!cJSON_IsString(e) || !plain_file_name(e->valuestring)) {
            st = error_set(err, ALKFW_ERR_FORMAT,
                           "%s: weight_map['%.100s'] is not a plain file name in the model "
                           "directory",
                           ipath, e->string);
            goto done;
        }
        long k = add_shard(c, dir, e->valuestring, err);
        if (k < 0) {
            st = err ? err->status : ALKFW_ERR_IO;
            goto done;
        }
        if (safetensors_find(c->shards[k], e->string) == NULL) {
            st = error_set(err, ALKFW_ERR_FORMAT,
                           "%s: tensor '%.100s' is listed in %.100s but missing from it", ipath,
                           e->string, e->valuestring);
            goto done;
        }
    }
    if (c->n_shards == 0)
        st = error_set(err, ALKFW_ERR_FORMAT, "%s: weight_map is empty", ipath);
done:
    cJSON_Delete(root);
    return st;
}

/* A tensor name present in two shards makes lookups ambiguous: reject it. */
static alkfw_status check_unique(const safetensors_checkpoint *c, alkfw_error *err)
{
    for (size_t i = 1; i < c->n_shards; i++) {
        for (size_t k = 0; k < safetensors_count(c->shards[i]); k++) {
            const char *name = safetensors_tensor_at(c->shards[i], k)->name;
            for (size_t j = 0; j < i; j++) {
                if (safetensors_find(c->shards[j], name) != NULL)
                    return error_set(err, ALKFW_ERR_FORMAT,
                                     "tensor '%.100s' appears in both %.100s and %.100s", name,
                                     c->shard_names[j], c->shard_names[i]);
            }
        }
    }
    return ALKFW_OK;
}

alkfw_status safetensors_checkpoint_open(const char *dir, safetensors_checkpoint **out,
                                         alkfw_error *err)
{
    if (dir == NULL || out == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "safetensors_checkpoint_open: NULL argument");
    *out = NULL;
    safetensors_checkpoint *c = calloc(1, sizeof *c);
    size_t plen = strlen(dir) + 64;
    char *ipath = malloc(plen);
    if (c == NULL || ipath == NULL) {
        free(c);
        free(ipath);
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory");
    }
    alkfw_status st;
    struct stat sb;
    snprintf(ipath, plen, "%s/model.safetensors.index.json", dir);
    if (stat(ipath, &sb) == 0) {
        char *text = NULL;
        size_t len = 0;
        st = read_small_file(ipath, INDEX_MAX_BYTES, &text, &len, err);
        if (st == ALKFW_OK)
            st = open_index(c, dir, ipath, text, len, err);
        free(text);
        if (st == ALKFW_OK)
            st = check_unique(c, err);
    } else {
        snprintf(ipath, plen, "%s/model.safetensors", dir);
        if (stat(ipath, &sb) != 0)
            st = error_set(err, ALKFW_ERR_IO,
                           "%s: no model.safetensors or model.safetensors.index.json", dir);
        else
            st = add_shard(c, dir, "model.safetensors", err) < 0
                     ? (err ? err->status : ALKFW_ERR_IO)
                     : ALKFW_OK;
    }
    free(ipath);
    if (st != ALKFW_OK) {
        safetensors_checkpoint_close(c);
        return st;
    }
    *out = c;
    return ALKFW_OK;
}

void safetensors_checkpoint_close(safetensors_checkpoint *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_shards; i++) {
        safetensors_close(c->shards[i]);
        free(c->shard_names[i]);
    }
    free(c->shards);
    free(c->shard_names);
    free(c);
}

const safetensors_tensor *safetensors_checkpoint_find(const safetensors_checkpoint *c,
                                                      const char *name)
{
    for (size_t i = 0; i < c->n_shards; i++) {
        const safetensors_tensor *t = safetensors_find(c->shards[i], name);
        if (t != NULL)
            return t;
    }
    return NULL;
}

size_t safetensors_checkpoint_shard_count(const safetensors_checkpoint *c)
{
    return c->n_shards;
}

const safetensors_file *safetensors_checkpoint_shard(const safetensors_checkpoint *c, size_t i)
{
    return i < c->n_shards ? c->shards[i] : NULL;
}
