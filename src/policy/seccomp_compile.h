/* Seccomp profiles in the OCI/Docker JSON format, compiled with libseccomp
 * into a BPF program.  Front end only (bin/capsa, libexec/capsa/tools):
 * this code parses JSON the user chose and is never linked into the
 * setuid starter (`make check` verifies that).
 *
 * What is understood (the format Docker, Podman's containers-common and
 * Apptainer's own profiles use):
 *   defaultAction, defaultErrnoRet; architectures or archMap (the entry of
 *   this machine's architecture adds its sub-architectures); syscalls[]
 *   with name or names, action, errnoRet, args[] (index, value, valueTwo,
 *   op; several conditions on one argument index are ORed, one rule each,
 *   as runc does), and includes / excludes with arches (Go names: amd64,
 *   arm64, x86, ...), caps and minKernel ("MAJOR.MINOR").
 * A rule applies when every includes condition holds and no excludes
 * condition does.  Conditions on capabilities are decided against
 * struct capsa_seccomp_target: a capability the container may or may not
 * get (the starter decides grants later) makes the condition unknown, and
 * a rule whose condition is unknown is kept when it denies (ERRNO, KILL,
 * TRAP, TRACE) and left out when it allows (ALLOW, LOG), so an unknown
 * capability only ever makes the filter stricter. */
#ifndef CAPSA_SECCOMP_COMPILE_H
#define CAPSA_SECCOMP_COMPILE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

/* What a profile's conditions are evaluated against.  Capabilities are
 * bit masks by number (bit 21 = CAP_SYS_ADMIN); a capability in neither
 * mask is one the container certainly lacks. */
struct capsa_seccomp_target {
    uint64_t caps_have;  /* the container certainly has these */
    uint64_t caps_maybe; /* it may have these */
    unsigned kernel_major, kernel_minor; /* 0, 0: the running kernel */
};

/* Compile the profile TEXT (LEN bytes; NAME for messages) and write the
 * BPF program to OUT_FD.  T NULL: every capability unknown, the running
 * kernel.  Unknown syscall names are skipped (said with -v).  Malformed
 * JSON gives "NAME: invalid JSON at line L, column C: ...". */
int capsa_seccomp_compile (const char *name, const char *text, size_t len, const struct capsa_seccomp_target *t,
                           int out_fd, capsa_error_t *err);

/* Compile the profile file PATH (read with the caller's rights) into a new
 * sealed memfd; returns the descriptor. */
int capsa_seccomp_compile_file (const char *path, const struct capsa_seccomp_target *t, capsa_error_t *err);

#endif
