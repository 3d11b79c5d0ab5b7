/* The light front end (`capsa`, built with -DCAPSA_LIGHT).
 *
 * Starting a container is the common case and must be fast, so `capsa`
 * links only what exec/run/shell/inspect/sif/capability need.  Commands
 * and cases that need the heavy libraries (libcurl, libarchive,
 * libcryptsetup, OpenSSL: build, encrypt, push, pull, cache, registry,
 * config and overlay (rare, and run mkfs.ext3 or edit system files),
 * oras:// images, encrypted images) are handed, with the original command
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

void
capsa_cmd_set_no_https (void)
{
    capsa_delegate_to_tools ();
}

char *
capsa_cmd_resolve_oras (const char *image)
{
    if (strncmp (image, "oras://", 7) == 0)
        capsa_delegate_to_tools ();
    return NULL;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int capsa_light_unused;
#endif
