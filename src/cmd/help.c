/* Help texts of every command: `capsa help CMD` and `capsa CMD --help`. */
#include <stdio.h>
#include <string.h>

#include "cmd/commands.h"

static const char overview[] =
    "capsa: run programs inside container images, as yourself.\n"
    "\n"
    "Usage: capsa [-q|-s|-v|-d] [--nocolor] [-c FILE] COMMAND [options] ...\n"
    "\n"
    "Commands:\n"
    "  exec      run a command inside an image\n"
    "  run       run the image's runscript\n"
    "  shell     start an interactive shell inside an image\n"
    "  test      run the image's test script (%test)\n"
    "  run-help  show the image's help text (%help)\n"
    "  inspect   show an image's labels, runscript, definition file, environment\n"
    "  build     build a SIF image or sandbox from a directory, an image or a definition file\n"
    "  encrypt   encrypt the root file system of a SIF image\n"
    "  push      upload a SIF image to an OCI registry (oras://)\n"
    "  pull      download an image: oras://, docker:// (made into a SIF), http(s)://\n"
    "  cache     list or clean the cache of pulled images\n"
    "  registry  log in to and out of OCI registries\n"
    "  overlay   make a writable overlay image (overlay create)\n"
    "  config    give users subordinate ids for --fakeroot (config fakeroot, root only)\n"
    "  sif       read and write Singularity Image Format files; alias: siftool\n"
    "  capability  manage capability grants (add, drop, list, avail); alias: caps\n"
    "  instance  services in the background: instance start, run, list, stop, stats\n"
    "  version   print capsa's version\n"
    "  help      show help for a command\n"
    "\n"
    "Global options:\n"
    "  -q, --quiet     only print warnings and errors\n"
    "  -s, --silent    only print errors\n"
    "  -v, --verbose   print what capsa does\n"
    "  -d, --debug     print everything\n"
    "      --nocolor   no colours in messages\n"
    "  -c, --config FILE  the configuration file (root, or without the setuid starter)\n"
    "      --version   the version (as 'apptainer' or 'singularity': Apptainer's form)\n"
    "\n"
    "Images: a directory, a squashfs file or a SIF file; for exec, run, shell, test and\n"
    "inspect also oras://, docker://, http:// and https:// URIs (through the cache).\n"
    "capsa is also installed as apptainer, singularity and run-singularity; options take\n"
    "their values from CAPSA_X, APPTAINER_X or SINGULARITY_X too (see docs/apptainer.md).\n"
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
    "  -f, --fakeroot                root inside a user namespace of your own, with your\n"
    "                                /etc/subuid and /etc/subgid ranges (capsa config fakeroot)\n"
    "      --writable-tmpfs          writable root, in memory, gone after the run\n"
    "  -o, --overlay PATH[:ro]       add an overlay: a directory or an ext3 image (capsa overlay\n"
    "                                create); repeatable, the last on top, one writable\n"
    "  -w, --writable                write to the image itself: a sandbox directory, or a SIF's\n"
    "                                overlay partition\n"
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
    "      --cwd DIR                 start in DIR (as --pwd)\n"
    "      --no-mount LIST           leave out default mounts (home, tmp, cwd, ...)\n"
    "      --mount type=bind,source=SRC,destination=DST[,ro]   a bind, Docker's syntax\n"
    "  -f, --fakeroot                be root inside a user namespace (subuid ranges)\n"
    "      --writable-tmpfs          let the command write anywhere; gone after the run\n"
    "  -o, --overlay DIR|IMG[:ro]    a persistent overlay\n"
    "  -w, --writable                write into a sandbox or a SIF's overlay\n"
    "      --no-init                 with --pid: no init as PID 1\n"
    "      --no-eval                 do not evaluate --env values in a shell\n"
    "      --no-umask                umask 0022 instead of the caller's\n"
    "      --compat                  --containall --writable-tmpfs --no-init --no-umask --no-eval\n"
    "      --nv                      NVIDIA GPUs: the host's driver libraries (nvliblist.conf)\n"
    "                                in /.singularity.d/libs, its programs, /dev/nvidia*\n"
    "      --nvccli                  --nv, with the files nvidia-container-cli lists\n"
    "      --rocm                    AMD GPUs: rocmliblist.conf's files, /dev/kfd, /dev/dri\n"
    "      --compat32                with --nv or --rocm: the 32-bit libraries too, in\n"
    "                                /.singularity.d/libs32\n"
    "      --no-nv, --no-rocm        not even when capsa.conf says 'always use nv|rocm'\n"
    "      --no-pid                  no PID namespace, even with --containall\n"
    "      --no-https, --authfile F  for oras:// and docker:// images\n"
    "      --docker-username U, --docker-password P   registry credentials\n"
    "      --tmpdir DIR              for converting docker:// images\n"
    "\n"
    "Apptainer's options capsa lacks (--app, cgroup limits, ...) are refused with the\n"
    "reason; docs/apptainer.md lists them all.  Every option has a variable CAPSA_X,\n"
    "APPTAINER_X or SINGULARITY_X (CAPSA_BIND, APPTAINER_CONTAIN=1, SINGULARITY_BINDPATH,\n"
    "...; the first of the three set wins; flags win over variables, -B and --mount add).\n"
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
    { "test", "capsa test [options] IMAGE [ARGS...]",
      "Run the image's test script, /.singularity.d/test (a definition file's %test), with ARGS;\n"
      "its exit status is passed on.  An image without one: a note, exit 0.\n" },
    { "run-help", "capsa run-help [--app NAME] IMAGE",
      "Print the image's help text (a definition file's %help), or say that it has none.\n" },
    { "siftool", "capsa siftool ...", "Alias of 'capsa sif'.\n" },
    { "sif", "capsa sif list|info|header|dump|new|add|del|setprim ...",
      "Read and write SIF files; 'capsa sif --help' lists the subcommands.\n" },
    { "inspect", "capsa inspect [--labels|--runscript|--deffile|--environment|--helpfile|--test|--startscript|--list-apps|--all] [--json] [--app NAME] IMAGE",
      "Show an image's metadata (default: --labels).  --json prints the sections asked for as\n"
      "Apptainer's JSON, --all every section (as JSON); --list-apps lists the SCIF apps and\n"
      "--app NAME shows an app's sections.  From a SIF file's inspect-metadata.json\n"
      "object when it has one, else from /.singularity.d inside the image (directory, squashfs\n"
      "or SIF).  Works without a key on encrypted images: their metadata is stored in clear.\n" },
    { "capability", "capsa capability add|drop CAPABILITIES [--user NAME] [--group NAME] | list [NAME] | avail [CAPABILITIES]",
      "Grant capabilities to users and groups (root only), list grants, describe capabilities.\n"
      "CAPABILITIES: comma-separated, case-insensitive, CAP_ optional, 'all' for every one the\n"
      "kernel knows.  Users ask for granted ones with --add-caps.  Grants are kept in\n"
      "PREFIX/etc/capsa/capability.json, changed under a lock and replaced atomically.\n" },
    { "caps", "capsa caps ...", "Alias of 'capsa capability'.\n" },
    { "overlay", "capsa overlay create [--size MiB] [--sparse] [--create-dir DIR]... [--fakeroot] IMAGE",
      "Make an ext3 overlay image for 'exec --overlay IMAGE' (upper/ and work/, yours), or add\n"
      "one as an overlay partition to the SIF file IMAGE for 'exec --writable IMAGE'.\n"
      "\n"
      "Options:\n"
      "  -s, --size MiB        its size, at least 64 (the default)\n"
      "  -S, --sparse          a sparse file: blocks allocated as they are written\n"
      "      --create-dir DIR  also make DIR (a path inside the container) in upper/\n"
      "  -f, --fakeroot        upper/ and work/ owned by root, as --fakeroot would make them\n"
      "\n"
      "Users' ext3 images are mounted by the kernel only where 'allow setuid-mount extfs = yes';\n"
      "with --fakeroot or --userns fuse2fs serves them.  See docs/writable.md.\n" },
    { "config", "capsa config fakeroot --add|--remove|--enable|--disable USER",
      "Root only: give USER a range of 65536 subordinate ids in /etc/subuid and /etc/subgid for\n"
      "--fakeroot (--add), take it away (--remove), or switch it off and on (--disable with a\n"
      "leading '!', --enable).  Changed under shadow's locks, atomically.\n" },
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
      "debootstrap needs root, or --fakeroot with a range in /etc/subuid and /etc/subgid\n"
      "(capsa config fakeroot).  OUT appears whole or not at all.  Environment (CAPSA_, APPTAINER_\n"
      "or SINGULARITY_ prefix): FAKEROOT, FORCE, SANDBOX, NOTEST, COMP; CAPSA_DEBOOTSTRAP_CACHE\n"
      "(debootstrap --cache-dir).  See docs/build.md.\n" },
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
    { "pull", "capsa pull [--name FILE | --dir DIR] [--force] [--no-https] [--authfile FILE] [--arch ARCH]\n"
              "                  [--disable-cache] [--sandbox] [OUT] oras://...|docker://...|https://...|http://...",
      "Download an image to FILE (or OUT; default Apptainer's name, NAME_TAG.sif or the URL's last\n"
      "part), through the cache:\n"
      "  oras://HOST/REPO[:TAG|@DIGEST]  a SIF pushed as an ORAS artifact (checked against its digest)\n"
      "  docker://REF                    an OCI/Docker image, made into a SIF once (cached by the\n"
      "                                  digest of its manifest; layers cached too)\n"
      "  https://URL, http://URL         a SIF or squashfs file (cached by URL and Last-Modified)\n"
      "\n"
      "Options (they may also follow the URI):\n"
      "      --name FILE       the file to write\n"
      "      --dir DIR         put it in DIR\n"
      "  -F, --force           replace an existing file (otherwise an error)\n"
      "      --no-https        plain HTTP for oras:// and docker:// (a registry on a private address)\n"
      "      --authfile FILE   credentials file (default $HOME/.capsa/registry.json)\n"
      "      --arch ARCH       the variant of a multi-architecture image (default: this machine's)\n"
      "      --disable-cache   no cache: download or build straight into the file\n"
      "      --sandbox         docker:// only: a sandbox directory instead of a SIF\n"
      "\n"
      "Variables: PULL_NAME, PULLDIR (PULLFOLDER), FORCE, DISABLE_CACHE, NO_HTTPS, AUTH_FILE,\n"
      "DOCKER_USERNAME, DOCKER_PASSWORD, CACHEDIR, each as CAPSA_X, APPTAINER_X or\n"
      "SINGULARITY_X.  exec, run, shell, test and inspect take the same URIs: they are pulled\n"
      "into the cache once and run from there.  See docs/registries.md, docs/apptainer.md.\n" },
    { "cache", "capsa cache list [--type oras|blob|oci-tmp|net|all] | clean [--force] [--dry-run] [--type ...]",
      "The per-user cache of pulled SIF images (oras), image layers (blob), SIF images made from\n"
      "docker:// images (oci-tmp) and images downloaded by URL (net), named by sha256 digests:\n"
      "$CAPSA_CACHEDIR, else $APPTAINER_CACHEDIR/capsa, default $HOME/.capsa/cache (mode 0700).\n"
      "\n"
      "  list     what is cached: type, digest, size, last use, the reference last pulled\n"
      "  clean    remove cached files; asks first unless -f/--force; -n/--dry-run only counts\n" },
    { "registry", "capsa registry login [--username USER] [--password-stdin] [--no-https] [--authfile FILE] HOST | logout [--authfile FILE] HOST | list",
      "Store credentials for a registry (HOST, HOST:PORT, or an oras:// or docker:// URI of it).\n"
      "login checks them with the registry first, then writes them to the credentials file\n"
      "(default $HOME/.capsa/registry.json, mode 0600, Docker's format); the password is read\n"
      "from the terminal without echo, or with --password-stdin as the first line of standard\n"
      "input.  It is never printed.  logout removes them; list shows hosts and user names.\n" },
    { "version", "capsa version",
      "Print capsa's version and the Apptainer release it follows.  Called as 'apptainer' or\n"
      "'singularity', print the bare version Apptainer's 'version' prints (docs/apptainer.md).\n" },
    { "instance", "capsa instance start|run [--pid-file FILE] [options] IMAGE NAME [ARGS...]\n"
                  "       capsa instance list [--json|--logs] [--user USER] [NAME-PATTERN]\n"
                  "       capsa instance stop [--all] [--force] [--signal SIG] [--timeout S] [--user USER] [NAME]\n"
                  "       capsa instance stats [--json] [--no-stream] [--user USER] NAME",
      "Instances are containers that run in the background, detached from the terminal, until\n"
      "stopped: a service (a database, a web server, Jupyter) that other commands join.\n"
      "\n"
      "  start   run the image's %startscript (/.singularity.d/startscript) with ARGS, or only\n"
      "          an init that waits when it has none; the instance stays up when it ends\n"
      "  run     the same with the image's %runscript\n"
      "  list    the running instances (NAME-PATTERN: a shell pattern); --json, --logs (their\n"
      "          log files); one that has ended is reported once and its record removed\n"
      "  stop    send SIG (default SIGINT; -F/--force: SIGKILL) to the instance's init, which\n"
      "          passes it to its command; after -t/--timeout S seconds (default 10) it is\n"
      "          killed; nothing of it is left (processes, mounts, record); -a/--all: all yours\n"
      "  stats   CPU, memory, PIDs and I/O of the instance's cgroup (cgroup v2), when it has one\n"
      "          of its own (capsa creates none: start it in one, e.g. systemd-run --user --scope)\n"
      "\n"
      "start and run take every option of 'capsa exec' (binds, --fakeroot, --userns,\n"
      "--writable-tmpfs, --net, encrypted and oras:// images, ...), plus --pid-file FILE (write\n"
      "the pid of the instance's init to FILE).  An instance always has a PID namespace of its\n"
      "own (--pid, with an init as PID 1).  Its output goes to\n"
      "~/.capsa/instances/logs/HOST/USER/NAME.out and .err; what capsa said while starting it\n"
      "is shown.  Names: letters, digits, '.', '_' and '-'.\n"
      "\n"
      "'capsa exec|run|shell|test instance://NAME ...' runs a command inside the running\n"
      "instance: in its namespaces and its root, as yourself, with the capabilities, seccomp\n"
      "filters and environment of any 'capsa exec' (APPTAINER_INSTANCE=NAME).  Options that\n"
      "would change the instance's mounts or namespaces are ignored.  --user (root only) names\n"
      "another user's instances.  Variables: PID_FILE; list: JSON, LOGS; stop: ALL, FORCE,\n"
      "SIGNAL (as CAPSA_X, APPTAINER_X or SINGULARITY_X).  See capsa-instance(1) and\n"
      "docs/instances.md.\n" },
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
        if (strcmp (cmd, "exec") == 0 || strcmp (cmd, "run") == 0 || strcmp (cmd, "shell") == 0
            || strcmp (cmd, "test") == 0 || strcmp (cmd, "instance") == 0)
            printf ("\n%s", action_options);
        return 0;
    }
    return -1;
}
