/* libFuzzer target for the --env-file evaluator (src/runtime/envfile.c),
 * which the starter's container child runs on a file of the user's (after
 * its final privilege drop).
 *
 * Each input is the text of an env file (cut at a NUL, as
 * capsa_env_read_fd refuses embedded NULs).  It is evaluated with a small
 * caller's environment; on success every result must be NAME=VALUE with a
 * valid shell name, each name once; on failure the message must name the
 * file and a line.
 *
 * Build metadata for tests/fuzz/build.sh follows. */
// fuzz-sources: src/runtime/envfile.c
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/utils.h"
#include "runtime/envfile.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    struct strv vars = { 0 }, out = { 0 };
    capsa_error_t err = NULL;
    char *text = xmalloc (size + 1);

    memcpy (text, data, size);
    text[size] = '\0';
    strv_push (&vars, "HOME=/home/u");
    strv_push (&vars, "PATH=/usr/bin:/bin");
    strv_push (&vars, "EMPTY=");
    if (capsa_envfile_parse (text, "F", &vars, &out, &err) < 0) {
        if (err == NULL || err->msg == NULL || strncmp (err->msg, "--env-file F: line ", 19) != 0)
            abort ();
        capsa_error_free (&err);
    } else {
        if (err != NULL)
            abort ();
        for (size_t i = 0; i < out.n; i++) {
            const char *kv = out.v[i];
            size_t n = strcspn (kv, "=");
            if (kv[n] != '=' || n == 0 || !(isalpha ((unsigned char) kv[0]) || kv[0] == '_'))
                abort ();
            for (size_t k = 1; k < n; k++)
                if (!(isalnum ((unsigned char) kv[k]) || kv[k] == '_'))
                    abort ();
            for (size_t j = 0; j < i; j++)
                if (strncmp (out.v[j], kv, n + 1) == 0)
                    abort ();
        }
    }
    strv_free (&vars);
    strv_free (&out);
    free (text);
    return 0;
}
