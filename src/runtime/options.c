#include "options.h"

#include <getopt.h>
#include <string.h>

#include "runtime/gpu.h"

int
capsa_action_from_name (const char *name, enum capsa_action *out)
{
    if (strcmp (name, "exec") == 0)
        *out = ACTION_EXEC;
    else if (strcmp (name, "run") == 0)
        *out = ACTION_RUN;
    else if (strcmp (name, "shell") == 0)
        *out = ACTION_SHELL;
    else if (strcmp (name, "start") == 0)
        *out = ACTION_START;
    else
        return -1;
    return 0;
}

int
capsa_opts_add_overlay (struct capsa_opts *o, const char *spec, capsa_error_t *err)
{
    cleanup_free char *path = xstrdup (spec);
    size_t n = strlen (path);
    bool ro = false;
    if (n > 3 && (strcmp (path + n - 3, ":ro") == 0 || strcmp (path + n - 3, ":rw") == 0)) {
        ro = path[n - 2] == 'r' && path[n - 1] == 'o';
        path[n - 3] = '\0';
    }
    if (path[0] == '\0' || strchr (path, ':') != NULL)
        return capsa_error_make (err, 0, "invalid --overlay '%s' (expected PATH or PATH:ro)", spec);
    o->overlays = xrealloc (o->overlays, (o->noverlays + 1) * sizeof (*o->overlays));
    o->overlays[o->noverlays++] = (struct capsa_overlay_opt) { .path = steal_ptr (&path), .ro = ro };
    return 0;
}

int
capsa_opts_add_security (struct capsa_opts *o, const char *value, capsa_error_t *err)
{
    const char *colon = strchr (value, ':');
    const char *arg = colon ? colon + 1 : NULL;
    size_t klen = colon ? (size_t) (colon - value) : 0;
    long n;

    if (colon == NULL || *arg == '\0')
        return capsa_error_make (err, 0,
                                 "invalid --security '%s' (expected seccomp:PATH, uid:N, gid:N[:N...], "
                                 "selinux:LABEL or apparmor:PROFILE)",
                                 value);
    if (klen == 7 && strncmp (value, "seccomp", 7) == 0) {
        strv_push (&o->seccomp_paths, arg);
    } else if (klen == 3 && strncmp (value, "uid", 3) == 0) {
        if (parse_long (arg, 0, 0xfffffffeL, &n) < 0)
            return capsa_error_make (err, 0, "invalid --security '%s': uid must be a number", value);
        o->target_uid = n;
    } else if (klen == 3 && strncmp (value, "gid", 3) == 0) {
        cleanup_free char *copy = xstrdup (arg);
        char *save = NULL;
        o->ntarget_gids = 0;
        for (char *g = strtok_r (copy, ":", &save); g; g = strtok_r (NULL, ":", &save)) {
            if (parse_long (g, 0, 0xfffffffeL, &n) < 0 || o->ntarget_gids >= (int) ARRAY_SIZE (o->target_gids))
                return capsa_error_make (err, 0, "invalid --security '%s': gids must be numbers", value);
            o->target_gids[o->ntarget_gids++] = (gid_t) n;
        }
        if (o->ntarget_gids == 0)
            return capsa_error_make (err, 0, "invalid --security '%s': gids must be numbers", value);
    } else if (klen == 7 && strncmp (value, "selinux", 7) == 0) {
        free (o->selinux);
        o->selinux = xstrdup (arg);
    } else if (klen == 8 && strncmp (value, "apparmor", 8) == 0) {
        free (o->apparmor);
        o->apparmor = xstrdup (arg);
    } else {
        return capsa_error_make (err, 0,
                                 "invalid --security '%s': unknown key '%.*s' (allowed: seccomp, uid, gid, selinux, "
                                 "apparmor)",
                                 value, (int) klen, value);
    }
    return 0;
}

enum {
    OPT_NO_HOME = 1000,
    OPT_PWD,
    OPT_ENV,
    OPT_ENV_FILE,
    OPT_UTS,
    OPT_HOSTNAME,
    OPT_NETWORK,
    OPT_ADD_CAPS,
    OPT_DROP_CAPS,
    OPT_KEEP_PRIVS,
    OPT_NO_PRIVS,
    OPT_ALLOW_SETUID,
    OPT_SECURITY,
    OPT_SECCOMP_FD,
    OPT_KEY_FD,
    OPT_WRITABLE_TMPFS,
    OPT_MOUNT,
    OPT_NO_MOUNT,
    OPT_NO_INIT,
    OPT_NO_UMASK,
    OPT_NO_EVAL,
    OPT_INSTANCE,
    OPT_PID_FILE,
    OPT_NV,
    OPT_ROCM,
    OPT_NO_NV,
    OPT_NO_ROCM,
    OPT_GPU_FILE,
};

