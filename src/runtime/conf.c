#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/confcompat.h"

#define CONF_MAX_SIZE (1024 * 1024)

void
capsa_conf_init (struct capsa_conf *c)
{
    memset (c, 0, sizeof (*c));
    c->allow_setuid = true;
    c->allow_pid_ns = true;
    c->allow_ipc_ns = true;
    c->allow_uts_ns = true;
    c->allow_net_ns = true;
    c->allow_user_ns = true;
    c->mount_proc = true;
    c->mount_sys = true;
    c->mount_dev = MOUNT_DEV_MINIMAL;
    c->mount_home = true;
    c->mount_tmp = true;
    c->user_bind_control = true;
    c->config_passwd = true;
    c->config_group = true;
    c->config_resolv_conf = true;
    c->root_default_caps = ROOT_CAPS_FULL;
    c->max_loop_devices = 256;
    c->setuid_mount_squashfs = TRI_IFLIMITED;
    c->setuid_mount_encrypted = TRI_IFLIMITED;
    c->allow_container_sif = c->allow_container_encrypted = true;
    c->allow_container_squashfs = c->allow_container_dir = true;
    c->enable_overlay = OVERLAY_TRY;
    c->sessiondir_max_size = 64;
    c->setuid_mount_extfs = false;
    c->allow_container_extfs = true;
    c->mount_devpts = true;
    c->mount_slave = true;
    c->memory_fs = MEMFS_TMPFS;
    c->image_server = true;
    c->image_server_linger = 10;
    c->image_server_cache = 256;
}

const char *
capsa_conf_memfs (const struct capsa_conf *c)
{
    return c->memory_fs == MEMFS_RAMFS ? "ramfs" : "tmpfs";
}

bool
capsa_conf_limited (const struct capsa_conf *c)
{
    return c->limit_owners.n > 0 || c->limit_groups.n > 0 || c->limit_paths.n > 0;
}

void
capsa_conf_free (struct capsa_conf *c)
{
    strv_free (&c->bind_paths);
    strv_free (&c->limit_owners);
    strv_free (&c->limit_groups);
    strv_free (&c->limit_paths);
    strv_free (&c->warnings);
    free (c->seccomp_profile);
    c->seccomp_profile = NULL;
}

enum kind { K_BOOL, K_ROOTCAPS, K_TRI, K_DEV, K_LONG, K_BINDPATH, K_NAMES, K_PATHS, K_FILE, K_OVERLAY, K_MIB, K_MEMFS, K_SERVER, K_SECONDS };

struct directive {
    const char *key;
    enum kind kind;
    size_t off;
};

#define D(k, kind, field) { k, kind, offsetof (struct capsa_conf, field) }
static const struct directive directives[] = {
    D ("allow setuid", K_BOOL, allow_setuid),
    D ("allow pid ns", K_BOOL, allow_pid_ns),
    D ("allow ipc ns", K_BOOL, allow_ipc_ns),
    D ("allow uts ns", K_BOOL, allow_uts_ns),
    D ("allow net ns", K_BOOL, allow_net_ns),
    D ("allow user ns", K_BOOL, allow_user_ns),
    D ("mount proc", K_BOOL, mount_proc),
    D ("mount sys", K_BOOL, mount_sys),
    D ("mount dev", K_DEV, mount_dev),
    D ("mount home", K_BOOL, mount_home),
    D ("mount tmp", K_BOOL, mount_tmp),
    D ("user bind control", K_BOOL, user_bind_control),
    D ("config passwd", K_BOOL, config_passwd),
    D ("config group", K_BOOL, config_group),
    D ("config resolv_conf", K_BOOL, config_resolv_conf),
    D ("root default capabilities", K_ROOTCAPS, root_default_caps),
    D ("max loop devices", K_LONG, max_loop_devices),
    D ("allow setuid-mount squashfs", K_TRI, setuid_mount_squashfs),
    D ("allow setuid-mount encrypted", K_TRI, setuid_mount_encrypted),
    D ("bind path", K_BINDPATH, bind_paths),
    D ("limit container owners", K_NAMES, limit_owners),
    D ("limit container groups", K_NAMES, limit_groups),
    D ("limit container paths", K_PATHS, limit_paths),
    D ("allow container sif", K_BOOL, allow_container_sif),
    D ("allow container encrypted", K_BOOL, allow_container_encrypted),
    D ("allow container squashfs", K_BOOL, allow_container_squashfs),
    D ("allow container dir", K_BOOL, allow_container_dir),
    D ("seccomp profile", K_FILE, seccomp_profile),
    D ("enable overlay", K_OVERLAY, enable_overlay),
    D ("sessiondir max size", K_MIB, sessiondir_max_size),
    D ("allow setuid-mount extfs", K_BOOL, setuid_mount_extfs),
    D ("allow container extfs", K_BOOL, allow_container_extfs),
    D ("mount devpts", K_BOOL, mount_devpts),
    D ("mount hostfs", K_BOOL, mount_hostfs),
    D ("mount slave", K_BOOL, mount_slave),
    D ("memory fs type", K_MEMFS, memory_fs),
    D ("always use nv", K_BOOL, always_use_nv),
    D ("use nvidia-container-cli", K_BOOL, use_nvidia_container_cli),
    D ("always use rocm", K_BOOL, always_use_rocm),
    D ("image server", K_SERVER, image_server),
    D ("image server linger", K_SECONDS, image_server_linger),
    D ("image server cache", K_LONG, image_server_cache),
};
#undef D

