/* Seccomp profiles in the OCI/Docker JSON format, compiled with libseccomp
 * into a BPF program.  Front end only (bin/capsa, libexec/capsa/tools):
 * this code parses JSON the user chose and is never linked into the
 * setuid starter (`make check` verifies that). */
#ifndef CAPSA_SECCOMP_COMPILE_H
#define CAPSA_SECCOMP_COMPILE_H

#include <stddef.h>

#include "lib/error.h"

/* Compile the profile TEXT (LEN bytes; NAME for messages) and write the
 * BPF program to OUT_FD.  Unknown syscall names are skipped (said with -v).
 * Malformed JSON gives "NAME: invalid JSON at line L, column C: ...". */
int capsa_seccomp_compile (const char *name, const char *text, size_t len, int out_fd, capsa_error_t *err);

/* Compile the profile file PATH (read with the caller's rights) into a new
 * sealed memfd; returns the descriptor. */
int capsa_seccomp_compile_file (const char *path, capsa_error_t *err);

#endif
