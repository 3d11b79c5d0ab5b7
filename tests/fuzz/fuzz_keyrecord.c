/* libFuzzer target for the secret record parser (src/crypt/keyrecord.c):
 * the key material a user's front end hands on unopened, read by the image
 * server and capsa-cryptfuse from the starter's --key-fd pipe.  Each input
 * is a record; a record that parses must have its three fields inside the
 * input and a secret.  Seeds in regress-keyrecord/ are records of a
 * passphrase and of a PEM key with a key message.
 *
 * Build metadata for tests/fuzz/build.sh follows. */
// fuzz-sources: src/crypt/keyrecord.c src/crypt/secmem.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypt/crypt.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    struct capsa_secret_record r;
    capsa_error_t err = NULL;

    if (capsa_secret_record_parse (data, size, &r, &err) < 0) {
        capsa_error_free (&err);
        return 0;
    }
    const uint8_t *end = data + size;
    if ((const uint8_t *) r.source < data || (const uint8_t *) r.source + r.source_len > end
        || (const uint8_t *) r.message < data || (const uint8_t *) r.message + r.message_len > end || r.secret < data
        || r.secret + r.secret_len > end || r.secret_len == 0)
        abort ();
    return 0;
}