static const char *
allowed_values (enum kind k)
{
    switch (k) {
    case K_BOOL:
        return "yes, no";
    case K_ROOTCAPS:
        return "full, file, no";
    case K_TRI:
        return "yes, no, iflimited";
    case K_DEV:
        return "yes, no, minimal";
    case K_LONG:
        return "an integer from 0 to 4096";
    case K_BINDPATH:
        return "an absolute path, optionally followed by :DESTINATION and then :ro or :rw";
    case K_NAMES:
        return "a comma-separated list of names";
    case K_PATHS:
        return "a comma-separated list of absolute paths";
    case K_FILE:
        return "an absolute path";
    case K_OVERLAY:
        return "yes, no, try, driver";
    case K_MIB:
        return "a size in MiB from 1 to 1048576";
    case K_MEMFS:
        return "tmpfs, ramfs";
    case K_SERVER:
        return "capsa, squashfuse_ll";
    case K_SECONDS:
        return "seconds from 0 to 3600, as 10 or 10s";
    }
    return "";
}

/* Returns 0 when VALUE is valid for K and stores it. */
static int
set_value (struct capsa_conf *c, const struct directive *d, const char *value)
{
    void *field = (char *) c + d->off;
    long l;

    switch (d->kind) {
    case K_BOOL:
        if (strcmp (value, "yes") == 0)
            *(bool *) field = true;
        else if (strcmp (value, "no") == 0)
            *(bool *) field = false;
        else
            return -1;
        return 0;
    case K_ROOTCAPS:
        if (strcmp (value, "full") == 0)
            *(enum capsa_root_caps *) field = ROOT_CAPS_FULL;
        else if (strcmp (value, "file") == 0)
            *(enum capsa_root_caps *) field = ROOT_CAPS_FILE;
        else if (strcmp (value, "no") == 0)
            *(enum capsa_root_caps *) field = ROOT_CAPS_NO;
        else
            return -1;
        return 0;
    case K_TRI:
        if (strcmp (value, "yes") == 0)
            *(enum capsa_tristate *) field = TRI_YES;
        else if (strcmp (value, "no") == 0)
            *(enum capsa_tristate *) field = TRI_NO;
        else if (strcmp (value, "iflimited") == 0)
            *(enum capsa_tristate *) field = TRI_IFLIMITED;
        else
            return -1;
        return 0;
    case K_DEV:
        if (strcmp (value, "yes") == 0)
            *(enum capsa_mount_dev *) field = MOUNT_DEV_YES;
        else if (strcmp (value, "no") == 0)
            *(enum capsa_mount_dev *) field = MOUNT_DEV_NO;
        else if (strcmp (value, "minimal") == 0)
            *(enum capsa_mount_dev *) field = MOUNT_DEV_MINIMAL;
        else
            return -1;
        return 0;
    case K_LONG:
        if (parse_long (value, 0, 4096, &l) < 0)
            return -1;
        *(long *) field = l;
        return 0;
    case K_MIB:
        if (parse_long (value, 1, 1048576, &l) < 0)
            return -1;
        *(long *) field = l;
        return 0;
    case K_OVERLAY: {
        static const char *const names[] = { "no", "yes", "try", "driver" };
        for (size_t i = 0; i < ARRAY_SIZE (names); i++)
            if (strcmp (value, names[i]) == 0) {
                *(enum capsa_enable_overlay *) field = (enum capsa_enable_overlay) i;
                return 0;
            }
        return -1;
    }
    case K_NAMES:
    case K_PATHS: {
        /* Comma-separated; each item non-empty, paths absolute. */
        struct strv *list = field;
        cleanup_free char *copy = xstrdup (value);
        char *save = NULL;
        size_t before = list->n;
        for (char *item = strtok_r (copy, ",", &save); item; item = strtok_r (NULL, ",", &save)) {
            item = trim (item);
            if (*item == '\0' || (d->kind == K_PATHS && item[0] != '/') || (d->kind == K_NAMES && strchr (item, '/')))
                return -1;
            strv_push (list, item);
        }
        return list->n > before ? 0 : -1;
    }
    case K_MEMFS:
        if (strcmp (value, "tmpfs") == 0)
            *(enum capsa_memfs *) field = MEMFS_TMPFS;
        else if (strcmp (value, "ramfs") == 0)
            *(enum capsa_memfs *) field = MEMFS_RAMFS;
        else
            return -1;
        return 0;
    case K_SERVER:
        if (strcmp (value, "capsa") == 0)
            *(bool *) field = true;
        else if (strcmp (value, "squashfuse_ll") == 0)
            *(bool *) field = false;
        else
            return -1;
        return 0;
    case K_SECONDS: {
        cleanup_free char *num = xstrdup (value);
        size_t n = strlen (num);
        if (n > 1 && num[n - 1] == 's')
            num[n - 1] = '\0';
        if (parse_long (num, 0, 3600, &l) < 0)
            return -1;
        *(long *) field = l;
        return 0;
    }
    case K_FILE:
        if (value[0] != '/' || strstr (value, "/../") != NULL)
            return -1;
        free (*(char **) field);
        *(char **) field = xstrdup (value);
        return 0;
    case K_BINDPATH: {
        /* SRC[:DST[:ro|:rw]][,...] (Apptainer splits every value on
         * commas and ignores a third field; capsa honours ro), both paths
         * absolute, no ".." component. */
        cleanup_free char *copy = xstrdup (value);
        char *save = NULL;
        struct strv items = { 0 };
        for (char *item = strtok_r (copy, ",", &save); item; item = strtok_r (NULL, ",", &save)) {
            item = trim (item);
            const char *colon = strchr (item, ':');
            const char *opts = colon ? strchr (colon + 1, ':') : NULL;
            bool bad = item[0] != '/' || (colon && colon[1] != '/')
                       || (opts && strcmp (opts, ":ro") != 0 && strcmp (opts, ":rw") != 0);
            for (const char *p = item; !bad && (p = strstr (p, "..")) != NULL; p += 2)
                if ((p[-1] == '/') && (p[2] == '\0' || p[2] == '/' || p[2] == ':'))
                    bad = true;
            if (bad) {
                strv_free (&items);
                return -1;
            }
            strv_push (&items, item);
        }
        if (items.n == 0)
            return -1;
        for (size_t i = 0; i < items.n; i++)
            strv_push ((struct strv *) field, items.v[i]);
        strv_free (&items);
        return 0;
    }
    }
    return -1;
}

