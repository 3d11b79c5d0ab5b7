/* Fakeroot: a user namespace in which the caller is root, with the
 * caller's subordinate ids of /etc/subuid and /etc/subgid mapped as well
 * (docs/writable.md, SECURITY.md "Fakeroot").
 *
 * The ranges are granted by the administrator in shadow's files and
 * written into the namespace by shadow's own setuid helpers, newuidmap and
 * newgidmap (Debian's uidmap), which check the files themselves: capsa
 * reads them only to know what to ask for and to warn when there is
 * nothing, never with privilege.  Without a range the caller's own uid and
 * gid alone are mapped (to root), which needs no helper.
 *
 * The same files are edited by `capsa config fakeroot` (root only): the
 * text transformations are here (pure functions, unit-tested), the locked,
 * atomic file update in src/cmd/config.c. */
#ifndef CAPSA_FAKEROOT_H
#define CAPSA_FAKEROOT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/error.h"

#define CAPSA_SUBUID_FILE "/etc/subuid"
#define CAPSA_SUBGID_FILE "/etc/subgid"
/* The size of a fakeroot range, as Apptainer requires and allocates. */
#define CAPSA_SUBID_COUNT 65536U

struct capsa_subid {
    uint32_t start, count; /* count 0: no range */
};

/* The range of user NAME (uid UID) in TEXT, the contents of FILE (for
 * messages), with Apptainer's choice among several entries of the user
 * (named or numbered): one of exactly 65536 ids, else the largest of more.
 * Disabled entries ("!NAME:...") do not count.  Returns 1 with *out set, 0
 * when the user has no usable entry (*why says why: "no entry", "disabled
 * by the administrator"), -1 when the user's entries are all smaller than
 * 65536 ids. */
int capsa_subid_find (const char *text, const char *file, const char *name, uid_t uid, struct capsa_subid *out,
                      const char **why, capsa_error_t *err);

/* The same on the file PATH, read with the caller's rights: a regular
 * file, last component not a symbolic link, at most 4 MiB.  A missing file
 * means no range (0). */
int capsa_subid_lookup (const char *path, const char *name, uid_t uid, struct capsa_subid *out, const char **why,
                        capsa_error_t *err);

/* Write the id maps of PID's new user namespace: root inside is UID/GID,
 * ids 1..count inside are the ranges U and G.  A range goes through
 * newuidmap/newgidmap (which allow setgroups in the namespace only then);
 * without one the caller's own id is written directly (setgroups denied,
 * as the kernel requires).  PID must be the caller's, not yet mapped. */
int capsa_fakeroot_write_maps (pid_t pid, uid_t uid, gid_t gid, const struct capsa_subid *u, const struct capsa_subid *g,
                               capsa_error_t *err);

/* The text of a uid map or gid map as it will be written ("0 1001 1\n1
 * 100000 65536\n"), in BUF. */
const char *capsa_fakeroot_map_text (unsigned long id, const struct capsa_subid *r, char *buf, size_t len);

/* The starter's part, as the user for good, before the namespaces exist:
 * look up the caller's ranges (a WARNING saying what will not work when
 * there is none) and make /root the home directory inside unless --home
 * says otherwise (as Apptainer does). */
struct capsa_container;
int capsa_fakeroot_prepare (struct capsa_container *c, capsa_error_t *err);

/* ---- capsa config fakeroot ------------------------------------------------ */

enum capsa_subid_op { SUBID_ADD, SUBID_REMOVE, SUBID_ENABLE, SUBID_DISABLE };

/* Apply OP for user NAME (uid UID) to TEXT, the contents of FILE, as
 * Apptainer does: add gives the user a free range of 65536 ids (the
 * highest free one below 2^32 - 131072, by steps of 65536 from 65536) as
 * "UID:START:65536" unless the user already has an entry; remove deletes
 * the user's entry; disable prefixes it with '!', enable removes that.
 * Every other line is kept byte for byte.  *out is the new text (always
 * set on success), *changed whether it differs.  Errors: no entry to
 * remove, enable or disable; no free range. */
int capsa_subid_edit (const char *text, const char *file, enum capsa_subid_op op, const char *name, uid_t uid,
                      char **out, bool *changed, capsa_error_t *err);

#endif
