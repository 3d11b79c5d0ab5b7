/* Help texts of every command: `capsa help CMD` and `capsa CMD --help`. */
#include <stdio.h>
#include <string.h>

#include "cmd/commands.h"

static const char overview[] =
    "capsa: run programs inside container images, as yourself.\n"
    "\n"
    "Usage: capsa [-q|-v|-d] COMMAND [options] ...\n"
    "\n"
    "Commands:\n"
    "  exec      run a command inside an image\n"
    "  run       run the image's runscript\n"
    "  shell     start an interactive shell inside an image\n"
    "  inspect   show an image's labels, runscript, definition file, environment\n"
    "  sif       read and write Singularity Image Format files\n"
    "  capability  manage capability grants (add, drop, list, avail); alias: caps\n"
    "  version   print capsa's version\n"
    "  help      show help for a command\n"
    "\n"
    "Global options:\n"
    "  -q, --quiet     only print errors\n"
    "  -v, --verbose   print what capsa does\n"
    "  -d, --debug     print everything\n"
    "\n"
    "Images: a directory, a squashfs file or a SIF file.\n"
    "Run 'capsa help COMMAND' for a command's options.\n";

static const char action_options[] =
    "Options:\n"
    "  -B, --bind SRC[:DST[:ro|rw]]  bind a host path (repeatable, comma-separated)\n"
    "  -H, --home SRC[:DST]          use SRC as the home directory (inside at DST)\n"
    "      --no-home                 do not mount the home directory\n"
    "      --pwd DIR                 start in DIR inside the container\n"
    "  -c, --contain                 private /tmp, /var/tmp and home instead of the host's\n"
    "  -C, --containall              --contain, --cleanenv, --pid and --ipc\n"
    "  -e, --cleanenv                do not pass the host environment\n"
    "      --env KEY=VAL[,KEY=VAL]   set variables inside (after the image's own)\n"
    "      --env-file FILE           set variables from FILE (KEY=VAL lines)\n"
    "  -p, --pid                     new PID namespace\n"
    "  -i, --ipc                     new IPC namespace\n"
    "      --uts                     new UTS namespace\n"
    "      --hostname NAME           host name inside (implies --uts)\n"
    "  -n, --net                     new network namespace\n"
    "      --network none            with --net: loopback only\n"
    "  -u, --userns                  run in a user namespace, without the setuid starter\n"
    "  -s, --shell PATH              shell for 'shell' (default /bin/bash, else /bin/sh)\n"
    "      --add-caps LIST           ask for capabilities (granted ones only; 'all')\n"
    "      --drop-caps LIST          drop capabilities ('all')\n"
    "      --keep-privs              root only: keep all of root's capabilities\n"
    "      --no-privs                drop every capability (wins over --keep-privs)\n"
    "      --allow-setuid            root only: honour setuid bits inside the image\n"
    "      --security KEY:VALUE      seccomp:PROFILE.json, uid:N, gid:N[:N...] (root only\n"
    "                                in setuid mode), selinux:LABEL, apparmor:PROFILE\n"
    "\n"
    "Every option has a CAPSA_ variable (CAPSA_BIND, CAPSA_CONTAIN=1, ...); flags win.\n"
    "The command's exit status is passed on (128+N after signal N); capsa's own\n"
    "errors exit 255, a command that is not found 127, one that cannot run 126.\n";

struct help {
    const char *cmd;
    const char *usage;
    const char *body;
};

static const struct help helps[] = {
    { "exec", "capsa exec [options] IMAGE COMMAND [ARGS...]", "Run COMMAND inside IMAGE as yourself.\n" },
    { "run", "capsa run [options] IMAGE [ARGS...]",
      "Run the image's /.singularity.d/runscript with ARGS, or its /bin/sh when it has none.\n" },
    { "shell", "capsa shell [options] IMAGE", "Start an interactive shell inside IMAGE.\n" },
    { "sif", "capsa sif list|info|header|dump|new|add|del|setprim ...",
      "Read and write SIF files; 'capsa sif --help' lists the subcommands.\n" },
    { "inspect", "capsa inspect [--labels|--runscript|--deffile|--environment|--helpfile|--test|--startscript|--json] IMAGE",
      "Show an image's metadata (default: --labels).  From a SIF file's inspect-metadata.json\n"
      "object when it has one, else from /.singularity.d inside the image (directory, squashfs\n"
      "or SIF).  Works without a key on encrypted images: their metadata is stored in clear.\n" },
    { "capability", "capsa capability add|drop CAPABILITIES [--user NAME] [--group NAME] | list [NAME] | avail [CAPABILITIES]",
      "Grant capabilities to users and groups (root only), list grants, describe capabilities.\n"
      "CAPABILITIES: comma-separated, case-insensitive, CAP_ optional, 'all' for every one the\n"
      "kernel knows.  Users ask for granted ones with --add-caps.  Grants are kept in\n"
      "PREFIX/etc/capsa/capability.json, changed under a lock and replaced atomically.\n" },
    { "caps", "capsa caps ...", "Alias of 'capsa capability'.\n" },
    { "version", "capsa version", "Print capsa's version.\n" },
    { "help", "capsa help [COMMAND]", "Show help for COMMAND.\n" },
};

int
capsa_print_help (const char *cmd)
{
    if (cmd == NULL) {
        fputs (overview, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof (helps) / sizeof (helps[0]); i++) {
        if (strcmp (helps[i].cmd, cmd) != 0)
            continue;
        printf ("Usage: %s\n\n%s", helps[i].usage, helps[i].body);
        if (strcmp (cmd, "exec") == 0 || strcmp (cmd, "run") == 0 || strcmp (cmd, "shell") == 0)
            printf ("\n%s", action_options);
        return 0;
    }
    return -1;
}