static const struct option long_opts[] = {
    { "bind", required_argument, NULL, 'B' },
    { "no-home", no_argument, NULL, OPT_NO_HOME },
    { "home", required_argument, NULL, 'H' },
    { "pwd", required_argument, NULL, OPT_PWD },
    { "cwd", required_argument, NULL, OPT_PWD },
    { "mount", required_argument, NULL, OPT_MOUNT },
    { "no-mount", required_argument, NULL, OPT_NO_MOUNT },
    { "no-init", no_argument, NULL, OPT_NO_INIT },
    { "no-umask", no_argument, NULL, OPT_NO_UMASK },
    { "no-eval", no_argument, NULL, OPT_NO_EVAL },
    { "contain", no_argument, NULL, 'c' },
    { "containall", no_argument, NULL, 'C' },
    { "cleanenv", no_argument, NULL, 'e' },
    { "env", required_argument, NULL, OPT_ENV },
    { "env-file", required_argument, NULL, OPT_ENV_FILE },
    { "pid", no_argument, NULL, 'p' },
    { "ipc", no_argument, NULL, 'i' },
    { "uts", no_argument, NULL, OPT_UTS },
    { "hostname", required_argument, NULL, OPT_HOSTNAME },
    { "net", no_argument, NULL, 'n' },
    { "network", required_argument, NULL, OPT_NETWORK },
    { "userns", no_argument, NULL, 'u' },
    { "shell", required_argument, NULL, 's' },
    { "add-caps", required_argument, NULL, OPT_ADD_CAPS },
    { "drop-caps", required_argument, NULL, OPT_DROP_CAPS },
    { "keep-privs", no_argument, NULL, OPT_KEEP_PRIVS },
    { "no-privs", no_argument, NULL, OPT_NO_PRIVS },
    { "allow-setuid", no_argument, NULL, OPT_ALLOW_SETUID },
    { "security", required_argument, NULL, OPT_SECURITY },
    { "seccomp-fd", required_argument, NULL, OPT_SECCOMP_FD },
    { "key-fd", required_argument, NULL, OPT_KEY_FD },
    { "fakeroot", no_argument, NULL, 'f' },
    { "writable", no_argument, NULL, 'w' },
    { "writable-tmpfs", no_argument, NULL, OPT_WRITABLE_TMPFS },
    { "overlay", required_argument, NULL, 'o' },
    { "instance", required_argument, NULL, OPT_INSTANCE },
    { "pid-file", required_argument, NULL, OPT_PID_FILE },
    { "nv", no_argument, NULL, OPT_NV },
    { "rocm", no_argument, NULL, OPT_ROCM },
    { "no-nv", no_argument, NULL, OPT_NO_NV },
    { "no-rocm", no_argument, NULL, OPT_NO_ROCM },
    { "gpu-file", required_argument, NULL, OPT_GPU_FILE },
    { NULL, 0, NULL, 0 },
};

static void
set_str (char **field, const char *v)
{
    free (*field);
    *field = xstrdup (v);
}

static void
append_list (char **field, const char *v)
{
    char *joined = *field ? xasprintf ("%s,%s", *field, v) : xstrdup (v);
    free (*field);
    *field = joined;
}

