/* libFuzzer target: WWW-Authenticate headers (src/oci/authhdr.c) and
 * image references (src/oci/ref.c), both of which come from outside.
 *
 * fuzz-sources: src/oci/authhdr.c src/oci/ref.c src/oci/digest.c
 * fuzz-libs: -lcrypto
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/oci_private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    struct oci_challenge ch;
    struct capsa_oci_ref ref;
    capsa_error_t err = NULL;
    char *text = malloc (size + 1);
    if (text == NULL)
        return 0;
    memcpy (text, data, size);
    text[size] = '\0';
    if (oci_challenge_parse (text, &ch, &err) == 0) {
        if (ch.scheme == NULL || *ch.scheme == '\0')
            abort ();
        oci_challenge_free (&ch);
    }
    capsa_error_free (&err);
    if (capsa_oci_ref_parse (text, &ref, &err) == 0) {
        /* What parses prints back to something that parses the same. */
        char *s = capsa_oci_ref_string (&ref);
        struct capsa_oci_ref again;
        if (capsa_oci_ref_parse (s, &again, &err) != 0 || strcmp (again.repository, ref.repository) != 0
            || strcmp (again.registry, ref.registry) != 0)
            abort ();
        capsa_oci_ref_free (&again);
        free (s);
        capsa_oci_ref_free (&ref);
    }
    capsa_error_free (&err);
    free (text);
    return 0;
}
