/* --env-file's first evaluation (src/runtime/envfile.c). */
#ifndef CAPSA_ENVFILE_H
#define CAPSA_ENVFILE_H

#include "lib/error.h"
#include "lib/utils.h"

/* Evaluate TEXT, the contents of the --env-file PATH (for messages), with
 * VARS (KEY=VALUE, may be NULL) visible; each variable it assigns is set in
 * OUT as KEY=VALUE (replacing an earlier value of KEY in OUT, keeping its
 * place).  An error names PATH and the line. */
int capsa_envfile_parse (const char *text, const char *path, const struct strv *vars, struct strv *out,
                         capsa_error_t *err);

#endif
