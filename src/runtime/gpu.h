/* GPUs: --nv (NVIDIA) and --rocm (AMD), as Apptainer sites configure them
 * (docs/hpc.md, "GPUs").
 *
 * The work is split by privilege:
 *
 *   front end (src/cmd/gpu.c, the user's process): reads the
 *     administrator's list (PREFIX/etc/capsa/nvliblist.conf or
 *     rocmliblist.conf), runs `ldconfig -p` and searches PATH for what it
 *     names (or asks nvidia-container-cli with --nvccli), and passes what
 *     it found to the starter as --gpu-file=KIND:PATH;
 *   starter (src/runtime/gpu.c, the container's child, acting as the
 *     user): reads the same list itself (root's file in a setuid install),
 *     checks every --gpu-file against it, opens each as the user (it must
 *     be a regular file the user can read) and binds it read-only, nosuid,
 *     nodev: libraries into /.singularity.d/libs (32-bit ones into
 *     /.singularity.d/libs32), programs into /usr/bin, other files at
 *     their own path.  The devices it finds itself in the host's /dev:
 *     character devices only (no symlink, no block device), whose major
 *     number /proc/devices gives to no other driver, bound like a user's
 *     `-B /dev/X` (without nodev) into capsa's minimal /dev.
 *
 * This file's pure functions (gpulist.c) parse the lists, `ldconfig -p`
 * and /proc/devices; they are shared by both sides and unit-tested. */
#ifndef CAPSA_GPU_H
#define CAPSA_GPU_H

#include <stdbool.h>

#include "lib/error.h"
#include "lib/utils.h"

struct capsa_container;

/* Where the bound files go in the container (Apptainer's directories). */
#define CAPSA_GPU_LIBDIR "/.singularity.d/libs"
#define CAPSA_GPU_LIB32DIR "/.singularity.d/libs32"
#define CAPSA_GPU_BINDIR "/usr/bin"
/* The NVIDIA persistence daemon's socket, bound when it exists. */
#define CAPSA_GPU_PERSISTENCED "/var/run/nvidia-persistenced/socket"

/* Bits of struct capsa_container's gpu_libdirs: which library directories
 * got libraries (the action script then puts them on LD_LIBRARY_PATH). */
enum { GPU_LIBDIR = 1 << 0, GPU_LIB32DIR = 1 << 1 };

/* An administrator's list (nvliblist.conf, rocmliblist.conf: Apptainer's
 * format): one entry a line, blank lines and '#' comments ignored.  An
 * entry containing ".so" is a library: a name that ld cache names start
 * with ("libcuda.so" matches "libcuda.so.1"), or an absolute path; another
 * absolute path is a file bound at the same place; anything else is a
 * program, searched in PATH. */
struct capsa_gpu_list {
    struct strv libs, bins, files;
};

void capsa_gpu_list_parse (const char *text, struct capsa_gpu_list *out);
void capsa_gpu_list_free (struct capsa_gpu_list *l);
/* Read and parse PATH; with strict, it must be root's and not writable by
 * group or others (capsa_open_trusted_file). */
int capsa_gpu_list_load (const char *path, bool strict, struct capsa_gpu_list *out, capsa_error_t *err);

/* Does the list allow a library at host path PATH (bound under its base
 * name)?  Its base name starts with a library name of the list, or PATH is
 * one of its absolute library entries. */
bool capsa_gpu_list_lib (const struct capsa_gpu_list *l, const char *path);
/* Is NAME (a base name) one of its programs? */
bool capsa_gpu_list_bin (const struct capsa_gpu_list *l, const char *name);
/* Is PATH one of its absolute file entries? */
bool capsa_gpu_list_file (const struct capsa_gpu_list *l, const char *path);

/* The output of `ldconfig -p`: each "NAME (FLAGS) => PATH" line, in order
 * (names and paths pushed pairwise; other lines skipped). */
void capsa_gpu_ldcache_parse (const char *text, struct strv *names, struct strv *paths);

/* The name /proc/devices (TEXT) gives the character device major MAJOR,
 * or NULL when none (owned string). */
char *capsa_gpu_char_driver (const char *text, unsigned major);

/* Which driver a GPU node must belong to. */
enum capsa_gpu_driver { GPU_DRIVER_NVIDIA, GPU_DRIVER_KFD, GPU_DRIVER_DRM };
/* May a node of DRIVER have the major whose /proc/devices name is NAME
 * (NULL: not registered)?  Registered to this driver ("nvidia...", "kfd",
 * "drm"), or to nobody (nothing answers behind it: opening it fails with
 * ENXIO).  A major registered to any other driver is refused. */
bool capsa_gpu_major_ok (enum capsa_gpu_driver driver, const char *name);

/* Is VALUE a well-formed --gpu-file ("lib:", "lib32:", "bin:", "file:" or
 * "dev:" followed by an absolute path without "." or ".." components, or
 * "dev:none")?  0 or -1. */
int capsa_gpu_file_valid (const char *value);

/* Starter side (gpu.c), called from capsa_container_prepare as the user:
 * the files (before the user's binds, so those can cover them) and the
 * devices (after them, when the container's /dev is decided). */
int capsa_gpu_prepare_files (struct capsa_container *c, capsa_error_t *err);
int capsa_gpu_prepare_devices (struct capsa_container *c, bool no_dev, bool minimal_dev, capsa_error_t *err);

#endif
