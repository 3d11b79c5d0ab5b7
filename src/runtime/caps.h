/* Linux capabilities under the administrator's control.
 *
 * Sets of capabilities are 64-bit masks (bit N = capability N).  Names go
 * through libcap; user input is trimmed, upper-cased and given a "CAP_"
 * prefix, and "all" means every capability the running kernel knows.
 *
 * Grants live in capability.json beside capsa.conf:
 *   {"users":{"NAME":["CAP_X",...]},"groups":{"NAME":[...]}}
 * The starter reads it itself (never trusting the front end); only root
 * changes it, under an exclusive lock, by writing a temporary file, fsync
 * and rename, so readers never see a partial file. */
#ifndef CAPSA_CAPS_H
#define CAPSA_CAPS_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"
#include "lib/utils.h"

typedef uint64_t capsa_capset_t;

/* Highest capability the running kernel knows. */
int capsa_cap_last (void);
capsa_capset_t capsa_cap_all (void);

/* Parse "net_raw, CAP_SYS_ADMIN,all" into a mask.  Unknown names are not
 * an error: they are appended to *unknown (normalised) for the caller to
 * report, and skipped. */
capsa_capset_t capsa_caps_parse (const char *list, struct strv *unknown);

/* "CAP_A,CAP_B" (empty string for none); caller frees. */
char *capsa_caps_to_string (capsa_capset_t set);

/* One-line description of capability N. */
const char *capsa_cap_description (int cap);

struct capsa_grant {
    char *name;
    capsa_capset_t caps;
};

struct capsa_grants {
    struct capsa_grant *users;
    size_t nusers;
    struct capsa_grant *groups;
    size_t ngroups;
};

void capsa_grants_free (struct capsa_grants *g);

/* Parse the JSON text of capability.json (strictly: an object with at most
 * "users" and "groups", each an object of arrays of capability names). */
int capsa_grants_parse (struct capsa_grants *g, const char *name, const char *text, size_t len, capsa_error_t *err);

/* Open PATH with capsa_open_trusted_file (strict: root-owned, not writable
 * by others, no symlink) and parse it.  A missing file is an empty set of
 * grants only when missing_ok. */
int capsa_grants_load (struct capsa_grants *g, const char *path, bool strict, bool missing_ok, capsa_error_t *err);

capsa_capset_t capsa_grants_for_user (const struct capsa_grants *g, const char *user);
capsa_capset_t capsa_grants_for_group (const struct capsa_grants *g, const char *group);

/* Set (replace) the grant of NAME; caps 0 removes the entry. */
void capsa_grants_set (struct capsa_grants *g, bool group, const char *name, capsa_capset_t caps);

/* Serialise (sorted by name, capabilities in number order). */
char *capsa_grants_to_json (const struct capsa_grants *g);

#endif
