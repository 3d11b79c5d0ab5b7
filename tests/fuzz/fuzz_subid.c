/* libFuzzer target for the /etc/subuid and /etc/subgid parser and editor
 * (src/runtime/fakeroot.c): the starter reads the files as the user to
 * know which range to ask newuidmap for, and `capsa config fakeroot` edits
 * them as root.
 *
 * The first byte picks the operation (find, add, remove, enable, disable)
 * and the user's uid; the rest is the file.  Checks: find reports a range
 * only from the file's own numbers; a successful edit keeps what it did
 * not touch (add appends, the others never make the text longer by more
 * than one '!' and a newline).
 *
 * Build metadata for tests/fuzz/build.sh follows. */
// fuzz-sources: src/runtime/fakeroot.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/utils.h"
#include "runtime/fakeroot.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    char *text = xmalloc (size);
    memcpy (text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t len = strlen (text);
    uid_t uid = 1000 + (sel >> 4);
    capsa_error_t err = NULL;

    if ((sel & 7) == 5 || (sel & 7) > 5) {
        struct capsa_subid r;
        const char *why = NULL;
        int n = capsa_subid_find (text, "subuid", "alice", uid, &r, &why, &err);
        if ((n < 0) != (err != NULL) || (n == 0 && why == NULL) || (n == 1 && r.count < CAPSA_SUBID_COUNT))
            abort ();
    } else {
        static const enum capsa_subid_op ops[] = { SUBID_ADD, SUBID_REMOVE, SUBID_ENABLE, SUBID_DISABLE, SUBID_ADD };
        char *out = NULL;
        bool changed = true;
        int r = capsa_subid_edit (text, "subuid", ops[sel & 7], "alice", uid, &out, &changed, &err);
        if (r < 0) {
            if (err == NULL || out != NULL)
                abort ();
        } else {
            if (out == NULL || err != NULL)
                abort ();
            size_t olen = strlen (out);
            if (ops[sel & 7] == SUBID_ADD && changed && (olen <= len || strncmp (out, text, len) != 0))
                abort ();
            if (ops[sel & 7] != SUBID_ADD && olen > len + 2)
                abort ();
            if (!changed && strcmp (out, text) != 0)
                abort ();
            free (out);
        }
    }
    capsa_error_free (&err);
    free (text);
    return 0;
}
