/* exec, run, shell, test: the front end's part is small.  It reads the
 * option variables (CAPSA_X, APPTAINER_X, SINGULARITY_X: src/cmd/envopt.c)
 * and the action's options, resolves images named by URI (oras://,
 * docker://, http(s)://) to a SIF in the cache, compiles seccomp profiles,
 * and executes the starter, which parses and checks everything again
 * itself.  Options the starter knows are passed on as --NAME=VALUE; options
 * of Apptainer that capsa does not implement are refused here with a
 * precise message (docs/apptainer.md lists every one). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "config.h"
#include "crypt/crypt.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "policy/seccomp_compile.h"
#include "runtime/caps.h"
#include "runtime/inststate.h"
#include "sif/sif.h"

/* What the front end does with an option of Apptainer's actions. */
enum kind {
    K_PASS,   /* the starter's: passed on as --NAME[=VALUE] */
    K_FRONT,  /* the front end's own (handled below) */
    K_NOOP,   /* accepted, nothing to do in capsa (said with -v) */
    K_REFUSE, /* not implemented: fatal, with the reason */
};

struct optdef {
    const char *name; /* long name */
    char shortname;   /* 0: none */
    bool value;       /* takes a value */
    enum kind kind;
    const char *why;  /* K_REFUSE, K_NOOP: the reason */
};

/* Every option of Apptainer's exec/run/shell/test (cmd/internal/cli/
 * action_flags.go), plus capsa's own. */
