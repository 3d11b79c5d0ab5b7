/* WWW-Authenticate (RFC 7235): the first challenge and its parameters.
 *   challenge  = scheme [ 1*SP auth-param *( OWS "," OWS auth-param ) ]
 *   auth-param = token BWS "=" BWS ( token / quoted-string )
 * A registry sends this; it is untrusted (fuzzed: tests/fuzz/fuzz_authhdr.c). */
#include <ctype.h>
#include <string.h>

#include "oci/oci_private.h"

#define HEADER_MAX 8192

static bool
is_tchar (char c)
{
    return isalnum ((unsigned char) c) || (c != '\0' && strchr ("!#$%&'*+-.^_`|~/", c) != NULL);
}

static const char *
skip_ws (const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

void
oci_challenge_free (struct oci_challenge *c)
{
    free (c->scheme);
    free (c->realm);
    free (c->service);
    free (c->scope);
    free (c->error);
    memset (c, 0, sizeof (*c));
}

int
oci_challenge_parse (const char *header, struct oci_challenge *out, capsa_error_t *err)
{
    memset (out, 0, sizeof (*out));
    if (header == NULL)
        return capsa_error_make (err, 0, "no WWW-Authenticate header");
    if (strlen (header) > HEADER_MAX)
        return capsa_error_make (err, 0, "WWW-Authenticate header too long");
    const char *p = skip_ws (header);
    const char *s = p;
    while (is_tchar (*p))
        p++;
    if (p == s)
        return capsa_error_make (err, 0, "invalid WWW-Authenticate header '%.100s'", header);
    out->scheme = xasprintf ("%.*s", (int) (p - s), s);
    for (char *c = out->scheme; *c; c++)
        *c = (char) tolower ((unsigned char) *c);

    p = skip_ws (p);
    while (*p) {
        const char *k = p;
        while (is_tchar (*p))
            p++;
        size_t klen = (size_t) (p - k);
        p = skip_ws (p);
        if (klen == 0 || *p != '=')
            break; /* the next challenge, or token68: not needed here */
        p = skip_ws (p + 1);
        /* the value, decoded */
        size_t cap = strlen (p) + 1, n = 0;
        char *val = xmalloc (cap);
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                val[n++] = *p++;
            }
            if (*p != '"') {
                free (val);
                oci_challenge_free (out);
                return capsa_error_make (err, 0, "invalid WWW-Authenticate header: unterminated quoted string");
            }
            p++;
        } else {
            while (is_tchar (*p) || *p == '=')
                val[n++] = *p++;
        }
        val[n] = '\0';
        char **slot = NULL;
        if (klen == 5 && strncasecmp (k, "realm", 5) == 0)
            slot = &out->realm;
        else if (klen == 7 && strncasecmp (k, "service", 7) == 0)
            slot = &out->service;
        else if (klen == 5 && strncasecmp (k, "scope", 5) == 0)
            slot = &out->scope;
        else if (klen == 5 && strncasecmp (k, "error", 5) == 0)
            slot = &out->error;
        if (slot != NULL && *slot == NULL)
            *slot = val;
        else
            free (val);
        p = skip_ws (p);
        if (*p == ',')
            p = skip_ws (p + 1);
        else
            break;
    }
    return 0;
}
