/* User-namespace id maps: see idmap.h. */
#include "runtime/idmap.h"

#include <stdio.h>

#include "lib/utils.h"

int
capsa_write_id_maps (pid_t pid, const char *uid_map, const char *gid_map, capsa_error_t *err)
{
    char path[64];
    snprintf (path, sizeof (path), "/proc/%d/setgroups", (int) pid);
    if (write_file (path, "deny", err) < 0)
        return -1;
    snprintf (path, sizeof (path), "/proc/%d/uid_map", (int) pid);
    if (write_file (path, uid_map, err) < 0)
        return capsa_error_wrap (err, "cannot write the uid map");
    snprintf (path, sizeof (path), "/proc/%d/gid_map", (int) pid);
    if (write_file (path, gid_map, err) < 0)
        return capsa_error_wrap (err, "cannot write the gid map");
    return 0;
}
