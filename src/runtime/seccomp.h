/* Compiled seccomp programs: what the starter does with them.
 *
 * The starter never parses a JSON profile.  The front end compiles the
 * user's --security seccomp:PATH (src/policy/seccomp_compile.c) into a
 * sealed memfd passed as --seccomp-fd=N; the administrator's 'seccomp
 * profile' is compiled by `tools seccomp-compile`, run by the starter in a
 * child that has dropped to the user (root: to nobody).  The starter only
 * checks the size of the finished program and hands it to the kernel, last,
 * just before exec. */
#ifndef CAPSA_SECCOMP_H
#define CAPSA_SECCOMP_H

#include <stddef.h>

#include "lib/error.h"

/* Read a compiled program from FD (at most 4096 instructions). */
int capsa_seccomp_read (int fd, void **prog, size_t *len, capsa_error_t *err);

/* Load a program read with capsa_seccomp_read into the calling thread. */
int capsa_seccomp_load (const void *prog, size_t len, capsa_error_t *err);

#endif