static const struct optdef optdefs[] = {
    { "add-caps", 0, true, K_PASS, NULL },
    { "allow-setuid", 0, false, K_PASS, NULL },
    { "app", 0, true, K_REFUSE, "SCIF apps are not supported" },
    { "apply-cgroups", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "authfile", 0, true, K_FRONT, NULL },
    { "bind", 'B', true, K_PASS, NULL },
    { "blkio-weight", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "blkio-weight-device", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "boot", 0, false, K_REFUSE, "--boot (the image's own init system as an instance) is not supported" },
    { "cdi-dirs", 0, true, K_REFUSE, "CDI devices are not supported" },
    { "cleanenv", 'e', false, K_PASS, NULL },
    { "compat", 0, false, K_FRONT, NULL },
    { "contain", 'c', false, K_PASS, NULL },
    { "containall", 'C', false, K_FRONT, NULL },
    { "containlibs", 0, true, K_REFUSE, "--containlibs (GPU library binding) is not supported" },
    { "cpu-shares", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "cpus", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "cpuset-cpus", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "cpuset-mems", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "cwd", 0, true, K_PASS, NULL },
    { "device", 0, true, K_REFUSE, "CDI devices are not supported" },
    { "disable-cache", 0, false, K_FRONT, NULL },
    { "dmtcp-launch", 0, true, K_REFUSE, "DMTCP checkpoints are not supported" },
    { "dmtcp-restart", 0, true, K_REFUSE, "DMTCP checkpoints are not supported" },
    { "dns", 0, true, K_REFUSE, "only --network none is supported" },
    { "docker-host", 0, true, K_REFUSE, "docker-daemon images are not supported" },
    { "docker-login", 0, false, K_REFUSE, "log in first with 'capsa registry login HOST'" },
    { "docker-password", 0, true, K_FRONT, NULL },
    { "docker-username", 0, true, K_FRONT, NULL },
    { "drop-caps", 0, true, K_PASS, NULL },
    { "env", 0, true, K_PASS, NULL },
    { "env-file", 0, true, K_PASS, NULL },
    { "fakeroot", 'f', false, K_PASS, NULL },
    { "fusemount", 0, true, K_REFUSE, "--fusemount is not supported" },
    { "home", 'H', true, K_PASS, NULL },
    { "hostname", 0, true, K_PASS, NULL },
    { "ignore-fakeroot-command", 0, false, K_NOOP, "capsa never runs a fakeroot command" },
    { "ignore-subuid", 0, false, K_REFUSE, "--ignore-subuid is not supported" },
    { "ignore-userns", 0, false, K_REFUSE, "--ignore-userns is not supported" },
    { "intel-hpu", 0, false, K_REFUSE, "GPU and accelerator support is not implemented" },
    { "ipc", 'i', false, K_PASS, NULL },
    { "keep-privs", 0, false, K_PASS, NULL },
    { "memory", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "memory-reservation", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "memory-swap", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "mount", 0, true, K_PASS, NULL },
    { "net", 'n', false, K_PASS, NULL },
    { "netns-path", 0, true, K_REFUSE, "joining a network namespace is not supported" },
    { "network", 0, true, K_PASS, NULL },
    { "network-args", 0, true, K_REFUSE, "only --network none is supported" },
    { "no-env", 0, true, K_REFUSE, "--no-env is not supported" },
    { "no-eval", 0, false, K_PASS, NULL },
    { "no-home", 0, false, K_PASS, NULL },
    { "no-https", 0, false, K_FRONT, NULL },
    { "no-init", 0, false, K_PASS, NULL },
    { "no-mount", 0, true, K_PASS, NULL },
    { "no-nv", 0, false, K_FRONT, NULL },
    { "no-pid", 0, false, K_FRONT, NULL },
    { "no-privs", 0, false, K_PASS, NULL },
    { "no-rocm", 0, false, K_FRONT, NULL },
    { "no-umask", 0, false, K_PASS, NULL },
    { "nohttps", 0, false, K_FRONT, NULL },
    { "nv", 0, false, K_FRONT, NULL },
    { "nvccli", 0, false, K_FRONT, NULL },
    { "compat32", 0, false, K_FRONT, NULL },
    { "oom-kill-disable", 0, false, K_REFUSE, "cgroup resource limits are not supported" },
    { "overlay", 'o', true, K_PASS, NULL },
    { "passphrase", 0, false, K_FRONT, NULL },
    { "pid-file", 0, true, K_FRONT, NULL },
    { "pem-path", 0, true, K_FRONT, NULL },
    { "pid", 'p', false, K_PASS, NULL },
    { "pids-limit", 0, true, K_REFUSE, "cgroup resource limits are not supported" },
    { "pwd", 0, true, K_PASS, NULL },
    { "rocm", 0, false, K_FRONT, NULL },
    { "runscript-timeout", 0, true, K_REFUSE, "--runscript-timeout is not supported" },
    { "scratch", 'S', true, K_REFUSE, "--scratch is not supported (bind a directory of your own with -B)" },
    { "security", 0, true, K_FRONT, NULL },
    { "sharens", 0, false, K_REFUSE, "--sharens is not supported" },
    { "shell", 's', true, K_PASS, NULL },
    { "tmpdir", 0, true, K_FRONT, NULL },
    { "underlay", 0, false, K_NOOP, "capsa always uses an overlay" },
    { "unsquash", 0, false, K_NOOP, "capsa mounts squashfs images itself (FUSE where the kernel cannot)" },
    { "userns", 'u', false, K_PASS, NULL },
    { "uts", 0, false, K_PASS, NULL },
    { "workdir", 'W', true, K_REFUSE, "--workdir is not supported (bind a directory of your own with -B)" },
    { "writable", 'w', false, K_PASS, NULL },
    { "writable-tmpfs", 0, false, K_PASS, NULL },
    /* capsa's own, passed from here to the starter */
    { "seccomp-fd", 0, true, K_REFUSE, "--seccomp-fd is given by capsa itself; use --security seccomp:PATH" },
    { "key-fd", 0, true, K_REFUSE, "--key-fd is given by capsa itself; use --passphrase or --pem-path" },
    { "gpu-file", 0, true, K_REFUSE, "--gpu-file is given by capsa itself; use --nv or --rocm (the files are listed in nvliblist.conf and rocmliblist.conf)" },
};

/* Option variables of the actions (Apptainer's EnvKeys): KEY is read as
 * CAPSA_KEY, APPTAINER_KEY, SINGULARITY_KEY (src/cmd/envopt.c).  A
 * variable is used only when its option is not on the command line, except
 * for --bind and --mount, whose variables add to the command line's (as in
 * Apptainer).  Where several keys feed one option, the first set wins.
 * The registry variables (NOHTTPS, AUTH_FILE, DOCKER_USERNAME, ...) are
 * read where they are used, src/cmd/registry.c. */
struct envdef {
    const char *key;
    const char *opt; /* long option name */
};

