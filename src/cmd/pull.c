/* capsa pull [OUT.sif] oras://HOST/REPO:TAG: download a SIF pushed as an
 * ORAS artifact, through the per-user cache (src/oci/oras.c). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/commands.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "oci/oci.h"

int
cmd_pull (int argc, char **argv)
{
    static const struct option opts[] = {
        { "force", no_argument, NULL, 'F' },          { "no-https", no_argument, NULL, 'N' },
        { "nohttps", no_argument, NULL, 'N' },        { "authfile", required_argument, NULL, 'a' },
        { "arch", required_argument, NULL, 'A' },     { "disable-cache", no_argument, NULL, 'D' },
        { "dir", required_argument, NULL, 'd' },      { NULL, 0, NULL, 0 },
    };
    bool force = false, no_cache = false;
    const char *arch = NULL, *dir = NULL;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+F", opts, NULL)) != -1) {
        switch (c) {
        case 'F': force = true; break;
        case 'N': capsa_cmd_set_no_https (); break;
        case 'a': {
            char *fake[] = { (char *) "--authfile", optarg };
            int i = 0;
            capsa_cmd_registry_flag (2, fake, &i);
            break;
        }
        case 'A': arch = optarg; break;
        case 'D': no_cache = true; break;
        case 'd': dir = optarg; break;
        default:
            capsa_die ("pull: unknown option '%s' (see 'capsa help pull')", argv[optind - 1]);
        }
    }
    if (optind != argc - 1 && optind != argc - 2)
        capsa_die ("usage: capsa pull [--force] [--no-https] [--authfile FILE] [--dir DIR] [OUT.sif] oras://HOST/REPO:TAG");
    const char *uri = argv[argc - 1];
    if (!capsa_oras_is_uri (uri)) {
        if (strncmp (uri, "docker://", 9) == 0)
            capsa_die ("pull: for docker:// images use 'capsa build OUT.sif %s'", uri);
        capsa_die ("pull: '%s' is not an oras:// URI (oras://HOST/REPO:TAG)", uri);
    }
    cleanup_free char *name = optind == argc - 2 ? xstrdup (argv[optind]) : capsa_oras_default_name (uri);
    if (name == NULL)
        capsa_die ("pull: invalid URI '%s'", uri);
    cleanup_free char *out = dir && name[0] != '/' ? xasprintf ("%s/%s", dir, name) : xstrdup (name);

    struct capsa_oci_opts o;
    capsa_error_t err = NULL;
    capsa_cmd_oci_opts (&o);
    o.arch = arch;
    o.no_cache = no_cache || getenv ("CAPSA_DISABLE_CACHE") != NULL;
    if (capsa_oras_pull (uri, out, force, &o, &err) < 0) {
        capsa_cmd_progress_done ();
        capsa_error_fatal (&err);
    }
    capsa_cmd_progress_done ();
    infof ("Pulled %s to %s", uri, out);
    return 0;
}
