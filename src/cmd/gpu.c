/* --nv, --nvccli, --rocm, --compat32: the front end's part (runtime/gpu.h).
 *
 * Runs as the user, with no privilege: reads the administrator's list
 * (PREFIX/etc/capsa/nvliblist.conf, rocmliblist.conf), finds what it names
 * on this host as Apptainer does (libraries through the dynamic linker's
 * cache, `ldconfig -p`, keeping those built for this machine, or for its
 * 32-bit sibling with --compat32; programs in PATH; other files where the
 * list says), or, with --nvccli, asks `nvidia-container-cli list`, and
 * passes each file to the starter as --gpu-file=KIND:PATH.  The starter
 * checks every one again against the same list and opens it as the user;
 * nothing found here is trusted there. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "config.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "runtime/conf.h"
#include "runtime/gpu.h"

#define EM_386_ 3
#define EM_X86_64_ 62
#define ELFCLASS32_ 1

/* The ELF class and machine of PATH (a regular file the user can read). */
static int
elf_kind (const char *path, unsigned *cls, unsigned *machine)
{
    unsigned char h[20];
    struct stat st;
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || read (fd, h, sizeof (h)) != (ssize_t) sizeof (h))
        return -1;
    if (memcmp (h, "\177ELF", 4) != 0 || (h[5] != 1 && h[5] != 2))
        return -1;
    *cls = h[4];
    *machine = h[5] == 1 ? (unsigned) (h[18] | h[19] << 8) : (unsigned) (h[18] << 8 | h[19]);
    return 0;
}

/* Run ARGV[0] (an absolute path) with ARGV, its standard output into
 * *OUT (at most 16 MiB); standard error to /dev/null with QUIET.  Returns
 * the exit status, -1 if it could not run. */
