/* libFuzzer target for the action command-line parser, which the
 * privileged starter runs on the user's arguments.
 *
 * Each input is split on NUL bytes into arguments after argv[0] = "exec"
 * (the first byte, when it is 'r' or 's', picks "run" or "shell" instead
 * and is dropped, so all three actions are reached).  capsa_opts_parse
 * must either fail with a message or give a consistent result: an image,
 * a NULL-terminated command inside argv, binds with absolute destinations
 * (from -B and --mount, whose parsers are src/runtime/bindspec.c) and
 * well-formed --gpu-file values (src/runtime/gpulist.c).
 *
 * Build metadata for tests/fuzz/build.sh follows. */
// fuzz-sources: src/runtime/options.c src/runtime/bindspec.c src/runtime/gpulist.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/utils.h"
#include "runtime/gpu.h"
#include "runtime/options.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define MAX_ARGS 256

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static const char *const actions[] = { "exec", "run", "shell" };
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    const char *action = actions[0];
    struct capsa_opts o;
    capsa_error_t err = NULL;
    char *buf;

    if (size > 0 && (data[0] == 'r' || data[0] == 's')) {
        action = data[0] == 'r' ? actions[1] : actions[2];
        data++;
        size--;
    }
    buf = xmalloc (size + 1);
    memcpy (buf, data, size);
    buf[size] = '\0';

    argv[argc++] = xstrdup (action);
    /* Every NUL-separated piece is one argument (a trailing NUL does not
     * add an empty one); each argument is its own allocation so that ASan
     * sees any read past its end. */
    for (size_t start = 0; start < size && argc < MAX_ARGS + 1;) {
        size_t len = strlen (buf + start);
        argv[argc++] = xstrdup (buf + start);
        start += len + 1;
    }
    argv[argc] = NULL;

    if (capsa_opts_parse (&o, argc, argv, &err) < 0) {
        if (err == NULL || err->msg == NULL)
            abort ();
        capsa_error_free (&err);
    } else {
        if (err != NULL || o.image == NULL || o.image[0] == '\0' || o.cmd == NULL || o.ncmd < 0
            || o.cmd + o.ncmd != argv + argc || o.cmd[o.ncmd] != NULL)
            abort ();
        if (o.action == ACTION_EXEC && o.ncmd == 0)
            abort ();
        if (o.action == ACTION_SHELL && o.ncmd != 0)
            abort ();
        for (size_t i = 0; i < o.nbinds; i++)
            if (o.binds[i].src == NULL || o.binds[i].src[0] == '\0' || o.binds[i].dst == NULL
                || o.binds[i].dst[0] != '/')
                abort ();
        if ((o.home_dst != NULL && o.home_dst[0] != '/') || (o.home_src != NULL && o.home_src[0] == '\0'))
            abort ();
        if (o.network != NULL && (strcmp (o.network, "none") != 0 || !o.net_ns))
            abort ();
        if (o.hostname != NULL && (!o.uts_ns || o.hostname[0] == '\0' || strlen (o.hostname) > 64))
            abort ();
        for (size_t i = 0; i < o.skip_bind_paths.n; i++)
            if (o.skip_bind_paths.v[i][0] != '/')
                abort ();
        for (size_t i = 0; i < o.env.n; i++)
            if (strchr (o.env.v[i], '=') == NULL || o.env.v[i][0] == '=')
                abort ();
        /* --gpu-file: KIND:/clean/absolute/path (or dev:none), no "..". */
        for (size_t i = 0; i < o.gpu_files.n; i++) {
            const char *v = o.gpu_files.v[i], *colon = strchr (v, ':');
            if (capsa_gpu_file_valid (v) < 0 || colon == NULL || strstr (v, "/../") != NULL
                || (colon[1] != '/' && strcmp (v, "dev:none") != 0))
                abort ();
        }
    }
    capsa_opts_free (&o);
    for (int i = 0; i < argc; i++)
        free (argv[i]);
    free (buf);
    return 0;
}
