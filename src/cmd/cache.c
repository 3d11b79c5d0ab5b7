/* capsa cache list|clean: the per-user cache of pulled images and layers
 * (src/oci/cache.c; $CAPSA_CACHEDIR or $HOME/.capsa/cache). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "lib/log.h"
#include "lib/utils.h"
#include "oci/oci.h"


static const char *
parse_type (const char *t)
{
    if (strcmp (t, "all") == 0)
        return NULL;
    if (strcmp (t, "oras") == 0 || strcmp (t, "sif") == 0 || strcmp (t, "library") == 0)
        return "oras";
    if (strcmp (t, "blob") == 0 || strcmp (t, "blobs") == 0 || strcmp (t, "docker") == 0 || strcmp (t, "oci") == 0)
        return "blob";
    if (strcmp (t, "oci-tmp") == 0)
        return "oci-tmp";
    if (strcmp (t, "net") == 0)
        return "net";
    capsa_die ("cache: unknown type '%s' (oras, blob, oci-tmp, net, all)", t);
}

static int
cache_list (int argc, char **argv, const char *dir)
{
    static const struct option opts[] = {
        { "type", required_argument, NULL, 'T' }, { "verbose", no_argument, NULL, 'v' }, { NULL, 0, NULL, 0 },
    };
    const char *type = NULL;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+T:v", opts, NULL)) != -1) {
        if (c == 'T')
            type = parse_type (optarg);
        else if (c != 'v')
            capsa_die ("cache list: unknown option '%s'", argv[optind - 1]);
    }
    struct capsa_cache_entry *e = NULL;
    size_t n = 0, shown = 0;
    uint64_t total = 0;
    capsa_error_t err = NULL;
    if (capsa_cache_list (dir, &e, &n, &err) < 0)
        capsa_error_fatal (&err);
    printf ("%-7s %-20s %10s  %-16s  %s\n", "TYPE", "DIGEST", "SIZE", "LAST USED", "REFERENCE");
    for (size_t i = 0; i < n; i++) {
        if (type && strcmp (type, e[i].kind) != 0)
            continue;
        char sz[32], when[32];
        time_t t = (time_t) e[i].mtime;
        struct tm tm;
        format_size (e[i].size, sz, sizeof (sz));
        if (localtime_r (&t, &tm) == NULL || strftime (when, sizeof (when), "%Y-%m-%d %H:%M", &tm) == 0)
            strcpy (when, "?");
        printf ("%-7s %-20.19s %10s  %-16s  %s\n", e[i].kind, e[i].digest, sz, when, e[i].ref ? e[i].ref : "-");
        total += e[i].size;
        shown++;
    }
    char tot[32];
    format_size (total, tot, sizeof (tot));
    printf ("%zu file(s), %s in %s\n", shown, tot, dir);
    capsa_cache_entries_free (e, n);
    return 0;
}

static int
cache_clean (int argc, char **argv, const char *dir)
{
    static const struct option opts[] = {
        { "type", required_argument, NULL, 'T' }, { "force", no_argument, NULL, 'f' },
        { "dry-run", no_argument, NULL, 'n' },    { NULL, 0, NULL, 0 },
    };
    const char *type = NULL;
    bool force = false, dry = false;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, "+T:fn", opts, NULL)) != -1) {
        switch (c) {
        case 'T': type = parse_type (optarg); break;
        case 'f': force = true; break;
        case 'n': dry = true; break;
        default: capsa_die ("cache clean: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!force && !dry) {
        if (!isatty (STDIN_FILENO))
            capsa_die ("cache clean: confirm with --force (or look first with --dry-run)");
        fprintf (stderr, "This removes %s from %s.\nDo you want to continue? [y/N] ",
                 type ? (strcmp (type, "oras") == 0      ? "every pulled SIF image"
                         : strcmp (type, "blob") == 0    ? "every cached layer"
                         : strcmp (type, "oci-tmp") == 0 ? "every SIF made from a docker:// image"
                                                         : "every image downloaded by URL")
                      : "every cached image and layer",
                 dir);
        char buf[16];
        if (fgets (buf, sizeof (buf), stdin) == NULL || (buf[0] != 'y' && buf[0] != 'Y'))
            capsa_die ("cache clean: cancelled");
    }
    size_t count = 0;
    uint64_t bytes = 0;
    capsa_error_t err = NULL;
    if (capsa_cache_clean (dir, type, dry, &count, &bytes, &err) < 0)
        capsa_error_fatal (&err);
    char sz[32];
    format_size (bytes, sz, sizeof (sz));
    infof ("%s %zu file(s), %s", dry ? "Would remove" : "Removed", count, sz);
    return 0;
}

int
cmd_cache (int argc, char **argv)
{
    if (argc < 2)
        capsa_die ("usage: capsa cache list|clean [options] (see 'capsa help cache')");
    if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0) {
        capsa_print_help ("cache");
        return 0;
    }
    cleanup_free char *dir = capsa_oci_default_cachedir ();
    if (strcmp (argv[1], "list") == 0)
        return cache_list (argc - 1, argv + 1, dir);
    if (strcmp (argv[1], "clean") == 0)
        return cache_clean (argc - 1, argv + 1, dir);
    capsa_die ("cache: unknown subcommand '%s' (list, clean)", argv[1]);
}