static const struct envdef envdefs[] = {
    { "BIND", "bind" },           { "BINDPATH", "bind" },       { "MOUNT", "mount" },
    { "HOME", "home" },           { "OVERLAY", "overlay" },     { "OVERLAYIMAGE", "overlay" },
    { "SCRATCH", "scratch" },     { "SCRATCHDIR", "scratch" },  { "WORKDIR", "workdir" },
    { "DISABLE_CACHE", "disable-cache" },
    { "SHELL", "shell" },         { "CWD", "cwd" },             { "TARGET_CWD", "cwd" },
    { "PWD", "pwd" },             { "TARGET_PWD", "pwd" },      { "HOSTNAME", "hostname" },
    { "NETWORK", "network" },     { "NETWORK_ARGS", "network-args" },
    { "DNS", "dns" },             { "SECURITY", "security" },   { "APPLY_CGROUPS", "apply-cgroups" },
    { "CONTAINLIBS", "containlibs" }, { "FUSESPEC", "fusemount" },
    { "FAKEROOT", "fakeroot" },   { "CLEANENV", "cleanenv" },   { "COMPAT", "compat" },
    { "CONTAIN", "contain" },     { "CONTAINALL", "containall" }, { "NV", "nv" },
    { "NVCCLI", "nvccli" },       { "COMPAT32", "compat32" },   { "ROCM", "rocm" },
    { "WRITABLE", "writable" },   { "WRITABLE_TMPFS", "writable-tmpfs" },
    { "NO_HOME", "no-home" },     { "NO_MOUNT", "no-mount" },   { "NOSHIMINIT", "no-init" },
    { "NV_OFF", "no-nv" },        { "NO_NV", "no-nv" },         { "ROCM_OFF", "no-rocm" },
    { "NO_ROCM", "no-rocm" },     { "PID", "pid" },             { "UNSHARE_PID", "pid" },
    { "NO_PID", "no-pid" },       { "IPC", "ipc" },             { "UNSHARE_IPC", "ipc" },
    { "NET", "net" },             { "UNSHARE_NET", "net" },     { "UTS", "uts" },
    { "UNSHARE_UTS", "uts" },     { "USERNS", "userns" },       { "UNSHARE_USERNS", "userns" },
    { "KEEP_PRIVS", "keep-privs" }, { "NO_PRIVS", "no-privs" }, { "ADD_CAPS", "add-caps" },
    { "DROP_CAPS", "drop-caps" }, { "ALLOW_SETUID", "allow-setuid" }, { "NOENV", "no-env" },
    { "ENV_FILE", "env-file" },   { "NO_UMASK", "no-umask" },   { "NO_EVAL", "no-eval" },
    { "DMTCP_LAUNCH", "dmtcp-launch" }, { "DMTCP_RESTART", "dmtcp-restart" },
    { "BLKIO_WEIGHT", "blkio-weight" }, { "BLKIO_WEIGHT_DEVICE", "blkio-weight-device" },
    { "CPU_SHARES", "cpu-shares" }, { "CPUSET_CPUS", "cpuset-cpus" }, { "CPUSET_MEMS", "cpuset-mems" },
    { "MEMORY", "memory" },       { "MEMORY_RESERVATION", "memory-reservation" },
    { "MEMORY_SWAP", "memory-swap" }, { "OOM_KILL_DISABLE", "oom-kill-disable" },
    { "PIDS_LIMIT", "pids-limit" }, { "UNSQUASH", "unsquash" },
    { "IGNORE_SUBUID", "ignore-subuid" }, { "IGNORE_FAKEROOT_COMMAND", "ignore-fakeroot-command" },
    { "IGNORE_USERNS", "ignore-userns" }, { "UNDERLAY", "underlay" }, { "SHARENS", "sharens" },
    { "RUNSCRIPT_TIMEOUT", "runscript-timeout" }, { "NETNS_PATH", "netns-path" },
    { "INTEL_HPU", "intel-hpu" },  { "APP", "app" },             { "APPNAME", "app" },
    { "TMPDIR", "tmpdir" },       { "PID_FILE", "pid-file" },
};

static const struct optdef *
find_long (const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_SIZE (optdefs); i++)
        if (strlen (optdefs[i].name) == len && strncmp (optdefs[i].name, name, len) == 0)
            return &optdefs[i];
    return NULL;
}

static const struct optdef *
find_short (char c)
{
    for (size_t i = 0; i < ARRAY_SIZE (optdefs); i++)
        if (optdefs[i].shortname == c)
            return &optdefs[i];
    return NULL;
}

