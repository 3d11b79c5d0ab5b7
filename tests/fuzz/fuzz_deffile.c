/* libFuzzer target for the definition-file parser (src/imgbuild/deffile.c).
 *
 * capsa build parses definition files as root (a root build, or the
 * front end of a --fakeroot one); they are text from anywhere.  Each input
 * is a definition file: it must parse or fail with one message naming the
 * file, and everything a parsed file holds must be consistent (strings
 * terminated, line numbers inside the file, the raw text kept whole).
 *
 * Build metadata for tests/fuzz/build.sh follows. */
// fuzz-sources: src/imgbuild/deffile.c
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgbuild/deffile.h"
#include "lib/utils.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    struct deffile *d = NULL;
    capsa_error_t err = NULL;
    volatile size_t sink = 0;
    int lines = 1;

    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (deffile_parse ("fuzz.def", (const char *) data, size, &d, &err) < 0) {
        if (err == NULL || err->msg == NULL || strncmp (err->msg, "fuzz.def", 8) != 0)
            abort ();
        capsa_error_free (&err);
        return 0;
    }
    if (d->rawlen != size || memcmp (d->raw, data, size) != 0 || d->raw[size] != '\0')
        abort ();
    for (size_t i = 0; i < d->nheader; i++) {
        if (d->header[i].line < 1 || d->header[i].line > lines)
            abort ();
        sink += strlen (d->header[i].key) + strlen (d->header[i].value);
    }
    for (size_t i = 0; i < d->nlabels; i++)
        sink += strlen (d->labels[i].key) + strlen (d->labels[i].value);
    for (size_t i = 0; i < d->nfiles; i++) {
        if (d->files[i].line < 1 || d->files[i].line > lines || d->files[i].src[0] == '\0')
            abort ();
        sink += strlen (d->files[i].src) + (d->files[i].dst ? strlen (d->files[i].dst) : 0);
    }
    for (int k = 0; k < DEF_NSECTIONS; k++) {
        const struct def_section *s = &d->sec[k];
        if (!s->present)
            continue;
        if (s->line < 1 || s->line > lines)
            abort ();
        const char *script;
        char *sb = deffile_shebang (s, &script);
        if (strncmp (sb, "#!", 2) != 0)
            abort ();
        sink += strlen (sb) + strlen (script) + strlen (s->body) + strlen (s->args);
        free (sb);
    }
    if (d->bootstrap == DEF_BOOTSTRAP_LOCALIMAGE && (d->from == NULL || d->from[0] == '\0'))
        abort ();
    if (d->bootstrap == DEF_BOOTSTRAP_DEBOOTSTRAP && (d->osversion == NULL || d->mirror == NULL || d->include == NULL))
        abort ();
    (void) sink;
    deffile_free (d);
    return 0;
}