int
capsa_opts_parse (struct capsa_opts *o, int argc, char **argv, capsa_error_t *err)
{
    int c;

    memset (o, 0, sizeof (*o));
    o->target_uid = -1;
    o->key_fd = -1;
    if (argc < 1 || capsa_action_from_name (argv[0], &o->action) < 0)
        return capsa_error_make (err, 0, "unknown action '%s'", argc > 0 ? argv[0] : "");

    optind = 0; /* full re-initialisation of getopt */
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+:B:H:cCepinus:fwo:", long_opts, NULL)) != -1) {
        switch (c) {
        case 'B':
            if (capsa_opts_add_binds (o, optarg, err) < 0)
                return -1;
            break;
        case OPT_NO_HOME:
            o->no_home = true;
            break;
        case OPT_MOUNT:
            if (capsa_opts_add_mount (o, optarg, err) < 0)
                return -1;
            break;
        case OPT_NO_MOUNT:
            capsa_opts_add_no_mount (o, optarg);
            break;
        case OPT_NO_INIT:
            o->no_init = true;
            break;
        case OPT_NO_UMASK:
            o->no_umask = true;
            break;
        case OPT_NO_EVAL:
            o->no_eval = true;
            break;
        case 'H': {
            char *colon = strchr (optarg, ':');
            free (o->home_src);
            free (o->home_dst);
            o->home_src = xstrdup (optarg);
            if (colon)
                o->home_src[colon - optarg] = '\0';
            o->home_dst = xstrdup (colon ? colon + 1 : optarg);
            if (o->home_src == NULL || o->home_src[0] == '\0' || o->home_dst[0] != '/')
                return capsa_error_make (err, 0, "invalid --home '%s' (expected SRC[:DST], DST absolute)", optarg);
            /* DST becomes a field of the container's /etc/passwd: one more
             * ':' is refused, as Apptainer does, and so is a newline. */
            if (strchr (o->home_dst, ':'))
                return capsa_error_make (err, 0, "invalid --home '%s': more than one ':' (expected SRC[:DST])", optarg);
            if (strchr (o->home_dst, '\n'))
                return capsa_error_make (err, 0, "invalid --home: the home directory has a newline, which cannot go "
                                                 "into the container's /etc/passwd");
            break;
        }
        case OPT_PWD:
            set_str (&o->pwd, optarg);
            break;
        case 'C':
            o->contain = o->cleanenv = o->pid_ns = o->ipc_ns = true;
            break;
        case 'c':
            o->contain = true;
            break;
        case 'e':
            o->cleanenv = true;
            break;
        case OPT_ENV: {
            /* --env takes KEY=VAL[,KEY=VAL...]; a part without '=' belongs
             * to the previous value of the same --env (values may contain
             * commas). */
            cleanup_free char *copy = xstrdup (optarg);
            size_t first = o->env.n;
            for (char *kv = copy, *next; kv != NULL; kv = next) {
                next = strchr (kv, ',');
                if (next)
                    *next++ = '\0';
                if (strchr (kv, '=') == NULL || kv[0] == '=') {
                    if (o->env.n == first && kv[0] == '\0')
                        continue; /* a leading comma */
                    if (o->env.n == first)
                        return capsa_error_make (err, 0, "invalid --env '%s' (expected KEY=VALUE)", optarg);
                    char *joined = xasprintf ("%s,%s", o->env.v[o->env.n - 1], kv);
                    free (o->env.v[o->env.n - 1]);
                    o->env.v[o->env.n - 1] = joined;
                    continue;
                }
                strv_push (&o->env, kv);
            }
            break;
        }
        case OPT_ENV_FILE:
            strv_push (&o->env_files, optarg);
            break;
        case 'p':
            o->pid_ns = true;
            break;
        case 'i':
            o->ipc_ns = true;
            break;
        case OPT_UTS:
            o->uts_ns = true;
            break;
        case OPT_HOSTNAME:
            set_str (&o->hostname, optarg);
            o->uts_ns = true;
            break;
        case 'n':
            o->net_ns = true;
            break;
        case OPT_NETWORK:
            set_str (&o->network, optarg);
            break;
        case 'u':
            o->userns = true;
            break;
        case 's':
            set_str (&o->shell, optarg);
            break;
        case OPT_ADD_CAPS:
            append_list (&o->add_caps, optarg);
            break;
        case OPT_DROP_CAPS:
            append_list (&o->drop_caps, optarg);
            break;
        case OPT_KEEP_PRIVS:
            o->keep_privs = true;
            break;
        case OPT_NO_PRIVS:
            o->no_privs = true;
            break;
        case OPT_ALLOW_SETUID:
            o->allow_setuid = true;
            break;
        case OPT_SECURITY:
            if (capsa_opts_add_security (o, optarg, err) < 0)
                return -1;
            break;
        case OPT_KEY_FD: {
            long fd;
            if (parse_long (optarg, 3, 1 << 20, &fd) < 0)
                return capsa_error_make (err, 0, "invalid --key-fd '%s'", optarg);
            o->key_fd = (int) fd;
            break;
        }
        case OPT_SECCOMP_FD: {
            long fd;
            if (parse_long (optarg, 3, 1 << 20, &fd) < 0 || o->nseccomp_fds >= ARRAY_SIZE (o->seccomp_fds))
                return capsa_error_make (err, 0, "invalid --seccomp-fd '%s'", optarg);
            o->seccomp_fds[o->nseccomp_fds++] = (int) fd;
            break;
        }
        case 'f':
            o->fakeroot = true;
            break;
        case 'w':
            o->writable = true;
            break;
        case OPT_WRITABLE_TMPFS:
            o->writable_tmpfs = true;
            break;
        case 'o':
            if (capsa_opts_add_overlay (o, optarg, err) < 0)
                return -1;
            break;
        case OPT_INSTANCE:
            set_str (&o->instance, optarg);
            break;
        case OPT_PID_FILE:
            set_str (&o->pid_file, optarg);
            break;
        case OPT_NV:
            o->nv = true;
            break;
        case OPT_ROCM:
            o->rocm = true;
            break;
        case OPT_NO_NV:
            o->no_nv = true;
            break;
        case OPT_NO_ROCM:
            o->no_rocm = true;
            break;
        case OPT_GPU_FILE:
            if (capsa_gpu_file_valid (optarg) < 0)
                return capsa_error_make (err, 0, "invalid --gpu-file '%s' (expected lib:, lib32:, bin:, file: or dev: "
                                         "and an absolute path)",
                                         optarg);
            strv_push (&o->gpu_files, optarg);
            break;
        case ':':
            return capsa_error_make (err, 0, "option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt != 0)
                return capsa_error_make (err, 0, "unknown option '-%c' for '%s' (see 'capsa help %s')", optopt,
                                         argv[0], argv[0]);
            return capsa_error_make (err, 0, "unknown option '%s' for '%s' (see 'capsa help %s')",
                                     argv[optind - 1], argv[0], argv[0]);
        }
    }
    if (optind >= argc)
        return capsa_error_make (err, 0, "%s: missing IMAGE (usage: capsa %s [options] IMAGE%s)", argv[0], argv[0],
                                 o->action == ACTION_EXEC ? " COMMAND [ARGS...]" : o->action == ACTION_RUN ? " [ARGS...]" : "");
    o->image = xstrdup (argv[optind++]);
    if (o->image[0] == '\0')
        return capsa_error_make (err, 0, "empty image path");
    o->cmd = &argv[optind];
    o->ncmd = argc - optind;
    if (o->action == ACTION_EXEC && o->ncmd == 0)
        return capsa_error_make (err, 0, "exec: missing COMMAND (usage: capsa exec [options] IMAGE COMMAND [ARGS...])");
    if (o->action == ACTION_SHELL && o->ncmd > 0)
        return capsa_error_make (err, 0, "shell: unexpected argument '%s'", o->cmd[0]);
    if ((o->action == ACTION_START) != (o->instance != NULL) && !(o->action == ACTION_RUN && o->instance))
        return capsa_error_make (err, 0, "%s", o->instance ? "--instance is for start and run"
                                                            : "start: runs an instance (--instance=NAME)");
    if (o->pid_file && !o->instance)
        return capsa_error_make (err, 0, "--pid-file is for instances");
    if (o->network != NULL) {
        if (strcmp (o->network, "none") != 0)
            return capsa_error_make (err, 0, "--network '%s' is not supported (allowed: none)", o->network);
        if (!o->net_ns)
            return capsa_error_make (err, 0, "--network needs --net");
    }
    if (o->hostname != NULL && (o->hostname[0] == '\0' || strlen (o->hostname) > 64))
        return capsa_error_make (err, 0, "invalid --hostname '%s'", o->hostname);
    return 0;
}

void
capsa_opts_free (struct capsa_opts *o)
{
    for (size_t i = 0; i < o->nbinds; i++) {
        free (o->binds[i].src);
        free (o->binds[i].dst);
    }
    free (o->binds);
    for (size_t i = 0; i < o->noverlays; i++)
        free (o->overlays[i].path);
    free (o->overlays);
    free (o->image);
    free (o->home_src);
    free (o->home_dst);
    free (o->pwd);
    free (o->hostname);
    free (o->network);
    free (o->shell);
    free (o->add_caps);
    free (o->drop_caps);
    free (o->selinux);
    free (o->apparmor);
    free (o->instance);
    free (o->pid_file);
    strv_free (&o->seccomp_paths);
    strv_free (&o->env);
    strv_free (&o->env_files);
    strv_free (&o->skip_bind_paths);
    strv_free (&o->warnings);
    strv_free (&o->gpu_files);
    memset (o, 0, sizeof (*o));
}