/* Everything gathered from the variables and the command line. */
struct action {
    const char *cmd;          /* exec, run, shell, test */
    struct strv pass;         /* for the starter: --NAME[=VALUE] */
    struct strv cmdline_opts; /* long names given on the command line */
    struct strv security;     /* --security values */
    struct strv add_caps, drop_caps;
    bool passphrase, no_pid, compat, containall, no_privs, fakeroot, disable_cache;
    struct capsa_gpu_request gpu;
    const char *pem_path, *tmpdir;
    const char *pid_file; /* instance start/run */
};

static bool
on_cmdline (const struct action *a, const char *name)
{
    for (size_t i = 0; i < a->cmdline_opts.n; i++)
        if (strcmp (a->cmdline_opts.v[i], name) == 0)
            return true;
    return false;
}

/* One option, from the command line or a variable (FROM names it). */
static void
take (struct action *a, const struct optdef *d, const char *value, const char *from)
{
    switch (d->kind) {
    case K_REFUSE:
        capsa_die ("%s: %s (see docs/apptainer.md)", from, d->why);
    case K_NOOP:
        verbosef ("%s: ignored, %s", from, d->why);
        return;
    case K_PASS:
        if (strcmp (d->name, "add-caps") == 0)
            strv_push (&a->add_caps, value);
        else if (strcmp (d->name, "drop-caps") == 0)
            strv_push (&a->drop_caps, value);
        else if (strcmp (d->name, "no-privs") == 0)
            a->no_privs = true;
        else if (strcmp (d->name, "fakeroot") == 0)
            a->fakeroot = true;
        strv_push_take (&a->pass, value ? xasprintf ("--%s=%s", d->name, value) : xasprintf ("--%s", d->name));
        return;
    case K_FRONT:
        break;
    }
    const char *n = d->name;
    if (strcmp (n, "security") == 0) {
        strv_push (&a->security, value);
    } else if (strcmp (n, "passphrase") == 0) {
        a->passphrase = true;
    } else if (strcmp (n, "pem-path") == 0) {
        a->pem_path = value;
    } else if (strcmp (n, "no-https") == 0 || strcmp (n, "nohttps") == 0) {
        capsa_cmd_set_no_https ();
    } else if (strcmp (n, "authfile") == 0) {
        capsa_cmd_set_authfile (value);
    } else if (strcmp (n, "docker-username") == 0) {
        capsa_cmd_set_docker_user (value, NULL);
    } else if (strcmp (n, "docker-password") == 0) {
        capsa_cmd_set_docker_user (NULL, value);
    } else if (strcmp (n, "disable-cache") == 0) {
        a->disable_cache = true;
    } else if (strcmp (n, "tmpdir") == 0) {
        a->tmpdir = value;
    } else if (strcmp (n, "pid-file") == 0) {
        a->pid_file = value;
    } else if (strcmp (n, "no-pid") == 0) {
        a->no_pid = true;
    } else if (strcmp (n, "compat") == 0) {
        a->compat = true;
    } else if (strcmp (n, "containall") == 0) {
        a->containall = true;
    } else if (strcmp (n, "nv") == 0) {
        a->gpu.nv = true;
    } else if (strcmp (n, "nvccli") == 0) {
        a->gpu.nvccli = true;
    } else if (strcmp (n, "rocm") == 0) {
        a->gpu.rocm = true;
    } else if (strcmp (n, "compat32") == 0) {
        a->gpu.compat32 = true;
    } else if (strcmp (n, "no-nv") == 0) {
        a->gpu.no_nv = true;
    } else if (strcmp (n, "no-rocm") == 0) {
        a->gpu.no_rocm = true;
    }
}

