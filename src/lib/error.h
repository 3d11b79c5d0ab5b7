/* capsa error convention.
 *
 * Library functions never print and never exit.  On failure they return a
 * negative value and fill *err with a heap-allocated error; the caller either
 * handles it, adds context with capsa_error_wrap(), or hands it up.  Only the
 * main() of a program (and the starter's fatal path) turns an error into a
 * "FATAL:" line and exit status 255 (capsa_error_fatal()).
 *
 * The errno captured with the error (code) is informative only; callers that
 * need to tell errors apart check it, never the message text.
 */
#ifndef CAPSA_ERROR_H
#define CAPSA_ERROR_H

#include <stdarg.h>
#include <stdnoreturn.h>

#define CAPSA_EXIT_FATAL 255

struct capsa_error_s {
    int code;  /* errno value, 0 when not applicable */
    char *msg; /* owned */
};
typedef struct capsa_error_s *capsa_error_t;

/* Fill *err (which must be NULL) with a new error; append ": strerror(errnum)"
 * when errnum is not 0.  Always returns -1 so callers can write
 * `return capsa_error_make (err, errno, "open %s", path);`. */
int capsa_error_make (capsa_error_t *err, int errnum, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Like capsa_error_make, but the message is taken as is and CODE (an errno
 * value callers may test, such as EKEYREJECTED) is only recorded, not
 * appended as text.  Returns -1. */
int capsa_error_code (capsa_error_t *err, int code, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

/* Prefix the existing error with context: "CONTEXT: old message".
 * Returns -1. */
int capsa_error_wrap (capsa_error_t *err, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

void capsa_error_free (capsa_error_t *err);

/* Print "FATAL:   MSG" to stderr, free the error and exit 255. */
noreturn void capsa_error_fatal (capsa_error_t *err);

#endif
