# capsa top-level build.  Targets: all, check, check-vm, install, bench, fuzz, deb, clean.
#   make                       build into build/
#   make SAN=1                 ASan+UBSan build into build-san/
#   make install PREFIX=/usr DESTDIR=/tmp/pkg
#   make check [SAN=1]         install into a test prefix and run every test
#   make check-vm              dm-crypt compatibility checks in a VM (tests/vm/)
#   make bench                 hyperfine comparisons (see docs/performance.md)

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
SYSCONFDIR ?= $(PREFIX)/etc
MANDIR     ?= $(PREFIX)/share/man
# Root's records of running instances (src/runtime/instance.h): a tmpfs,
# emptied at boot, where the pids they name mean something.
RUNSTATEDIR ?= /run/capsa
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
DESTDIR    ?=
VERSION    := 0.1.0

CC      ?= cc
SAN     ?=
ifeq ($(SAN),1)
BUILDDIR   ?= build-san
OPTFLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
SANLDFLAGS := -fsanitize=address,undefined
HARDEN     :=
CHECK_PREFIX ?= /opt/capsa-check-san
else
BUILDDIR   ?= build
OPTFLAGS   := -O2 -g
SANLDFLAGS :=
HARDEN     := -D_FORTIFY_SOURCE=3
CHECK_PREFIX ?= /opt/capsa-check
endif

