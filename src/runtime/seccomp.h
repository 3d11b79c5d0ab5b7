/* Seccomp profiles in the OCI/Docker JSON format, compiled with libseccomp
 * into a BPF program.
 *
 * Compiling (parsing JSON) happens only in unprivileged processes: the
 * front end for the user's --security seccomp:PATH, and a child of the
 * starter that has dropped to the user for the administrator's
 * 'seccomp profile'.  The starter only checks the size of the finished
 * program and hands it to the kernel, last, just before exec. */
#ifndef CAPSA_SECCOMP_H
#define CAPSA_SECCOMP_H

#include <stddef.h>

#include "lib/error.h"

/* Compile the profile TEXT (LEN bytes; NAME for messages) and write the
 * BPF program to OUT_FD.  Unknown syscall names are skipped (said with -v).
 * Malformed JSON gives "NAME: invalid JSON at line L, column C: ...". */
int capsa_seccomp_compile (const char *name, const char *text, size_t len, int out_fd, capsa_error_t *err);

/* Compile the profile file PATH (read with the caller's rights) into a new
 * sealed memfd; returns the descriptor. */
int capsa_seccomp_compile_file (const char *path, capsa_error_t *err);

/* Read a compiled program from FD (at most 4096 instructions). */
int capsa_seccomp_read (int fd, void **prog, size_t *len, capsa_error_t *err);

/* Load a program read with capsa_seccomp_read into the calling thread. */
int capsa_seccomp_load (const void *prog, size_t len, capsa_error_t *err);

#endif
