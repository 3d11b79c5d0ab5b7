/* The light front end (`capsa`, built with -DCAPSA_LIGHT).
 *
 * Starting a container is the common case and must be fast, so `capsa`
 * links only what exec/run/shell/inspect/sif/capability need.  Commands
 * and cases that need the heavy libraries (libcurl, libarchive,
 * libcryptsetup, OpenSSL: build, encrypt, push, pull, cache, registry,
 * config and overlay (rare, and run mkfs.ext3 or edit system files),
 * images named by URI, encrypted images) are handed, with the original command
 * line, to PREFIX/libexec/capsa/tools, the same front end built with
 * everything.  Neither is privileged. */
#ifdef CAPSA_LIGHT
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "config.h"
#include "lib/log.h"

noreturn void
capsa_delegate_to_tools (void)
{
    const char *tools = CAPSA_LIBEXECDIR "/tools";
    execv (tools, capsa_main_argv);
    capsa_die ("cannot run %s: %s", tools, strerror (errno));
}

static int
delegate (int argc, char **argv)
{
    (void) argc;
    (void) argv;
    capsa_delegate_to_tools ();
}

int cmd_build (int argc, char **argv) { return delegate (argc, argv); }
int cmd_encrypt (int argc, char **argv) { return delegate (argc, argv); }
int cmd_push (int argc, char **argv) { return delegate (argc, argv); }
int cmd_pull (int argc, char **argv) { return delegate (argc, argv); }
int cmd_cache (int argc, char **argv) { return delegate (argc, argv); }
int cmd_registry (int argc, char **argv) { return delegate (argc, argv); }
int cmd_config (int argc, char **argv) { return delegate (argc, argv); }
int cmd_overlay (int argc, char **argv) { return delegate (argc, argv); }

bool
capsa_cmd_registry_flag (int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    (void) argc;
    if (strcmp (a, "--no-https") == 0 || strcmp (a, "--nohttps") == 0 || strncmp (a, "--authfile", 10) == 0)
        capsa_delegate_to_tools ();
    return false;
}

/* Registry settings only matter for images named by URI, which the full
 * front end resolves (capsa_cmd_resolve_uri below hands them over with the
 * whole command line): nothing to keep here. */
void
capsa_cmd_set_no_https (void)
{
}

void
capsa_cmd_set_authfile (const char *path)
{
    (void) path;
}

void
capsa_cmd_set_docker_user (const char *user, const char *password)
{
    (void) user;
    (void) password;
}

char *
capsa_cmd_resolve_oras (const char *image)
{
    if (strncmp (image, "oras://", 7) == 0)
        capsa_delegate_to_tools ();
    return NULL;
}

char *
capsa_cmd_resolve_uri (const char *image, bool disable_cache, const char *tmpdir)
{
    (void) disable_cache;
    (void) tmpdir;
    /* Any TRANSPORT:... (oras://, docker://, http(s)://, library://, ...):
     * the full front end resolves or refuses it. */
    size_t n = strcspn (image, ":/");
    if (n > 0 && image[n] == ':' && (strncmp (image + n, "://", 3) == 0 || strncmp (image, "docker-", 7) == 0
                                     || strncmp (image, "oci", 3) == 0))
        capsa_delegate_to_tools ();
    return NULL;
}

#else
/* ISO C forbids an empty translation unit. */
typedef int capsa_light_unused;
#endif
