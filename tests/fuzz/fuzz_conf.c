/* libFuzzer target for the capsa.conf parser, which the privileged starter
 * runs on the administrator's file before anything else.
 *
 * Each input is the text of a capsa.conf (a NUL-terminated copy, as
 * capsa_conf_load hands it over after refusing embedded NULs; an input
 * with a NUL is cut there).  It is parsed into a fresh configuration; on
 * success every bind path must be an absolute path, every enum in range.
 *
 * Build metadata for tests/fuzz/build.sh follows. */
// fuzz-sources: src/runtime/conf.c src/runtime/confcompat.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/utils.h"
#include "runtime/conf.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    struct capsa_conf c;
    capsa_error_t err = NULL;
    char *text = xmalloc (size + 1);

    memcpy (text, data, size);
    text[size] = '\0';
    capsa_conf_init (&c);
    if (capsa_conf_parse (&c, "capsa.conf", text, &err) < 0) {
        if (err == NULL || err->msg == NULL || strncmp (err->msg, "capsa.conf:", 11) != 0)
            abort (); /* an error must name the file and line */
        capsa_error_free (&err);
    } else {
        if (err != NULL)
            abort ();
        for (size_t i = 0; i < c.bind_paths.n; i++)
            if (c.bind_paths.v[i][0] != '/')
                abort ();
        if (c.max_loop_devices < 0 || c.max_loop_devices > 4096 || (unsigned) c.mount_dev > MOUNT_DEV_MINIMAL
            || (unsigned) c.root_default_caps > ROOT_CAPS_NO || (unsigned) c.setuid_mount_squashfs > TRI_IFLIMITED
            || (unsigned) c.setuid_mount_encrypted > TRI_IFLIMITED || (unsigned) c.memory_fs > MEMFS_RAMFS)
            abort ();
        /* Every warning names the file and line of the directive. */
        for (size_t i = 0; i < c.warnings.n; i++)
            if (strncmp (c.warnings.v[i], "capsa.conf:", 11) != 0)
                abort ();
    }
    capsa_conf_free (&c);
    free (text);
    return 0;
}
