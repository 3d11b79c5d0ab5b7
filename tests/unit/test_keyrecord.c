/* Unit tests for src/crypt/keyrecord.c: the secret record a user's front end
 * hands on unopened (crypt.h describes the layout), parsed as the image
 * server and capsa-cryptfuse parse it.  Records are built here byte by byte
 * from that description. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypt/crypt.h"
#include "tap.h"

static size_t
build (uint8_t *out, int version, int fmt, int kind, const char *src, const char *msg, const char *secret)
{
    size_t n = 0;
    const char *fields[3] = { src, msg, secret };
    memcpy (out, "CAPSASEC", 8);
    n = 8;
    out[n++] = (uint8_t) version;
    out[n++] = (uint8_t) fmt;
    out[n++] = (uint8_t) kind;
    out[n++] = 0;
    for (int i = 0; i < 3; i++) {
        uint32_t l = (uint32_t) strlen (fields[i]);
        out[n] = (uint8_t) l, out[n + 1] = (uint8_t) (l >> 8), out[n + 2] = (uint8_t) (l >> 16), out[n + 3] = (uint8_t) (l >> 24);
        memcpy (out + n + 4, fields[i], l);
        n += 4 + l;
    }
    return n;
}

static bool
parses (const uint8_t *rec, size_t len, struct capsa_secret_record *r, const char *want_error)
{
    capsa_error_t err = NULL;
    int ret = capsa_secret_record_parse (rec, len, r, &err);
    bool ok = want_error ? ret < 0 && err && strstr (err->msg, want_error) : ret == 0;
    capsa_error_free (&err);
    return ok;
}

int
main (void)
{
    uint8_t rec[4096];
    struct capsa_secret_record r;
    size_t n;

    n = build (rec, 1, CAPSA_CRYPT_LUKS2, CAPSA_SECRET_PASSPHRASE, "CAPSA_ENCRYPTION_PASSPHRASE", "", "p4ss");
    CHECK (capsa_is_secret_record (rec, n), "a secret record is told apart from a data key record");
    CHECK (parses (rec, n, &r, NULL) && r.fmt == CAPSA_CRYPT_LUKS2 && r.kind == CAPSA_SECRET_PASSPHRASE
               && r.secret_len == 4 && memcmp (r.secret, "p4ss", 4) == 0 && r.source_len == 27 && r.message_len == 0,
           "a passphrase record: format, kind, source, secret");
    n = build (rec, 1, CAPSA_CRYPT_GOCRYPTFS, CAPSA_SECRET_PEM, "/k.pem", "-----BEGIN MESSAGE-----", "-----BEGIN RSA");
    CHECK (parses (rec, n, &r, NULL) && r.fmt == CAPSA_CRYPT_GOCRYPTFS && r.kind == CAPSA_SECRET_PEM
               && r.message_len == 23 && memcmp (r.source, "/k.pem", 6) == 0,
           "a PEM record with its key message");
    CHECK (!capsa_is_secret_record ("CAPSAKEY\001\100", 10), "a data key record is not a secret record");
    CHECK (parses (rec, n - 1, &r, "truncated"), "one byte short: truncated");
    rec[n] = 'x';
    CHECK (parses (rec, n + 1, &r, "too many"), "one byte more: refused");
    n = build (rec, 2, CAPSA_CRYPT_LUKS2, CAPSA_SECRET_PASSPHRASE, "s", "", "p");
    CHECK (parses (rec, n, &r, "version 2"), "another version: refused");
    n = build (rec, 1, 9, CAPSA_SECRET_PASSPHRASE, "s", "", "p");
    CHECK (parses (rec, n, &r, "unknown format 9"), "an unknown format: refused");
    n = build (rec, 1, CAPSA_CRYPT_LUKS2, 7, "s", "", "p");
    CHECK (parses (rec, n, &r, "unknown kind of key 7"), "an unknown kind: refused");
    n = build (rec, 1, CAPSA_CRYPT_LUKS2, CAPSA_SECRET_PASSPHRASE, "s", "", "");
    CHECK (parses (rec, n, &r, "holds no key"), "an empty secret: refused");
    n = build (rec, 1, CAPSA_CRYPT_LUKS2, CAPSA_SECRET_PEM, "s", "", "pem");
    CHECK (parses (rec, n, &r, "holds no key"), "a PEM key without a key message: refused");
    /* A length that points past the end, and one that would wrap. */
    n = build (rec, 1, CAPSA_CRYPT_LUKS2, CAPSA_SECRET_PASSPHRASE, "s", "", "p");
    rec[12] = 0xff, rec[13] = 0xff, rec[14] = 0xff, rec[15] = 0xff;
    CHECK (parses (rec, n, &r, "truncated"), "a field length past the end: refused");
    CHECK (parses (rec, 11, &r, "not a key record"), "shorter than its header: refused");
    return tap_done ();
}
