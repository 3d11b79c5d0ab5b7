/* capsa push IMAGE.sif oras://HOST/REPO:TAG: upload a SIF as an ORAS
 * artifact (src/oci/oras.c), as Apptainer does. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/commands.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "oci/oci.h"

int
cmd_push (int argc, char **argv)
{
    static const struct option opts[] = {
        { "no-https", no_argument, NULL, 'N' },       { "nohttps", no_argument, NULL, 'N' },
        { "authfile", required_argument, NULL, 'a' }, { NULL, 0, NULL, 0 },
    };
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'N':
            capsa_cmd_set_no_https ();
            break;
        case 'a': {
            char *fake[] = { (char *) "--authfile", optarg };
            int i = 0;
            capsa_cmd_registry_flag (2, fake, &i);
            break;
        }
        default:
            capsa_die ("push: unknown option '%s' (see 'capsa help push')", argv[optind - 1]);
        }
    }
    if (optind != argc - 2)
        capsa_die ("usage: capsa push [--no-https] [--authfile FILE] IMAGE.sif oras://HOST/REPO:TAG");
    const char *image = argv[optind], *uri = argv[optind + 1];
    if (!capsa_oras_is_uri (uri)) {
        if (strncmp (uri, "library://", 10) == 0 || strncmp (uri, "docker://", 9) == 0)
            capsa_die ("push: only oras:// destinations are supported, not '%s'", uri);
        capsa_die ("push: '%s' is not an oras:// URI (oras://HOST/REPO:TAG)", uri);
    }
    struct capsa_oci_opts o;
    capsa_error_t err = NULL;
    cleanup_free char *digest = NULL;
    capsa_cmd_oci_opts (&o);
    if (capsa_oras_push (image, uri, &o, &digest, &err) < 0) {
        capsa_cmd_progress_done ();
        capsa_error_fatal (&err);
    }
    capsa_cmd_progress_done ();
    infof ("Upload complete: %s (manifest %s)", uri, digest);
    return 0;
}