static void
take_env (struct action *a)
{
    struct strv used = { 0 }; /* options already set from a variable */
    for (size_t i = 0; i < ARRAY_SIZE (envdefs); i++) {
        const struct envdef *e = &envdefs[i];
        const struct optdef *d = find_long (e->opt, strlen (e->opt));
        bool append = strcmp (e->opt, "bind") == 0 || strcmp (e->opt, "mount") == 0;
        const char *name;
        const char *v = capsa_optenv_which (e->key, &name);
        if (v == NULL || d == NULL)
            continue;
        if (!append) {
            bool seen = false;
            for (size_t k = 0; k < used.n; k++)
                seen = seen || strcmp (used.v[k], e->opt) == 0;
            if (seen || on_cmdline (a, e->opt) || (strcmp (e->opt, "no-https") == 0 && on_cmdline (a, "nohttps")))
                continue;
            strv_push (&used, e->opt);
        }
        if (!d->value) {
            bool b;
            if (capsa_parse_bool (v, &b) < 0)
                capsa_die ("%s='%s' is not a boolean (use 1, true, yes or 0, false, no)", name, v);
            if (b)
                take (a, d, NULL, name);
            continue;
        }
        /* Lists as Apptainer reads them: --overlay and --security are
         * lists of values, one option each here. */
        if (strcmp (e->opt, "overlay") == 0 || strcmp (e->opt, "security") == 0) {
            cleanup_free char *copy = xstrdup (v);
            char *save = NULL;
            for (char *item = strtok_r (copy, ",", &save); item; item = strtok_r (NULL, ",", &save))
                if (*trim (item))
                    take (a, d, trim (item), name);
            continue;
        }
        take (a, d, v, name);
    }
    strv_free (&used);
}

/* The capabilities the container gets, for the capability conditions of
 * seccomp profiles (src/policy/seccomp_compile.h).  Root: all of them but
 * those dropped (root's default, 'root default capabilities = full'; with
 * less, the kernel still refuses what a missing capability guards).  A
 * user: at most the --add-caps the starter will grant, which it decides
 * later, so those are unknown and the rest absent; under --fakeroot every
 * capability is unknown.  Unknown only ever makes the filter stricter. */
static struct capsa_seccomp_target
seccomp_target (const struct action *a)
{
    struct capsa_seccomp_target t = { 0 };
    capsa_capset_t drop = 0, add = 0;
    struct strv unknown = { 0 };
    for (size_t i = 0; i < a->drop_caps.n; i++)
        drop |= capsa_caps_parse (a->drop_caps.v[i], &unknown);
    for (size_t i = 0; i < a->add_caps.n; i++)
        add |= capsa_caps_parse (a->add_caps.v[i], &unknown);
    strv_free (&unknown);
    if (a->no_privs)
        return t;
    if (getuid () == 0)
        t.caps_have = capsa_cap_all () & ~drop;
    else if (a->fakeroot)
        t.caps_maybe = capsa_cap_all () & ~drop;
    else
        t.caps_maybe = add & ~drop;
    return t;
}

/* --security seccomp:PATH becomes --seccomp-fd=N (a sealed memfd holding
 * the compiled filter, inherited by the starter); other --security values
 * pass through for the starter to check. */
static void
add_security (struct action *a, const char *value, const struct capsa_seccomp_target *t)
{
    capsa_error_t err = NULL;
    if (strncmp (value, "seccomp:", 8) != 0) {
        strv_push_take (&a->pass, xasprintf ("--security=%s", value));
        return;
    }
    if (value[8] == '\0')
        capsa_die ("invalid --security '%s' (expected seccomp:PATH)", value);
    int fd = capsa_seccomp_compile_file (value + 8, t, &err);
    if (fd < 0)
        capsa_error_fatal (&err);
    if (fcntl (fd, F_SETFD, 0) < 0)
        capsa_die ("cannot pass the seccomp filter: %s", strerror (errno));
    strv_push_take (&a->pass, xasprintf ("--seccomp-fd=%d", fd));
}

/* Is IMAGE a SIF whose primary partition is encrypted (fs type 5, LUKS2,
 * or 6, gocryptfs)?  If so, *sif (open) and *part describe it; otherwise
 * nothing stays open. */
static bool
encrypted_sif (const char *image, struct sif_image **sif, const struct sif_descriptor **part)
{
    capsa_error_t err = NULL;
    struct sif_partition p;
    struct stat st;

    *sif = NULL;
    if (stat (image, &st) == 0 && S_ISREG (st.st_mode) && sif_open (image, false, sif, &err) == 0
        && sif_find_primary_partition (*sif, part, &err) == 0 && sif_get_partition (*part, &p, &err) == 0
        && (p.fstype == SIF_FS_ENCRYPTED_SQUASHFS || p.fstype == SIF_FS_GOCRYPTFS_SQUASHFS))
        return true;
    /* Not an encrypted SIF (or not a SIF): the starter says what is wrong
     * with it, if anything. */
    capsa_error_free (&err);
    if (*sif)
        sif_close (*sif);
    *sif = NULL;
    return false;
}