PKGS     := libcap libseccomp json-c fuse3 libcryptsetup libcrypto libsquashfs1
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
# Registries and layer tarballs (src/oci): linked into the front end and the
# unit tests only, never into the setuid starter.
OCI_PKGS   := libcurl libarchive libcrypto
OCI_CFLAGS := $(shell pkg-config --cflags $(OCI_PKGS) 2>/dev/null)
OCI_LIBS   := $(shell pkg-config --libs $(OCI_PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wno-unused-parameter -Wvla
CFLAGS   ?=
CFLAGS   += -std=c17 $(OPTFLAGS) $(WARN) $(HARDEN) -fstack-protector-strong -fPIE \
            -D_GNU_SOURCE -I$(BUILDDIR) -Isrc $(PKG_CFLAGS) $(OCI_CFLAGS)
LDFLAGS  ?=
LDFLAGS  += -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(SANLDFLAGS)

# The setuid starter's own code, and all it may link: src/lib, the SIF
# reader and the runtime (HACKING.md, SECURITY.md).  src/crypt, src/oci,
# src/imgbuild and src/policy (the seccomp JSON compiler) are not in its
# library, so a call from the runtime into them fails to link, and only the
# libraries below are offered to the linker.  tests/e2e/test_starter_links.sh
# checks the installed starter.
STARTER_LIB_SRC := $(filter-out src/lib/sanitizer.c,$(wildcard src/lib/*.c)) $(wildcard src/sif/*.c) $(wildcard src/runtime/*.c)
STARTER_PKGS := libcap json-c
STARTER_LIBS := $(shell pkg-config --libs $(STARTER_PKGS) 2>/dev/null)
# The image server's squashfs reader and caches (no FUSE in them) are in the
# library for the unit tests and fuzzers; its FUSE side is in IMAGEFUSE_SRC.
SQIMAGE_SRC := src/imagefuse/sqimage.c src/imagefuse/objcache.c
# src/squashfs: libsquashfs helpers shared by src/crypt and the image server.
LIB_SRC     := $(STARTER_LIB_SRC) $(wildcard src/policy/*.c) $(wildcard src/crypt/*.c) $(wildcard src/oci/*.c) $(wildcard src/imgbuild/*.c) \
               $(wildcard src/squashfs/*.c) $(SQIMAGE_SRC)
CMD_SRC     := $(wildcard src/cmd/*.c)
STARTER_SRC := $(wildcard src/starter/*.c)
CRYPTFUSE_SRC := $(wildcard src/cryptfuse/*.c)
IMAGEFUSE_SRC := $(filter-out $(SQIMAGE_SRC),$(wildcard src/imagefuse/*.c))
SECCOMPC_SRC := $(wildcard src/seccompc/*.c)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)

LIB_OBJ     := $(LIB_SRC:%.c=$(BUILDDIR)/%.o)
STARTER_LIB_OBJ := $(STARTER_LIB_SRC:%.c=$(BUILDDIR)/%.o)
CMD_OBJ     := $(CMD_SRC:%.c=$(BUILDDIR)/%.o)
# The light front end (bin/capsa): the commands that start containers and
# read images, built with -DCAPSA_LIGHT; everything else is delegated to
# the full front end (libexec/capsa/tools), see src/cmd/light.c.
LIGHT_SRC   := src/cmd/main.c src/cmd/action.c src/cmd/help.c src/cmd/inspect.c src/cmd/sif.c src/cmd/envopt.c \
               src/cmd/capability.c src/cmd/light.c src/cmd/instance.c src/cmd/gpu.c
LIGHT_OBJ   := $(LIGHT_SRC:%.c=$(BUILDDIR)/light/%.o)
STARTER_OBJ := $(STARTER_SRC:%.c=$(BUILDDIR)/%.o)
CRYPTFUSE_OBJ := $(CRYPTFUSE_SRC:%.c=$(BUILDDIR)/%.o)
IMAGEFUSE_OBJ := $(IMAGEFUSE_SRC:%.c=$(BUILDDIR)/%.o)
SECCOMPC_OBJ := $(SECCOMPC_SRC:%.c=$(BUILDDIR)/%.o)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILDDIR)/tests/%)

# Linked into the installed programs only (not into unit tests, which run
# with leak detection): nothing references it, so it would never be pulled
# out of an archive.
SAN_OBJ  := $(BUILDDIR)/src/lib/sanitizer.o
LIBCAPSA := $(BUILDDIR)/libcapsa.a
LIBSTARTER := $(BUILDDIR)/libcapsa-starter.a
CAPSA    := $(BUILDDIR)/capsa
TOOLS    := $(BUILDDIR)/capsa-tools
STARTER  := $(BUILDDIR)/capsa-starter
CRYPTFUSE := $(BUILDDIR)/capsa-cryptfuse
IMAGEFUSE := $(BUILDDIR)/capsa-imagefuse
SECCOMPC := $(BUILDDIR)/capsa-seccompc
# Preloaded into Debian's fuse2fs (libfuse 2) so that it serves a connection
# the container mounted (src/fuseshim/shim.c).  Built without sanitizers:
# it is loaded into a program that has none.
FUSESHIM := $(BUILDDIR)/fusermount-shim.so

.PHONY: all install uninstall check check-vm unit bench fuzz deb clean FORCE

all: $(CAPSA) $(TOOLS) $(STARTER) $(CRYPTFUSE) $(IMAGEFUSE) $(SECCOMPC) $(FUSESHIM) $(UNIT_BIN)

# Paths compiled into the binaries live in one generated header, rewritten
# only when they change so that a PREFIX change rebuilds what depends on it.
$(BUILDDIR)/config.h: FORCE
	@mkdir -p $(BUILDDIR)
	@printf '#define CAPSA_VERSION "%s"\n#define CAPSA_SYSCONFDIR "%s/capsa"\n#define CAPSA_LIBEXECDIR "%s/capsa"\n#define CAPSA_BINDIR "%s"\n#define CAPSA_RUNSTATEDIR "%s"\n' \
	    '$(VERSION)' '$(SYSCONFDIR)' '$(LIBEXECDIR)' '$(BINDIR)' '$(RUNSTATEDIR)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILDDIR)/%.o: %.c $(BUILDDIR)/config.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIBCAPSA): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIBSTARTER): $(STARTER_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILDDIR)/light/%.o: %.c $(BUILDDIR)/config.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DCAPSA_LIGHT -MMD -MP -c $< -o $@

$(CAPSA): $(LIGHT_OBJ) $(SAN_OBJ) $(LIBCAPSA)
	$(CC) $(LDFLAGS) -o $@ $(LIGHT_OBJ) $(SAN_OBJ) $(LIBCAPSA) $(PKG_LIBS)

$(TOOLS): $(CMD_OBJ) $(SAN_OBJ) $(LIBCAPSA)
	$(CC) $(LDFLAGS) -o $@ $(CMD_OBJ) $(SAN_OBJ) $(LIBCAPSA) $(PKG_LIBS) $(OCI_LIBS)

$(STARTER): $(STARTER_OBJ) $(SAN_OBJ) $(LIBSTARTER)
	$(CC) $(LDFLAGS) -o $@ $(STARTER_OBJ) $(SAN_OBJ) $(LIBSTARTER) $(STARTER_LIBS)

# The decrypting FUSE server of encrypted images: runs as the user, never
# privileged (src/cryptfuse/main.c).
$(CRYPTFUSE): $(CRYPTFUSE_OBJ) $(SAN_OBJ) $(LIBCAPSA)
	$(CC) $(LDFLAGS) -o $@ $(CRYPTFUSE_OBJ) $(SAN_OBJ) $(LIBCAPSA) $(PKG_LIBS)

# capsa's image server: squashfs images (clear or encrypted) for users'
# containers, shared between them; runs as the user, never privileged
# (src/imagefuse/main.c).
$(IMAGEFUSE): $(IMAGEFUSE_OBJ) $(SAN_OBJ) $(LIBCAPSA)
	$(CC) $(LDFLAGS) -o $@ $(IMAGEFUSE_OBJ) $(SAN_OBJ) $(LIBCAPSA) $(PKG_LIBS)

# The compiler of the administrator's seccomp profile, run by the starter as
# nobody (src/seccompc/main.c); installed 0711 so that it starts not dumpable.
$(SECCOMPC): $(SECCOMPC_OBJ) $(SAN_OBJ) $(LIBCAPSA)
	$(CC) $(LDFLAGS) -o $@ $(SECCOMPC_OBJ) $(SAN_OBJ) $(LIBCAPSA) $(PKG_LIBS)

$(FUSESHIM): src/fuseshim/shim.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -O2 $(WARN) -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIC -shared \
	    -Wl,-z,relro,-z,now -o $@ $< -ldl

$(BUILDDIR)/tests/%: tests/unit/%.c $(LIBCAPSA) tests/unit/tap.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBCAPSA) $(PKG_LIBS) $(OCI_LIBS)

-include $(LIB_OBJ:.o=.d) $(CMD_OBJ:.o=.d) $(LIGHT_OBJ:.o=.d) $(STARTER_OBJ:.o=.d) $(CRYPTFUSE_OBJ:.o=.d) $(IMAGEFUSE_OBJ:.o=.d) $(SECCOMPC_OBJ:.o=.d)

# The starter is the only privileged program: setuid root, not readable
# or writable by others.  capsa.conf, capability.json and the GPU lists
# (nvliblist.conf, rocmliblist.conf) are kept when they already exist (an
# administrator's edits survive a reinstall).
install: $(CAPSA) $(TOOLS) $(STARTER) $(CRYPTFUSE) $(IMAGEFUSE) $(SECCOMPC) $(FUSESHIM)
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/capsa $(DESTDIR)$(SYSCONFDIR)/capsa
	install -m 0755 $(CAPSA) $(DESTDIR)$(BINDIR)/capsa
	# Apptainer's names, for scripts, workflow tools and the
	# "#!/usr/bin/env run-singularity" line of SIF files (src/cmd/main.c).
	# NO_APPTAINER_LINKS=1 leaves them out (the .deb makes them alternatives).
	$(if $(NO_APPTAINER_LINKS),,for n in apptainer singularity run-singularity; do ln -sfn capsa $(DESTDIR)$(BINDIR)/$$n; done)
	install -m 0755 $(TOOLS) $(DESTDIR)$(LIBEXECDIR)/capsa/tools
	install -m 4755 $(STARTER) $(DESTDIR)$(LIBEXECDIR)/capsa/starter
	install -m 0711 $(CRYPTFUSE) $(DESTDIR)$(LIBEXECDIR)/capsa/cryptfuse
	install -m 0711 $(IMAGEFUSE) $(DESTDIR)$(LIBEXECDIR)/capsa/imagefuse
	install -m 0711 $(SECCOMPC) $(DESTDIR)$(LIBEXECDIR)/capsa/seccompc
	install -m 0644 $(FUSESHIM) $(DESTDIR)$(LIBEXECDIR)/capsa/fusermount-shim.so
	test -e $(DESTDIR)$(SYSCONFDIR)/capsa/capsa.conf || install -m 0644 etc/capsa.conf $(DESTDIR)$(SYSCONFDIR)/capsa/capsa.conf
	test -e $(DESTDIR)$(SYSCONFDIR)/capsa/capability.json || install -m 0644 etc/capability.json $(DESTDIR)$(SYSCONFDIR)/capsa/capability.json
	for f in nvliblist.conf rocmliblist.conf; do test -e $(DESTDIR)$(SYSCONFDIR)/capsa/$$f || install -m 0644 etc/$$f $(DESTDIR)$(SYSCONFDIR)/capsa/$$f; done
	install -d -m 0755 $(DESTDIR)$(LIBEXECDIR)/capsa/mnt $(DESTDIR)$(SYSCONFDIR)/capsa/seccomp-profiles
	install -m 0644 etc/seccomp-profiles/default.json $(DESTDIR)$(SYSCONFDIR)/capsa/seccomp-profiles/default.json
	install -d -m 0755 $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(BASHCOMPDIR)
	install -m 0644 docs/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 docs/man/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 etc/bash-completion/capsa $(DESTDIR)$(BASHCOMPDIR)/capsa
	$(if $(NO_APPTAINER_LINKS),,for n in apptainer singularity run-singularity; do ln -sfn capsa $(DESTDIR)$(BASHCOMPDIR)/$$n; done)

uninstall:
	for n in apptainer singularity run-singularity; do [ "$$(readlink $(DESTDIR)$(BINDIR)/$$n)" = capsa ] && rm -f $(DESTDIR)$(BINDIR)/$$n; done; true
	rm -f $(DESTDIR)$(BINDIR)/capsa $(DESTDIR)$(LIBEXECDIR)/capsa/starter $(DESTDIR)$(LIBEXECDIR)/capsa/cryptfuse $(DESTDIR)$(LIBEXECDIR)/capsa/imagefuse $(DESTDIR)$(LIBEXECDIR)/capsa/seccompc $(DESTDIR)$(LIBEXECDIR)/capsa/tools \
	      $(DESTDIR)$(LIBEXECDIR)/capsa/fusermount-shim.so
	rmdir $(DESTDIR)$(LIBEXECDIR)/capsa/mnt $(DESTDIR)$(LIBEXECDIR)/capsa 2>/dev/null || true
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(wildcard docs/man/*.1))) \
	      $(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(wildcard docs/man/*.5))) $(DESTDIR)$(BASHCOMPDIR)/capsa
	for n in apptainer singularity run-singularity; do [ "$$(readlink $(DESTDIR)$(BASHCOMPDIR)/$$n)" = capsa ] && rm -f $(DESTDIR)$(BASHCOMPDIR)/$$n; done; true

unit: $(UNIT_BIN)

# The whole suite: unit tests, then end-to-end tests against binaries
# installed (setuid) into CHECK_PREFIX.  Must run as root.
check:
	$(MAKE) all install PREFIX=$(CHECK_PREFIX) DESTDIR= BUILDDIR=$(BUILDDIR)/check SAN=$(SAN)
	CAPSA_PREFIX=$(CHECK_PREFIX) CAPSA_BUILDDIR=$(BUILDDIR)/check CAPSA_SAN=$(SAN) bash tests/run.sh

# The kernel's dm-crypt as a judge of encrypted images, in a VM
# (tests/vm/): Debian's stock kernel under qemu, no KVM needed.  Not under
# SAN: the VM judges formats, the sanitizers add nothing there.
check-vm:
	$(MAKE) install PREFIX=$(CHECK_PREFIX) DESTDIR= BUILDDIR=$(BUILDDIR)/check SAN=$(SAN)
	CAPSA_PREFIX=$(CHECK_PREFIX) bash tests/vm/run.sh

bench:
	$(MAKE) all install PREFIX=$(CHECK_PREFIX) DESTDIR= BUILDDIR=$(BUILDDIR)/check
	CAPSA_PREFIX=$(CHECK_PREFIX) bash bench/run.sh

fuzz:
	bash tests/fuzz/build.sh

# A Debian package, capsa_$(VERSION)_ARCH.deb, in DEBDIR: debhelper builds it
# from a copy of this tree with packaging/debian (see docs/hpc.md).
DEBDIR ?= .
deb:
	bash packaging/build-deb.sh $(VERSION) $(DEBDIR)

clean:
	rm -rf build build-san build-fuzz
