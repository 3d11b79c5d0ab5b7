#include "error.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *
vformat (const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf (&s, fmt, ap) < 0)
        return NULL;
    return s;
}

int
capsa_error_make (capsa_error_t *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    char *base, *full = NULL;

    if (err == NULL)
        return -1;
    capsa_error_free (err);
    va_start (ap, fmt);
    base = vformat (fmt, ap);
    va_end (ap);

    *err = calloc (1, sizeof (**err));
    if (*err == NULL || base == NULL) {
        /* Without memory for a message there is no way to say what went
         * wrong: end here rather than hand a caller a NULL error. */
        static const char msg[] = "FATAL:   out of memory\n";
        (void) !write (STDERR_FILENO, msg, sizeof (msg) - 1);
        abort ();
    }
    (*err)->code = errnum;
    if (base != NULL && errnum != 0 && asprintf (&full, "%s: %s", base, strerror (errnum)) >= 0) {
        free (base);
        base = full;
    }
    (*err)->msg = base;
    return -1;
}

int
capsa_error_code (capsa_error_t *err, int code, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (err == NULL)
        return -1;
    va_start (ap, fmt);
    msg = vformat (fmt, ap);
    va_end (ap);
    capsa_error_make (err, 0, "%s", msg ? msg : "out of memory");
    free (msg);
    if (*err)
        (*err)->code = code;
    return -1;
}

int
capsa_error_wrap (capsa_error_t *err, const char *fmt, ...)
{
    va_list ap;
    char *ctx, *full = NULL;

    if (err == NULL || *err == NULL)
        return -1;
    va_start (ap, fmt);
    ctx = vformat (fmt, ap);
    va_end (ap);
    if (ctx != NULL && asprintf (&full, "%s: %s", ctx, (*err)->msg ? (*err)->msg : "") >= 0) {
        free ((*err)->msg);
        (*err)->msg = full;
    }
    free (ctx);
    return -1;
}

void
capsa_error_free (capsa_error_t *err)
{
    if (err == NULL || *err == NULL)
        return;
    free ((*err)->msg);
    free (*err);
    *err = NULL;
}

noreturn void
capsa_error_fatal (capsa_error_t *err)
{
    const char *m = (err && *err && (*err)->msg) ? (*err)->msg : "unknown error";
    capsa_log (CAPSA_LOG_FATAL, "%s", m);
    capsa_error_free (err);
    exit (CAPSA_EXIT_FATAL);
}
