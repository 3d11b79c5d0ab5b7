/* Minimal TAP output for capsa's C unit tests: each binary prints
 * "ok N - name" / "not ok N - name" and "1..N", and exits 1 if any check
 * failed.  tests/run.sh counts the lines. */
#ifndef CAPSA_TAP_H
#define CAPSA_TAP_H
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define CHECK(cond, name)                                                         \
    do {                                                                          \
        tap_n++;                                                                  \
        if (cond)                                                                 \
            printf ("ok %d - %s\n", tap_n, name);                                 \
        else {                                                                    \
            tap_failed++;                                                         \
            printf ("not ok %d - %s (%s:%d: %s)\n", tap_n, name, __FILE__,        \
                    __LINE__, #cond);                                             \
        }                                                                         \
    } while (0)

#define CHECK_STR(a, b, name) CHECK ((a) != NULL && strcmp ((a), (b)) == 0, name)

static inline int
tap_done (void)
{
    printf ("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
#endif