static int
capture (char *const argv[], bool quiet, char **out)
{
    int pfd[2];
    *out = NULL;
    if (pipe2 (pfd, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork ();
    if (pid < 0) {
        close (pfd[0]);
        close (pfd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2 (pfd[1], 1);
        if (quiet) {
            int n = open ("/dev/null", O_WRONLY | O_CLOEXEC);
            if (n >= 0)
                dup2 (n, 2);
        }
        execv (argv[0], argv);
        _exit (127);
    }
    close (pfd[1]);
    capsa_error_t err = NULL;
    if (read_fd_all (pfd[0], 16 << 20, out, NULL, &err) < 0) {
        capsa_error_free (&err);
        *out = NULL;
    }
    close (pfd[0]);
    int status;
    while (waitpid (pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (*out == NULL)
        return -1;
    return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

/* NAME in PATH (the caller's, as Apptainer's lookup), else in the system
 * directories: an executable regular file, or NULL. */
static char *
find_program (const char *name)
{
    const char *env = getenv ("PATH");
    cleanup_free char *path = xasprintf ("%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                         env && *env ? env : "");
    char *save = NULL;
    for (char *dir = strtok_r (path, ":", &save); dir; dir = strtok_r (NULL, ":", &save)) {
        struct stat st;
        if (dir[0] != '/')
            continue; /* a relative PATH entry means nothing to the starter */
        char *cand = xasprintf ("%s/%s", dir, name);
        if (stat (cand, &st) == 0 && S_ISREG (st.st_mode) && access (cand, X_OK) == 0)
            return cand;
        free (cand);
    }
    return NULL;
}

struct ldcache {
    struct strv names, paths;
    bool loaded;
};

static void
ldcache_load (struct ldcache *lc)
{
    static const char *const ldconfigs[] = { "/sbin/ldconfig.real", "/sbin/ldconfig", "/usr/sbin/ldconfig",
                                             "/usr/bin/ldconfig" };
    if (lc->loaded)
        return;
    lc->loaded = true;
    for (size_t i = 0; i < ARRAY_SIZE (ldconfigs); i++) {
        if (access (ldconfigs[i], X_OK) != 0)
            continue;
        char *argv[] = { (char *) ldconfigs[i], (char *) "-p", NULL };
        cleanup_free char *out = NULL;
        int rc = capture (argv, true, &out);
        if (rc != 0) {
            warnf ("GPU libraries: '%s -p' failed (%s %d): none are bound", ldconfigs[i], rc < 0 ? "error" : "exit status",
                   rc);
            return;
        }
        capsa_gpu_ldcache_parse (out, &lc->names, &lc->paths);
        debugf ("GPU libraries: %zu entries in the linker cache (%s -p)", lc->names.n, ldconfigs[i]);
        return;
    }
    warnf ("GPU libraries: ldconfig not found: none are bound");
}

static void
ldcache_free (struct ldcache *lc)
{
    strv_free (&lc->names);
    strv_free (&lc->paths);
}

static const char *
base_name (const char *path)
{
    const char *slash = strrchr (path, '/');
    return slash ? slash + 1 : path;
}

/* What is being collected for the starter. */
struct found {
    struct strv items;  /* KIND:PATH */
    struct strv libdst; /* "lib:NAME" / "lib32:NAME": names taken */
    size_t nlibs, nbins, nfiles, ndevs;
};

static bool
contains (const struct strv *s, const char *v)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp (s->v[i], v) == 0)
            return true;
    return false;
}

/* A library at PATH, under its base name in the 64-bit or the 32-bit
 * directory: the first one found for a name wins (the cache's order). */
static void
add_lib (struct found *f, const struct capsa_gpu_list *list, const char *path, bool lib32)
{
    const char *kind = lib32 ? "lib32" : "lib";
    cleanup_free char *key = xasprintf ("%s:%s", kind, base_name (path));
    cleanup_free char *item = xasprintf ("%s:%s", kind, path);
    if (contains (&f->libdst, key) || !capsa_gpu_list_lib (list, path) || capsa_gpu_file_valid (item) < 0)
        return;
    debugf ("GPU library %s", path);
    strv_push (&f->libdst, key);
    strv_push (&f->items, item);
    f->nlibs++;
}

/* The libraries of LIST built for MACHINE and CLS, as Apptainer resolves
 * them: an absolute entry as it is, a name through every cache entry whose
 * name starts with it. */
static void
resolve_libs (struct found *f, const struct capsa_gpu_list *list, struct ldcache *lc, unsigned cls, unsigned machine,
              bool lib32)
{
    for (size_t i = 0; i < list->libs.n; i++) {
        const char *e = list->libs.v[i];
        unsigned c, m;
        if (e[0] == '/') {
            if (elf_kind (e, &c, &m) == 0 && c == cls && m == machine)
                add_lib (f, list, e, lib32);
            continue;
        }
        ldcache_load (lc);
        for (size_t k = 0; k < lc->names.n; k++) {
            if (strncmp (lc->names.v[k], e, strlen (e)) != 0)
                continue;
            if (elf_kind (lc->paths.v[k], &c, &m) == 0 && c == cls && m == machine)
                add_lib (f, list, lc->paths.v[k], lib32);
            else
                debugf ("GPU library %s: not for this machine, or unreadable", lc->paths.v[k]);
        }
    }
}

static void
resolve_bins_files (struct found *f, const struct capsa_gpu_list *list)
{
    for (size_t i = 0; i < list->bins.n; i++) {
        cleanup_free char *p = find_program (list->bins.v[i]);
        cleanup_free char *item = p ? xasprintf ("bin:%s", p) : NULL;
        if (p == NULL || access (p, R_OK) != 0 || capsa_gpu_file_valid (item) < 0 || contains (&f->items, item))
            continue;
        strv_push (&f->items, item);
        f->nbins++;
    }
    for (size_t i = 0; i < list->files.n; i++) {
        struct stat st;
        cleanup_free char *item = xasprintf ("file:%s", list->files.v[i]);
        if (stat (list->files.v[i], &st) != 0 || !S_ISREG (st.st_mode) || access (list->files.v[i], R_OK) != 0
            || capsa_gpu_file_valid (item) < 0 || contains (&f->items, item))
            continue;
        strv_push (&f->items, item);
        f->nfiles++;
    }
}

/* --nvccli: nvidia-container-cli lists the driver's files and the
 * devices to use; it runs here, as the user (Apptainer runs its
 * `configure` as root in a setuid install; capsa runs no host program
 * with privilege, and binds what `list` names as --nv would). */
static void
resolve_nvccli (struct found *f, const struct capsa_gpu_list *list, struct ldcache *lc, bool compat32, bool contain,
                unsigned machine)
{
    cleanup_free char *cli = find_program ("nvidia-container-cli");
    if (cli == NULL)
        capsa_die ("--nvccli: nvidia-container-cli is not installed (not found in PATH or the system directories); "
                   "install NVIDIA's libnvidia-container-tools, or use --nv alone");
    const char *visible = getenv ("NVIDIA_VISIBLE_DEVICES");
    cleanup_free char *device = NULL;
    if (visible && *visible)
        device = xasprintf ("--device=%s", visible);
    else if (contain)
        warnf ("--nvccli with --contain: no GPU is bound unless NVIDIA_VISIBLE_DEVICES names some (as in Apptainer)");
    else
        device = xstrdup ("--device=all");
    char *argv[8];
    int n = 0;
    argv[n++] = cli;
    argv[n++] = (char *) "list";
    argv[n++] = (char *) "--libraries";
    argv[n++] = (char *) "--binaries";
    if (compat32)
        argv[n++] = (char *) "--compat32";
    if (device)
        argv[n++] = device;
    argv[n] = NULL;
    verbosef ("--nvccli: running %s list as %u", cli, (unsigned) getuid ());
    cleanup_free char *out = NULL;
    int rc = capture (argv, false, &out);
    if (rc != 0)
        capsa_die ("--nvccli: '%s list' failed (%s %d)", cli, rc < 0 ? "error" : "exit status", rc);

    cleanup_free char *copy = xstrdup (out);
    char *save = NULL;
    for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        char *p = trim (line);
        unsigned c, m;
        if (p[0] != '/')
            continue;
        if (strncmp (p, "/dev/", 5) == 0) {
            cleanup_free char *item = xasprintf ("dev:%s", p);
            if (capsa_gpu_file_valid (item) == 0 && !contains (&f->items, item)) {
                strv_push (&f->items, item);
                f->ndevs++;
            }
            continue;
        }
        if (strstr (base_name (p), ".so") != NULL) {
            /* The driver's file (libcuda.so.535.104.05): bound under the
             * names the linker cache gives it (libcuda.so.1), which is
             * what programs load. */
            if (elf_kind (p, &c, &m) < 0)
                continue;
            bool lib32 = c == ELFCLASS32_;
            if (lib32 && !compat32)
                continue;
            cleanup_free char *real = realpath (p, NULL);
            bool named = false;
            ldcache_load (lc);
            for (size_t k = 0; real && k < lc->paths.n; k++) {
                cleanup_free char *r2 = realpath (lc->paths.v[k], NULL);
                if (r2 && strcmp (r2, real) == 0 && capsa_gpu_list_lib (list, lc->paths.v[k])) {
                    add_lib (f, list, lc->paths.v[k], lib32);
                    named = true;
                }
            }
            if (!named && capsa_gpu_list_lib (list, p))
                add_lib (f, list, p, lib32);
            else if (!named)
                verbosef ("--nvccli: %s is not in nvliblist.conf: not bound", p);
            continue;
        }
        if (capsa_gpu_list_bin (list, base_name (p))) {
            cleanup_free char *item = xasprintf ("bin:%s", p);
            if (capsa_gpu_file_valid (item) == 0 && !contains (&f->items, item)) {
                strv_push (&f->items, item);
                f->nbins++;
            }
        } else {
            debugf ("--nvccli: %s left out", p);
        }
    }
    /* An empty selection is still one: no GPU device. */
    if (f->ndevs == 0)
        strv_push (&f->items, "dev:none");
}

static void
resolve_list (struct found *f, const char *name, const char *flag, struct ldcache *lc, bool compat32, bool nvccli,
              bool contain)
{
    cleanup_free char *path = xasprintf ("%s/%s", CAPSA_SYSCONFDIR, name);
    struct capsa_gpu_list list = { 0 };
    capsa_error_t err = NULL;
    unsigned cls, machine;
    if (elf_kind ("/proc/self/exe", &cls, &machine) < 0) {
        warnf ("%s: cannot tell this machine's ELF type from /proc/self/exe: no GPU library is bound", flag);
        return;
    }
    if (capsa_gpu_list_load (path, false, &list, &err) < 0) {
        warnf ("%s: %s: no GPU library or program is bound", flag, err->msg);
        capsa_error_free (&err);
        if (nvccli)
            resolve_nvccli (f, &list, lc, compat32, contain, machine);
        return;
    }
    if (nvccli) {
        resolve_nvccli (f, &list, lc, compat32, contain, machine);
    } else {
        resolve_libs (f, &list, lc, cls, machine, false);
        if (compat32 && machine == EM_X86_64_)
            resolve_libs (f, &list, lc, ELFCLASS32_, EM_386_, true);
        else if (compat32)
            warnf ("--compat32: no 32-bit GPU libraries on this machine's architecture");
        resolve_bins_files (f, &list);
    }
    verbosef ("%s: %zu libraries, %zu programs, %zu other files found on the host", flag, f->nlibs, f->nbins, f->nfiles);
    capsa_gpu_list_free (&list);
}

void
capsa_cmd_gpu (const struct capsa_gpu_request *r, struct strv *pass)
{
    struct capsa_conf conf;
    capsa_error_t err = NULL;
    const char *confpath = capsa_config_file ? capsa_config_file : CAPSA_SYSCONFDIR "/capsa.conf";
    capsa_conf_init (&conf);
    if (capsa_conf_load (&conf, confpath, false, &err) < 0) {
        /* The starter reads it too, and says what is wrong with it. */
        debugf ("GPU settings of %s not read: %s", confpath, err->msg);
        capsa_error_free (&err);
    }
    bool nv = r->nv || r->nvccli || (conf.always_use_nv && !r->no_nv);
    bool nvccli = nv && (r->nvccli || conf.use_nvidia_container_cli);
    bool rocm = r->rocm || (conf.always_use_rocm && !r->no_rocm);
    bool compat32 = r->compat32;
    capsa_conf_free (&conf);

    /* As Apptainer: NVIDIA_DRIVER_CAPABILITIES=...,compat32 asks for the
     * 32-bit libraries too. */
    const char *caps = getenv ("NVIDIA_DRIVER_CAPABILITIES");
    if (!compat32 && nv && caps) {
        cleanup_free char *copy = xstrdup (caps);
        char *save = NULL;
        for (char *w = strtok_r (copy, ",", &save); w; w = strtok_r (NULL, ",", &save))
            compat32 |= strcmp (trim (w), "compat32") == 0;
    }
    if (compat32 && !nv && !rocm) {
        warnf ("ignoring --compat32: it needs --nv or --rocm");
        compat32 = false;
    }
    if (r->nv || r->nvccli)
        strv_push (pass, "--nv");
    if (r->rocm)
        strv_push (pass, "--rocm");
    if (r->no_nv)
        strv_push (pass, "--no-nv");
    if (r->no_rocm)
        strv_push (pass, "--no-rocm");
    if (!nv && !rocm)
        return;

    struct ldcache lc = { 0 };
    struct found f = { 0 };
    if (nv)
        resolve_list (&f, "nvliblist.conf", r->nvccli ? "--nvccli" : "--nv", &lc, compat32, nvccli, r->contain);
    if (rocm) {
        f.nlibs = f.nbins = f.nfiles = 0;
        resolve_list (&f, "rocmliblist.conf", "--rocm", &lc, compat32, false, r->contain);
    }
    for (size_t i = 0; i < f.items.n; i++)
        strv_push_take (pass, xasprintf ("--gpu-file=%s", f.items.v[i]));
    strv_free (&f.items);
    strv_free (&f.libdst);
    ldcache_free (&lc);
}
