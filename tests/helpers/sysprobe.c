/* sysprobe NAME...: calls each named system call in a harmless way and
 * prints "NAME=OK" or "NAME=ERRNONAME" per line.  Static, so that it runs
 * inside the test images too.  Used to prove that tests/helpers/nosys
 * really takes openat2, close_range and mount_setattr away (on the host,
 * through runuser, and inside a container started through the setuid
 * starter) and that an administrator's seccomp profile reaches a user's
 * container (keyctl).
 *   openat2        openat2(AT_FDCWD, "/", O_PATH)       normally OK
 *   close_range    close_range(1000000, 1000001, 0)     normally OK
 *   mount_setattr  mount_setattr with unknown attributes   normally EINVAL
 *   keyctl         KEYCTL_GET_KEYRING_ID of the user keyring, normally OK */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_openat2
#define __NR_openat2 437
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif

static long
probe (const char *name)
{
    if (strcmp (name, "openat2") == 0) {
        struct open_how how = { .flags = O_PATH | O_CLOEXEC };
        long fd = syscall (__NR_openat2, AT_FDCWD, "/", &how, sizeof (how));
        if (fd >= 0)
            close ((int) fd);
        return fd;
    }
    if (strcmp (name, "close_range") == 0)
        return syscall (__NR_close_range, 1000000U, 1000001U, 0U);
    if (strcmp (name, "mount_setattr") == 0) {
        /* Unknown attribute bits: refused before any permission check. */
        struct mount_attr attr = { .attr_set = ~0ULL };
        return syscall (__NR_mount_setattr, -1, "", AT_EMPTY_PATH, &attr, sizeof (attr));
    }
    if (strcmp (name, "keyctl") == 0)
        return syscall (SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0);
    errno = EINVAL;
    return -2;
}

int
main (int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = probe (argv[i]);
        if (r == -2) {
            fprintf (stderr, "sysprobe: unknown probe '%s'\n", argv[i]);
            return 2;
        }
        if (r >= 0)
            printf ("%s=OK\n", argv[i]);
        else
            printf ("%s=%s\n", argv[i], strerrorname_np (errno) ? strerrorname_np (errno) : "?");
    }
    return 0;
}
