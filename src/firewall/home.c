/*
 * home.c - where the embedded default detector (models/stories260k + its codebook) lives.
 */
#include "firewall/firewall.h"

#include "common/error.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef ALKFW_INSTALL_DATADIR
#define ALKFW_INSTALL_DATADIR "/usr/local/share/alkfw"
#endif

#define DEFAULT_MODEL "models/stories260k"

/* Tries dir/<DEFAULT_MODEL> and dir/share/alkfw/<DEFAULT_MODEL> for dir and up to five
 * directories above it. Returns 1 and writes the hit into buf when one holds a config.json. */
static int search_upwards(const char *start, char *buf, size_t size)
{
    char dir[PATH_MAX];
    char probe[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", start);
    for (int up = 0; up < 6; up++) {
        static const char *const layouts[] = {DEFAULT_MODEL, "share/alkfw/" DEFAULT_MODEL};
        for (size_t i = 0; i < 2; i++) {
            snprintf(probe, sizeof probe, "%s/%s/config.json", dir, layouts[i]);
            if (access(probe, R_OK) == 0 &&
                snprintf(buf, size, "%s/%s", dir, layouts[i]) < (int)size)
                return 1;
        }
        char *slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir)
            break;
        *slash = '\0';
    }
    return 0;
}

/* The directory part of a file path, into out; 0, or -1 when there is none. */
static int dir_of(const char *file, char *out, size_t size)
{
    const char *slash = strrchr(file, '/');
    if (slash == NULL || slash == file)
        return -1;
    snprintf(out, size, "%.*s", (int)(slash - file), file);
    return 0;
}

alkfw_status alkfw_default_model_dir(char *buf, size_t size, alkfw_error *err)
{
    if (buf == NULL || size == 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "default_model_dir: no buffer");

    /* an explicit project root wins */
    const char *home = getenv("ALKFW_HOME");
    if (home != NULL && home[0] != '\0') {
        if (snprintf(buf, size, "%s/%s", home, DEFAULT_MODEL) >= (int)size)
            return error_set(err, ALKFW_ERR_LIMIT, "ALKFW_HOME is too long");
        char probe[PATH_MAX + 64];
        snprintf(probe, sizeof probe, "%s/config.json", buf);
        if (access(probe, R_OK) != 0)
            return error_set(err, ALKFW_ERR_IO, "%s: no config.json (ALKFW_HOME=%s)", buf, home);
        return ALKFW_OK;
    }

    /* beside the library itself (a build tree or an install prefix), then beside the
     * executable, then the configured install location */
    char dir[PATH_MAX];
    Dl_info info;
    if (dladdr((void *)alkfw_default_model_dir, &info) != 0 && info.dli_fname != NULL) {
        char real[PATH_MAX];
        if (realpath(info.dli_fname, real) != NULL && dir_of(real, dir, sizeof dir) == 0 &&
            search_upwards(dir, buf, size))
            return ALKFW_OK;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        if (dir_of(exe, dir, sizeof dir) == 0 && search_upwards(dir, buf, size))
            return ALKFW_OK;
    }
    if (snprintf(buf, size, "%s/%s", ALKFW_INSTALL_DATADIR, DEFAULT_MODEL) >= (int)size)
        return error_set(err, ALKFW_ERR_LIMIT, "default_model_dir: buffer too small");
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/config.json", buf);
    if (access(probe, R_OK) != 0)
        return error_set(err, ALKFW_ERR_IO,
                         "%s not found beside the library, the executable or in %s; set "
                         "ALKFW_HOME to the project root",
                         DEFAULT_MODEL, ALKFW_INSTALL_DATADIR);
    return ALKFW_OK;
}
