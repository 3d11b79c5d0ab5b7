/* Apptainer directives capsa accepts without applying them (confcompat.c).
 * Private to conf.c. */
#ifndef CAPSA_CONFCOMPAT_H
#define CAPSA_CONFCOMPAT_H

#include <stdbool.h>

#include "lib/error.h"
#include "runtime/conf.h"

/* If KEY is one of those directives: check VALUE (an error names
 * NAME:LINENO, the value and the allowed values), add a warning to
 * c->warnings when capsa behaves differently from what VALUE asks, and
 * return 1.  Return 0 when KEY is not one of them. */
int capsa_conf_compat (struct capsa_conf *c, const char *name, long lineno, const char *key, const char *value,
                       capsa_error_t *err);

/* Is KEY one of those directives? */
bool capsa_conf_compat_known (const char *key);

#endif
