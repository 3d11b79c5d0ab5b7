/* Host paths that go into a container by configuration: the host's file
 * systems ('mount hostfs') and devices of the host's /dev a user binds.
 * Pure functions of their inputs (tests/unit/test_hostmounts.c). */
#include "runtime/hostmounts.h"

#include <stdio.h>
#include <string.h>

void
capsa_hostfs_points (const char *mountinfo, struct strv *out)
{
    static const char *const skip[] = { "/proc", "/sys", "/dev", "/run", "/boot", "/var" };
    cleanup_free char *text = xstrdup (mountinfo);
    long root = -1;
    char *save = NULL;

    /* The mount on "/": the last one listed there (the topmost). */
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        long id, parent;
        char point[4096];
        if (sscanf (line, "%ld %ld %*s %*s %4095s", &id, &parent, point) == 3 && strcmp (point, "/") == 0)
            root = id;
    }
    if (root < 0)
        return;
    free (text);
    text = xstrdup (mountinfo);
    save = NULL;
    for (char *line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        long id, parent;
        char point[4096];
        if (sscanf (line, "%ld %ld %*s %*s %4095s", &id, &parent, point) != 3 || parent != root || id == root)
            continue;
        mountinfo_unescape (point);
        bool skipped = point[0] != '/' || strcmp (point, "/") == 0;
        for (size_t i = 0; i < ARRAY_SIZE (skip) && !skipped; i++)
            skipped = strncmp (point, skip[i], strlen (skip[i])) == 0;
        for (size_t i = 0; i < out->n && !skipped; i++)
            skipped = strcmp (out->v[i], point) == 0;
        if (!skipped)
            strv_push (out, point);
    }
}

bool
capsa_dev_bind (const char *src, const char *dst, bool *whole)
{
    *whole = false;
    if (strcmp (src, dst) != 0)
        return false;
    if (strcmp (src, "/dev") == 0) {
        *whole = true;
        return true;
    }
    return strncmp (src, "/dev/", 5) == 0 && src[5] != '\0';
}

bool
capsa_dev_bind_allowed (const char *dst, bool *present)
{
    static const char *const nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };
    static const char *const busy[] = { "pts", "shm", "fd", "stdin", "stdout", "stderr", "ptmx", "mqueue" };
    const char *rest = dst + 5; /* after "/dev/" */
    size_t first = strcspn (rest, "/");

    *present = false;
    if (strncmp (dst, "/dev/", 5) != 0 || first == 0)
        return false;
    for (const char *p = rest; *p;) {
        size_t l = strcspn (p, "/");
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += l;
        if (*p == '/')
            p++;
    }
    for (size_t i = 0; i < ARRAY_SIZE (busy); i++)
        if (strlen (busy[i]) == first && strncmp (rest, busy[i], first) == 0)
            return false;
    for (size_t i = 0; i < ARRAY_SIZE (nodes); i++) {
        if (strlen (nodes[i]) == first && strncmp (rest, nodes[i], first) == 0) {
            *present = rest[first] == '\0';
            return *present;
        }
    }
    return true;
}
