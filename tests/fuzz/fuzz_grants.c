/* libFuzzer target: capability.json, which the privileged starter parses.
 *
 * fuzz-sources: src/runtime/caps.c src/runtime/conf.c src/runtime/confcompat.c
 * fuzz-libs: -ljson-c -lcap
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/caps.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    struct capsa_grants g;
    capsa_error_t err = NULL;
    char *text = malloc (size + 1);
    if (text == NULL)
        return 0;
    memcpy (text, data, size);
    text[size] = '\0';
    if (capsa_grants_parse (&g, "capability.json", text, size, &err) == 0) {
        /* What parses must serialise and parse back to the same grants. */
        char *json = capsa_grants_to_json (&g);
        struct capsa_grants again;
        if (capsa_grants_parse (&again, "again", json, strlen (json), &err) != 0)
            abort ();
        for (size_t i = 0; i < g.nusers; i++)
            if (capsa_grants_for_user (&again, g.users[i].name) != g.users[i].caps)
                abort ();
        for (size_t i = 0; i < g.ngroups; i++)
            if (capsa_grants_for_group (&again, g.groups[i].name) != g.groups[i].caps)
                abort ();
        capsa_grants_free (&again);
        free (json);
        capsa_grants_free (&g);
    }
    capsa_error_free (&err);
    free (text);
    return 0;
}