#ifdef CAPSA_LIGHT
/* The light front end has no cryptography.  A user's key is handed on
 * unopened, as a secret record (src/crypt/keyrecord.c, no OpenSSL): the
 * image server opens the image with it, once, or finds that it already did
 * (runtime/imageserver.h); a wrong key fails there, before the command
 * runs.  Root's runs (the kernel's squashfs over capsa-cryptfuse) go to the
 * full front end, which opens the image first. */
static void
prepare_key (const char *image, bool passphrase, const char *pem_path, struct strv *args)
{
    capsa_error_t err = NULL;
    struct sif_image *sif;
    const struct sif_descriptor *part;
    int pfd[2];

    if (getuid () == 0) {
        if (passphrase || pem_path != NULL || capsa_keyspec_in_environment () || encrypted_sif (image, &sif, &part))
            capsa_delegate_to_tools ();
        return;
    }
    if (!encrypted_sif (image, &sif, &part)) {
        if (passphrase || pem_path != NULL || capsa_keyspec_in_environment ())
            warnf ("%s is not encrypted; the key given is not used", image);
        capsa_keyspec_scrub_environment ();
        return;
    }
    struct capsa_keyspec key = { 0 };
    if (capsa_keyspec_get (passphrase, pem_path, CAPSA_KEY_DECRYPT, &key, &err) < 0)
        capsa_error_fatal (&err);
    if (pipe2 (pfd, O_CLOEXEC) < 0)
        capsa_die ("pipe: %s", strerror (errno));
    if (capsa_secret_record_write (sif, part, &key, pfd[1], &err) < 0)
        capsa_error_fatal (&err);
    capsa_keyspec_clear (&key);
    close (pfd[1]);
    sif_close (sif);
    if (fcntl (pfd[0], F_SETFD, 0) < 0)
        capsa_die ("cannot pass the key: %s", strerror (errno));
    strv_push_take (args, xasprintf ("--key-fd=%d", pfd[0]));
}
#else
/* An encrypted SIF: get the key (flags, terminal, standard input or
 * environment), open the image here, unprivileged, so that a wrong or
 * missing key fails before anything is mounted and the KDF runs once, and
 * hand the data key to the starter through a pipe (never an argument or a
 * variable) as a key record (format + key, src/crypt/image.c).  The
 * starter does not read it: it passes the descriptor to the user's
 * capsa-cryptfuse. */
static void
prepare_key (const char *image, bool passphrase, const char *pem_path, struct strv *args)
{
    capsa_error_t err = NULL;
    struct sif_image *sif;
    const struct sif_descriptor *part;

    if (!encrypted_sif (image, &sif, &part)) {
        if (passphrase || pem_path != NULL || capsa_keyspec_in_environment ())
            warnf ("%s is not encrypted; the key given is not used", image);
        capsa_keyspec_scrub_environment ();
        return;
    }
    struct capsa_keyspec key = { 0 };
    struct capsa_crypt_image *img = NULL;
    const struct capsa_kdf_cost *kdf;
    int pfd[2];
    if (capsa_keyspec_get (passphrase, pem_path, CAPSA_KEY_DECRYPT, &key, &err) < 0
        || capsa_sif_crypt_open (sif, part, &key, &img, &err) < 0)
        capsa_error_fatal (&err);
    capsa_keyspec_clear (&key);
    /* The KDF is the user's price for the key, not capsa's start-up: say
     * what it cost, apart. */
    if ((kdf = capsa_crypt_kdf_cost (img)) != NULL) {
        if (kdf->memory_kb > 0)
            verbosef ("%s image unlocked: key derivation %s, %" PRIu64 " MiB, %" PRIu32 " iterations, %" PRIu32
                      " lanes, took %.3f s", capsa_crypt_format_name (capsa_crypt_format (img)), kdf->type,
                      kdf->memory_kb / 1024, kdf->iterations, kdf->parallel, kdf->seconds);
        else
            verbosef ("%s image unlocked: key derivation %s, %" PRIu32 " iterations, took %.3f s",
                      capsa_crypt_format_name (capsa_crypt_format (img)), kdf->type, kdf->iterations, kdf->seconds);
    }
    if (capsa_crypt_legacy_numbering (img))
        warnf ("%s was encrypted by capsa 0.1.0, whose sector numbering the kernel's dm-crypt does not read "
               "(Apptainer and SingularityCE cannot open it); capsa still runs it. Encrypt the unencrypted image "
               "again with 'capsa encrypt' to share it", image);
    if (pipe2 (pfd, O_CLOEXEC) < 0)
        capsa_die ("pipe: %s", strerror (errno));
    if (capsa_crypt_write_record (img, pfd[1], &err) < 0)
        capsa_error_fatal (&err);
    capsa_crypt_close (img);
    close (pfd[1]);
    sif_close (sif);
    if (fcntl (pfd[0], F_SETFD, 0) < 0)
        capsa_die ("cannot pass the key: %s", strerror (errno));
    strv_push_take (args, xasprintf ("--key-fd=%d", pfd[0]));
}
#endif

