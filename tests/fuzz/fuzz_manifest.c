/* libFuzzer target: manifests, indexes and image configs as a registry or
 * an archive sends them (src/oci/manifest.c), plus the platform choice and
 * the scripts made from a config.
 *
 * fuzz-sources: src/oci/manifest.c src/oci/digest.c src/oci/scripts.c
 * fuzz-libs: -ljson-c -lcrypto
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
    struct oci_manifest m;
    struct capsa_oci_config c = { 0 };
    capsa_error_t err = NULL;
    const char *buf = (const char *) data;

    if (oci_manifest_parse (buf, size, "application/vnd.oci.image.manifest.v1+json", &m, &err) == 0) {
        const struct oci_descriptor *d;
        if (m.kind == OCI_KIND_INDEX) {
            if (oci_index_select (&m, "amd64", &d, &err) == 0 && !oci_digest_valid (d->digest))
                abort ();
            capsa_error_free (&err);
            if (oci_index_select (&m, "arm64v8", &d, &err) < 0)
                capsa_error_free (&err);
        } else {
            /* Every descriptor handed out has a well-formed digest. */
            if (!oci_digest_valid (m.config.digest))
                abort ();
            for (size_t i = 0; i < m.nlayers; i++)
                if (!oci_digest_valid (m.layers[i].digest) || m.layers[i].size < -1)
                    abort ();
        }
        oci_manifest_free (&m);
    }
    capsa_error_free (&err);
    if (oci_config_parse (buf, size, &c, &err) == 0) {
        free (capsa_oci_runscript (&c));
        free (capsa_oci_envscript (&c));
    }
    capsa_error_free (&err);
    capsa_oci_config_free (&c);
    return 0;
}
