/* Messages to the user, Apptainer-style: "FATAL:   ", "ERROR:   ",
 * "WARNING: ", "INFO:    ", "VERBOSE: ", "DEBUG:   " on stderr.
 * -q shows only errors, -v adds VERBOSE, -d adds DEBUG. */
#ifndef CAPSA_LOG_H
#define CAPSA_LOG_H

#include <stdbool.h>
#include <stdnoreturn.h>

enum capsa_log_level {
    CAPSA_LOG_FATAL = 0,
    CAPSA_LOG_ERROR,
    CAPSA_LOG_WARNING,
    CAPSA_LOG_INFO,
    CAPSA_LOG_VERBOSE,
    CAPSA_LOG_DEBUG,
};

void capsa_log_set_level (enum capsa_log_level level);
/* Colour the prefixes (Apptainer's colours; off unless asked for: the
 * front end asks when stderr is a terminal and --nocolor is not given). */
void capsa_log_set_color (bool on);
enum capsa_log_level capsa_log_get_level (void);
void capsa_log (enum capsa_log_level level, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* Print "FATAL:   ..." and exit 255. For main() and the starter only. */
noreturn void capsa_die (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

#define fatalf(...) capsa_die (__VA_ARGS__)
#define errorf(...) capsa_log (CAPSA_LOG_ERROR, __VA_ARGS__)
#define warnf(...) capsa_log (CAPSA_LOG_WARNING, __VA_ARGS__)
#define infof(...) capsa_log (CAPSA_LOG_INFO, __VA_ARGS__)
#define verbosef(...) capsa_log (CAPSA_LOG_VERBOSE, __VA_ARGS__)
#define debugf(...) capsa_log (CAPSA_LOG_DEBUG, __VA_ARGS__)

#endif
