#include "log.h"
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum capsa_log_level current_level = CAPSA_LOG_INFO;
static bool use_color;

/* Apptainer's colours for the levels on a terminal. */
static const char *const colors[] = {
    [CAPSA_LOG_FATAL] = "\033[31m", [CAPSA_LOG_ERROR] = "\033[31m", [CAPSA_LOG_WARNING] = "\033[33m",
    [CAPSA_LOG_INFO] = "\033[34m",  [CAPSA_LOG_VERBOSE] = "",         [CAPSA_LOG_DEBUG] = "",
};

void
capsa_log_set_color (bool on)
{
    use_color = on;
}

static const char *const prefixes[] = {
    [CAPSA_LOG_FATAL] = "FATAL:   ",
    [CAPSA_LOG_ERROR] = "ERROR:   ",
    [CAPSA_LOG_WARNING] = "WARNING: ",
    [CAPSA_LOG_INFO] = "INFO:    ",
    [CAPSA_LOG_VERBOSE] = "VERBOSE: ",
    [CAPSA_LOG_DEBUG] = "DEBUG:   ",
};

void
capsa_log_set_level (enum capsa_log_level level)
{
    current_level = level;
}

enum capsa_log_level
capsa_log_get_level (void)
{
    return current_level;
}

static void
vlog (enum capsa_log_level level, const char *fmt, va_list ap)
{
    char buf[4096];
    int n;

    if (level > current_level && level > CAPSA_LOG_ERROR)
        return;
    /* One write per message so lines from several processes do not mix. */
    /* In colour, the whole line is coloured (the text stays one piece:
     * "FATAL:   message" still reads and matches as without colour). */
    bool color = use_color && colors[level][0];
    n = snprintf (buf, sizeof (buf), "%s%s", color ? colors[level] : "", prefixes[level]);
    if (n < 0)
        return;
    vsnprintf (buf + n, sizeof (buf) - (size_t) n - 8, fmt, ap);
    n = (int) strlen (buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    snprintf (buf + n, sizeof (buf) - (size_t) n, "%s\n", color ? "\033[0m" : "");
    n = (int) strlen (buf);
    fputs (buf, stderr);
    fflush (stderr);
}

void
capsa_log (enum capsa_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vlog (level, fmt, ap);
    va_end (ap);
}

noreturn void
capsa_die (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vlog (CAPSA_LOG_FATAL, fmt, ap);
    va_end (ap);
    exit (CAPSA_EXIT_FATAL);
}