int
capsa_conf_parse (struct capsa_conf *c, const char *name, const char *text, capsa_error_t *err)
{
    cleanup_free char *copy = xstrdup (text);
    char *line = copy;
    long lineno = 0;

    while (line != NULL) {
        char *next = strchr (line, '\n');
        char *eq, *key, *value;
        const struct directive *d = NULL;

        if (next)
            *next++ = '\0';
        lineno++;
        key = trim (line);
        line = next;
        if (*key == '\0' || *key == '#')
            continue;
        eq = strchr (key, '=');
        if (eq == NULL)
            return capsa_error_make (err, 0, "%s:%ld: expected 'key = value', got '%s'", name, lineno, key);
        *eq = '\0';
        value = trim (eq + 1);
        key = trim (key);
        /* As in Apptainer, "key =" with no value leaves the default
         * (its confgen writes "image driver = " and the like). */
        if (*value == '\0')
            continue;
        for (size_t i = 0; i < ARRAY_SIZE (directives); i++)
            if (strcmp (directives[i].key, key) == 0)
                d = &directives[i];
        if (d == NULL) {
            int r = capsa_conf_compat (c, name, lineno, key, value, err);
            if (r < 0)
                return -1;
            if (r > 0)
                continue;
            return capsa_error_make (err, 0, "%s:%ld: unknown directive '%s'", name, lineno, key);
        }
        if (set_value (c, d, value) < 0)
            return capsa_error_make (err, 0, "%s:%ld: '%s' is not a valid value for '%s' (allowed: %s)", name,
                                     lineno, value, key, allowed_values (d->kind));
    }
    return 0;
}

int
capsa_open_trusted_file (const char *path, bool strict, capsa_error_t *err)
{
    struct stat st;
    /* Non-blocking, so that a FIFO is refused rather than waited on. */
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        if (errno == ELOOP)
            return capsa_error_make (err, 0, "%s is a symbolic link; refusing to use it", path);
        return capsa_error_make (err, errno, "cannot open %s", path);
    }
    if (fstat (fd, &st) < 0)
        return capsa_error_make (err, errno, "cannot stat %s", path);
    if (!S_ISREG (st.st_mode))
        return capsa_error_make (err, 0, "%s is not a regular file; refusing to use it", path);
    if (strict && st.st_uid != 0)
        return capsa_error_make (err, 0, "%s is not owned by root; refusing to use it", path);
    if (strict && (st.st_mode & (S_IWGRP | S_IWOTH)))
        return capsa_error_make (err, 0, "%s is writable by group or others; refusing to use it", path);
    if (fcntl (fd, F_SETFL, 0) < 0)
        return capsa_error_make (err, errno, "cannot read %s", path);
    return steal_fd (&fd);
}

int
capsa_conf_load (struct capsa_conf *c, const char *path, bool strict, capsa_error_t *err)
{
    cleanup_free char *text = NULL;
    cleanup_close int fd = capsa_open_trusted_file (path, strict, err);
    const char *base;
    size_t len;

    if (fd < 0)
        return -1;
    if (read_fd_all (fd, CONF_MAX_SIZE, &text, &len, err) < 0)
        return capsa_error_wrap (err, "%s", path);
    if (strlen (text) != len)
        return capsa_error_make (err, 0, "%s: contains a NUL byte", path);
    base = strrchr (path, '/');
    return capsa_conf_parse (c, base ? base + 1 : path, text, err);
}