/* The script `capsa test` runs (as Apptainer's action script does):
 * the image's /.singularity.d/test with the arguments, else a note. */
static const char test_script[] = "if test -x /.singularity.d/test; then exec /.singularity.d/test \"$@\"; fi\n"
                                  "echo 'INFO:    No test script found in container, exiting' >&2\n"
                                  "exit 0\n";

/* Parse the action's own options (up to IMAGE).  Returns the index of
 * IMAGE (or argc). */
static int
parse_cmdline (struct action *a, int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
        char *arg = argv[i];
        const struct optdef *d = NULL;
        const char *value = NULL;
        if (strcmp (arg, "--") == 0)
            return i + 1;
        if (arg[1] == '-') {
            const char *eq = strchr (arg + 2, '=');
            size_t len = eq ? (size_t) (eq - arg - 2) : strlen (arg + 2);
            d = find_long (arg + 2, len);
            if (d == NULL) {
                /* Not Apptainer's: the starter's to know or refuse. */
                strv_push (&a->pass, arg);
                continue;
            }
            if (eq && !d->value)
                capsa_die ("option '--%s' takes no value", d->name);
            value = eq ? eq + 1 : NULL;
        } else {
            d = find_short (arg[1]);
            if (d == NULL || (!d->value && arg[2] != '\0')) {
                /* Unknown, or bundled short options ("-ce"): the
                 * starter's to judge. */
                strv_push (&a->pass, arg);
                continue;
            }
            if (d->value && arg[2] != '\0')
                value = arg + 2;
        }
        if (d->value && value == NULL) {
            if (i + 1 >= argc)
                capsa_die ("option '%s' needs a value", arg);
            value = argv[++i];
        }
        strv_push (&a->cmdline_opts, d->name);
        if (strcmp (d->name, "nohttps") == 0)
            strv_push (&a->cmdline_opts, "no-https");
        take (a, d, value, arg);
    }
    return i;
}

/* --compat, --containall, --no-pid: written out as the options the starter
 * knows.  --compat is --containall --writable-tmpfs --no-init --no-umask
 * --no-eval (Apptainer's actionPreRun); --containall is --contain
 * --cleanenv --pid --ipc, without --pid under --no-pid. */
static void
expand (struct action *a)
{
    if (a->compat) {
        a->containall = true;
        strv_push (&a->pass, "--writable-tmpfs");
        strv_push (&a->pass, "--no-init");
        strv_push (&a->pass, "--no-umask");
        strv_push (&a->pass, "--no-eval");
    }
    if (a->containall) {
        strv_push (&a->pass, "--contain");
        strv_push (&a->pass, "--cleanenv");
        strv_push (&a->pass, "--ipc");
        if (!a->no_pid)
            strv_push (&a->pass, "--pid");
    }
    if (a->no_pid) {
        /* Drop any --pid (from the command line or a variable). */
        size_t k = 0;
        for (size_t i = 0; i < a->pass.n; i++) {
            if (strcmp (a->pass.v[i], "--pid") == 0 || strcmp (a->pass.v[i], "-p") == 0) {
                free (a->pass.v[i]);
                continue;
            }
            a->pass.v[k++] = a->pass.v[i];
        }
        a->pass.n = k;
        a->pass.v[k] = NULL;
    }
}

int
cmd_action (int argc, char **argv)
{
    return capsa_cmd_action_main (argc, argv, false);
}

/* exec, run, shell, test; with INSTANCE, `instance start|run` (argv[0]
 * "start" or "run"): IMAGE is followed by the instance's NAME, and the
 * starter runs under capsa_cmd_instance_launch (src/cmd/instance.c). */
