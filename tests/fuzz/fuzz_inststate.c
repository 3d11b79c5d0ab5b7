/* libFuzzer target for the instance records the setuid starter reads
 * (src/runtime/inststate.c), and the /proc parsers it checks processes
 * with.
 *
 * A record that parses must format to a text that parses to the same
 * record (formatting is the only writer, so this is the round trip the
 * starter relies on); every record of a stream is parsed in turn, and
 * each must take at least one line.
 *
 * Build metadata for tests/fuzz/build.sh follows. */
// fuzz-sources: src/runtime/inststate.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/utils.h"
#include "runtime/inststate.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size > 2 * CAPSA_INST_RECORD_MAX)
        return 0;
    char *text = xmalloc (size + 1);
    memcpy (text, data, size);
    text[size] = '\0';

    size_t pos = 0;
    while (pos < size) {
        struct capsa_inst_state st, back;
        capsa_error_t err = NULL;
        size_t used = 0;
        if (capsa_inst_state_parse (text + pos, size - pos, &st, &used, &err) < 0) {
            if (err == NULL || st.name != NULL)
                abort ();
            capsa_error_free (&err);
            break;
        }
        if (used == 0 || used > size - pos)
            abort ();
        char *out = capsa_inst_state_format (&st);
        size_t used2 = 0;
        if (capsa_inst_state_parse (out, strlen (out), &back, &used2, &err) < 0 || used2 != strlen (out))
            abort ();
        char *out2 = capsa_inst_state_format (&back);
        if (strcmp (out, out2) != 0)
            abort ();
        free (out);
        free (out2);
        capsa_inst_state_free (&st);
        capsa_inst_state_free (&back);
        pos += used;
    }

    char state;
    pid_t ppid;
    uint64_t start;
    uid_t r, e;
    (void) capsa_inst_parse_stat (text, &state, &ppid, &start);
    (void) capsa_inst_parse_status_uid (text, &r, &e);
    free (capsa_inst_parse_cgroup2 (text));
    free (text);
    return 0;
}
