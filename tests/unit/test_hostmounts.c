/* Unit tests for src/runtime/hostmounts.c: which mount points 'mount
 * hostfs' binds (from a mountinfo text) and which -B /dev/X binds go into
 * the container's /dev. */
#include <string.h>

#include "lib/utils.h"
#include "runtime/hostmounts.h"
#include "tap.h"

static void
test_hostfs (void)
{
    /* A host like this one: / on 26, with children and grandchildren; a
     * second mount stacked on / (id 90) becomes the parent of later ones. */
    static const char *const mi
        = "21 26 0:20 / /proc rw - proc proc rw\n"
          "22 26 0:21 / /sys rw - sysfs sysfs rw\n"
          "23 26 0:5 / /dev rw - devtmpfs udev rw\n"
          "24 23 0:22 / /dev/shm rw - tmpfs tmpfs rw\n"
          "26 1 254:1 / / rw - ext4 /dev/vda rw\n"
          "27 26 0:30 / /home rw - ext4 /dev/vdb rw\n"
          "28 27 0:31 / /home/alice/fuse rw - fuse.sshfs x rw\n"
          "29 26 0:32 / /run rw - tmpfs tmpfs rw\n"
          "30 26 0:33 / /var/lib/docker rw - ext4 /dev/vdc rw\n"
          "31 26 0:34 / /boot rw - ext4 /dev/vdd rw\n"
          "32 26 0:35 / /scratch\\040space rw - xfs /dev/vde rw\n"
          "33 26 0:36 / /proceeds rw - xfs /dev/vdf rw\n"
          "34 26 0:37 / /data rw - nfs srv:/data rw\n"
          "35 26 0:38 / /data rw - nfs srv:/data2 rw\n";
    struct strv out = { 0 };
    capsa_hostfs_points (mi, &out);
    CHECK (out.n == 3, "hostfs: three mount points");
    CHECK (out.n > 0 && strcmp (out.v[0], "/home") == 0, "hostfs: /home (a child of /)");
    CHECK (out.n > 1 && strcmp (out.v[1], "/scratch space") == 0, "hostfs: \\040 unescaped");
    CHECK (out.n > 2 && strcmp (out.v[2], "/data") == 0, "hostfs: /data once, though mounted twice");
    for (size_t i = 0; i < out.n; i++)
        CHECK (strcmp (out.v[i], "/home/alice/fuse") != 0 && strncmp (out.v[i], "/run", 4) != 0
                   && strncmp (out.v[i], "/var", 4) != 0 && strncmp (out.v[i], "/boot", 5) != 0,
               "hostfs: no grandchild, /run, /var or /boot");
    strv_free (&out);
    /* /proceeds is skipped: Apptainer compares string prefixes. */
    capsa_hostfs_points ("1 0 0:1 / / rw - ext4 x rw\n2 1 0:2 / /proceeds rw - xfs y rw\n", &out);
    CHECK (out.n == 0, "hostfs: '/proceeds' skipped like /proc (string prefix, as Apptainer)");
    strv_free (&out);
    capsa_hostfs_points ("garbage\n\n", &out);
    CHECK (out.n == 0, "hostfs: no / mount, nothing");
    strv_free (&out);
}

static void
test_dev (void)
{
    bool whole, present;
    CHECK (capsa_dev_bind ("/dev/fuse", "/dev/fuse", &whole) && !whole, "dev: /dev/fuse:/dev/fuse");
    CHECK (capsa_dev_bind ("/dev", "/dev", &whole) && whole, "dev: /dev itself");
    CHECK (!capsa_dev_bind ("/dev/fuse", "/dev/f2", &whole), "dev: a different destination is not a device bind");
    CHECK (!capsa_dev_bind ("/devices", "/devices", &whole), "dev: /devices is not below /dev");
    CHECK (!capsa_dev_bind ("/dev/", "/dev/", &whole), "dev: '/dev/' (not cleaned) refused");

    CHECK (capsa_dev_bind_allowed ("/dev/fuse", &present) && !present, "dev allowed: /dev/fuse");
    CHECK (capsa_dev_bind_allowed ("/dev/infiniband/uverbs0", &present) && !present, "dev allowed: in a new directory");
    CHECK (capsa_dev_bind_allowed ("/dev/null", &present) && present, "dev: /dev/null is there already");
    static const char *const no[] = { "/dev/shm/x", "/dev/pts/0", "/dev/fd/3", "/dev/stdin", "/dev/ptmx",
                                      "/dev/null/x", "/dev/a/../b", "/dev/./x", "/dev//x", "/dev/mqueue" };
    for (size_t i = 0; i < ARRAY_SIZE (no); i++) {
        cleanup_free char *name = xasprintf ("dev refused: %s", no[i]);
        CHECK (!capsa_dev_bind_allowed (no[i], &present) && !present, name);
    }
}

int
main (void)
{
    test_hostfs ();
    test_dev ();
    return tap_done ();
}
