/* libFuzzer target: the seccomp profile compiler (OCI/Docker JSON), which
 * turns user-supplied profiles into BPF before the starter loads them.
 *
 * fuzz-sources: src/policy/seccomp_compile.c
 * fuzz-libs: -ljson-c -lseccomp -lcap
 * fuzz-seeds: /usr/share/containers/seccomp.json
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "policy/seccomp_compile.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static int sink = -1;
    capsa_error_t err = NULL;
    if (sink < 0)
        sink = open ("/dev/null", O_WRONLY | O_CLOEXEC);
    /* Half the inputs with every capability unknown, half with some known
     * present and some absent, on a fixed kernel version. */
    static const struct capsa_seccomp_target t = { .caps_have = UINT64_C (1) << 21, .caps_maybe = 1,
                                                   .kernel_major = 5, .kernel_minor = 10 };
    capsa_seccomp_compile ("fuzz.json", (const char *) data, size, size % 2 ? &t : NULL, sink, &err);
    capsa_error_free (&err);
    return 0;
}