int
capsa_cmd_action_main (int argc, char **argv, bool instance)
{
    struct action a = { .cmd = argv[0] };
    struct strv args = { 0 };
    const char *starter = CAPSA_LIBEXECDIR "/starter";
    const char *override = getenv ("CAPSA_STARTER");
    bool test = strcmp (argv[0], "test") == 0;

    /* For development only: a starter outside the installation is never
     * setuid, so this cannot be used to gain anything. */
    if (override && *override && getuid () != 0)
        starter = override;

    int img = parse_cmdline (&a, argc, argv);
    take_env (&a);
    expand (&a);
    const char *name = NULL;
    if (instance) {
        if (img + 1 >= argc)
            capsa_die ("usage: capsa instance %s [options] IMAGE NAME [ARGS...]", argv[0]);
        name = argv[img + 1];
        if (!capsa_inst_name_valid (name))
            capsa_die ("'%s' is not a valid instance name (letters, digits, '.', '_' and '-')", name);
        if (strncmp (argv[img], "instance://", 11) == 0)
            capsa_die ("an instance cannot be started from another one (%s)", argv[img]);
    } else if (a.pid_file != NULL && on_cmdline (&a, "pid-file")) {
        capsa_die ("--pid-file is an option of 'instance start' and 'instance run'");
    }
    /* instance://NAME: the instance's image is mounted already. */
    const bool join = !instance && img < argc && strncmp (argv[img], "instance://", 11) == 0;

    strv_push (&args, "capsa-starter");
    switch (capsa_log_get_level ()) {
    case CAPSA_LOG_FATAL:
    case CAPSA_LOG_ERROR:
        strv_push (&args, "-q");
        break;
    case CAPSA_LOG_VERBOSE:
        strv_push (&args, "-v");
        break;
    case CAPSA_LOG_DEBUG:
        strv_push (&args, "-d");
        break;
    default:
        /* --quiet shows warnings: the starter's default (it has no INFO). */
        break;
    }
    if (capsa_config_file != NULL)
        strv_push_take (&args, xasprintf ("--config=%s", capsa_config_file));
    strv_push (&args, test ? "exec" : argv[0]);

    /* The image first: a URI becomes the cached SIF (pulled when needed),
     * as the user, before anything else. */
    if (img < argc && !join) {
        char *cached = capsa_cmd_resolve_uri (argv[img], a.disable_cache, a.tmpdir);
        if (cached != NULL)
            argv[img] = cached;
    }
    /* GPUs: the host's files for --nv/--rocm, found as the user. */
    for (size_t i = 0; i < a.pass.n; i++)
        a.gpu.contain |= strcmp (a.pass.v[i], "--contain") == 0;
    capsa_cmd_gpu (&a.gpu, &a.pass);
    struct capsa_seccomp_target t = seccomp_target (&a);
    for (size_t i = 0; i < a.security.n; i++)
        add_security (&a, a.security.v[i], &t);
    for (size_t i = 0; i < a.pass.n; i++)
        strv_push (&args, a.pass.v[i]);
    if (instance) {
        strv_push_take (&args, xasprintf ("--instance=%s", name));
        if (a.pid_file != NULL)
            strv_push_take (&args, xasprintf ("--pid-file=%s", a.pid_file));
    }
    if (join && (a.passphrase || a.pem_path))
        verbosef ("%s: the key is not needed, the instance's image is open already", argv[img]);
    else if (img < argc)
        prepare_key (argv[img], a.passphrase, a.pem_path, &args);
    else if (a.passphrase || a.pem_path)
        capsa_die ("%s: missing IMAGE", a.cmd);
    if (img < argc && strcmp (argv[img - 1], "--") == 0)
        strv_push (&args, "--");
    for (int i = img; i < argc; i++) {
        if (instance && i == img + 1)
            continue; /* NAME went as --instance */
        strv_push (&args, argv[i]);
        if (test && i == img) {
            strv_push (&args, "/bin/sh");
            strv_push (&args, "-c");
            strv_push (&args, test_script);
            strv_push (&args, "/.singularity.d/test");
        }
    }
    if (instance)
        return capsa_cmd_instance_launch (starter, &args, name);
    execv (starter, args.v);
    capsa_die ("cannot run the starter %s: %s", starter, strerror (errno));
}
