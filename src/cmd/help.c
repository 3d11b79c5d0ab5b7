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
    "  build     build a SIF image or sandbox from a directory, an image or a definition file\n"
    "  encrypt   encrypt the root file system of a SIF image\n"
    "  push      upload a SIF image to an OCI registry (oras://)\n"
    "  pull      download a SIF image from an OCI registry (oras://)\n"
    "  cache     list or clean the cache of pulled images\n"
    "  registry  log in to and out of OCI registries\n"
    "  sif       read and write Singularity Image Format files\n"
    "  capability  manage capability grants (add, drop, list, avail); alias: caps\n"
    "  version   print capsa's version\n"
    "  help      show help for a command\n"
    "\n"
    "Global options:\n"
    "  -q, --quiet     only print errors\n"
    "  -v, --verbose   print what capsa does\n"
    "  -d, --debug     print everything\n"
    "  -c, --config FILE  use FILE instead of capsa.conf (root, or with --userns)\n"
    "\n"
    "Images: a directory, a squashfs file or a SIF file.\n"
    "Run 'capsa help COMMAND' for a command's options.\n";

static const char action_options[] =
    "Options:\n"
    "  -B, --bind SRC[:DST[:ro|rw]]  bind a host path (repeatable, comma-separated)\n"
    "      --mount SPEC              type=bind,source=SRC,destination=DST[,ro] (Docker syntax)\n"
    "      --no-mount LIST           leave out proc,sys,dev,devpts,home,tmp,hostfs,cwd,\n"
    "                                bind-paths or one bind path of capsa.conf by its DST\n"
    "  -H, --home SRC[:DST]          use SRC as the home directory (inside at DST)\n"
    "      --no-home                 do not mount the home directory\n"
    "      --pwd, --cwd DIR          start in DIR inside the container\n"
    "  -c, --contain                 private /tmp, /var/tmp and home instead of the host's\n"
    "  -C, --containall              --contain, --cleanenv, --pid and --ipc\n"
    "  -e, --cleanenv                do not pass the host environment\n"
    "      --env KEY=VAL[,KEY=VAL]   set variables inside (after the image's own, evaluated)\n"
    "      --env-file FILE           set variables from FILE (shell assignments)\n"
    "      --no-eval                 take --env, --env-file and *ENV_ values literally\n"
    "      --no-umask                umask 0022 inside instead of yours\n"
    "  -p, --pid                     new PID namespace (with an init as PID 1)\n"
    "      --no-init                 with --pid: no init, the command is PID 1\n"
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
    "      --passphrase              encrypted image: ask for its passphrase\n"
    "      --pem-path FILE           encrypted image: its RSA private key (PEM)\n"
    "\n"
    "Every option has a CAPSA_ variable (CAPSA_BIND, CAPSA_CONTAIN=1, ...); flags win.\n"
    "CAPSAENV_X, APPTAINERENV_X or SINGULARITYENV_X sets X inside (see capsa-exec(1)).\n"
    "Keys of encrypted images also come from CAPSA_ENCRYPTION_PASSPHRASE,\n"
    "CAPSA_ENCRYPTION_PEM_PATH or CAPSA_ENCRYPTION_PEM_DATA (APPTAINER_ and SINGULARITY_\n"
    "spellings too); they are never passed on in arguments or the environment.\n"
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
    { "build", "capsa build [--sandbox] [--force] [--fakeroot] [--notest] [--comp C] [--encrypt]\n"
               "                   [--passphrase | --pem-path PUBLIC.pem] OUT SOURCE",
      "Build OUT, a SIF file (or with --sandbox a directory), from SOURCE: a directory, a SIF or\n"
      "squashfs image, or a definition file (Bootstrap: localimage or debootstrap; %setup, %files,\n"
      "%post, %environment, %runscript, %startscript, %test, %labels, %help).\n"
      "\n"
      "Options:\n"
      "  -s, --sandbox    build a directory instead of a SIF file\n"
      "  -F, --force      replace an existing OUT; %labels replace existing labels\n"
      "  -f, --fakeroot   run %setup, %post and %test as root in a user namespace (non-root users)\n"
      "  -T, --notest     skip %test\n"
      "      --comp C     squashfs compression: gzip (default), lz4, lzo, xz, zstd\n"
      "  -e, --encrypt    encrypt the root file system (key from the options below or\n"
      "                   CAPSA_ENCRYPTION_PASSPHRASE / _PEM_PATH / _PEM_DATA)\n"
      "      --passphrase       encrypt with a passphrase, asked on the terminal (twice)\n"
      "      --pem-path FILE    encrypt for the RSA public key in FILE\n"
      "\n"
      "%post and %test run as root inside the new root: build as root or with --fakeroot;\n"
      "debootstrap needs root.  OUT appears whole or not at all.  Environment: CAPSA_FAKEROOT,\n"
      "CAPSA_FORCE, CAPSA_SANDBOX, CAPSA_NOTEST, CAPSA_COMP, CAPSA_DEBOOTSTRAP_CACHE (debootstrap\n"
      "--cache-dir).  See docs/build.md.\n" },
    { "encrypt", "capsa encrypt [--passphrase | --pem-path PUBLIC.pem] [--force] IN.sif OUT.sif",
      "Write OUT.sif: IN.sif with its root file system (the primary squashfs partition)\n"
      "encrypted, every other object kept.  Signatures are dropped (they no longer match).\n"
      "The partition becomes a LUKS2 container (aes-xts-plain64), as Apptainer writes them;\n"
      "the definition file and metadata stay in clear.  See docs/encryption.md.\n"
      "\n"
      "Options:\n"
      "      --passphrase      ask for a passphrase on the terminal (twice)\n"
      "      --pem-path FILE   encrypt for the RSA public key in FILE (PEM, PKCS#1 or SPKI)\n"
      "  -F, --force           replace an existing OUT.sif\n"
      "\n"
      "Without a flag the key comes from CAPSA_ENCRYPTION_PEM_PATH, CAPSA_ENCRYPTION_PEM_DATA\n"
      "(the PEM text) or CAPSA_ENCRYPTION_PASSPHRASE (APPTAINER_ and SINGULARITY_ spellings too);\n"
      "flags win.  OUT.sif appears whole or not at all.\n" },
    { "push", "capsa push [--no-https] [--authfile FILE] IMAGE.sif oras://HOST/REPO:TAG",
      "Upload IMAGE.sif to an OCI registry as an ORAS artifact (one layer of media type\n"
      "application/vnd.sylabs.sif.layer.v1.sif, as Apptainer pushes it).  Blobs the registry\n"
      "already has are not sent again.\n"
      "\n"
      "Options:\n"
      "      --no-https        plain HTTP (a registry on a private address)\n"
      "      --authfile FILE   credentials file (default $HOME/.capsa/registry.json)\n"
      "\n"
      "Log in first with 'capsa registry login' when the registry asks for it.  See\n"
      "docs/registries.md.\n" },
    { "pull", "capsa pull [--force] [--no-https] [--authfile FILE] [--arch ARCH] [--dir DIR] [--disable-cache] [OUT.sif] oras://HOST/REPO[:TAG|@DIGEST]",
      "Download a SIF image pushed as an ORAS artifact (by capsa or Apptainer) to OUT.sif\n"
      "(default NAME_TAG.sif), through the cache.  The image is checked against its sha256\n"
      "digest; on a mismatch nothing is kept.\n"
      "\n"
      "Options:\n"
      "  -F, --force           replace an existing OUT.sif\n"
      "      --no-https        plain HTTP (a registry on a private address)\n"
      "      --authfile FILE   credentials file (default $HOME/.capsa/registry.json)\n"
      "      --arch ARCH       the variant of a multi-architecture image (default: this machine's)\n"
      "      --dir DIR         put OUT.sif in DIR\n"
      "      --disable-cache   download straight to OUT.sif\n"
      "\n"
      "exec, run, shell and inspect take oras:// images too: they are pulled into the cache\n"
      "once and run from there (--no-https and --authfile work there as well).\n" },
    { "cache", "capsa cache list [--type oras|blob|all] | clean [--force] [--dry-run] [--type oras|blob|all]",
      "The per-user cache of pulled SIF images (oras) and image layers (blob), named by their\n"
      "sha256 digest: $CAPSA_CACHEDIR, default $HOME/.capsa/cache (mode 0700).\n"
      "\n"
      "  list     what is cached: type, digest, size, last use, the reference last pulled\n"
      "  clean    remove cached files; asks first unless -f/--force; -n/--dry-run only counts\n" },
    { "registry", "capsa registry login [--username USER] [--password-stdin] [--no-https] [--authfile FILE] HOST | logout [--authfile FILE] HOST | list",
      "Store credentials for a registry (HOST, HOST:PORT, or an oras:// or docker:// URI of it).\n"
      "login checks them with the registry first, then writes them to the credentials file\n"
      "(default $HOME/.capsa/registry.json, mode 0600, Docker's format); the password is read\n"
      "from the terminal without echo, or with --password-stdin as the first line of standard\n"
      "input.  It is never printed.  logout removes them; list shows hosts and user names.\n" },
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
