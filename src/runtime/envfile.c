/* --env-file: a shell file of variable assignments, read as Apptainer reads
 * it.  Apptainer evaluates the file with an embedded shell interpreter in
 * which running commands and opening files are disabled, with every
 * variable exported ("set -a") and the caller's environment visible; the
 * variables it ends up with are then injected into the container like
 * APPTAINERENV_ ones (and so evaluated a second time, inside, unless
 * --no-eval).  capsa does the first evaluation here, in C, after the final
 * privilege drop: it understands what such files contain and refuses the
 * rest with the line number:
 *
 *   NAME=word [NAME=word...]    export NAME[=word]...    # comments
 *   words: unquoted text, \x escapes, '...', "..." (escapes \$ \` \" \\
 *   and line continuation), $NAME ${NAME} ${NAME:-w} ${NAME-w} ${NAME:+w}
 *   ${NAME+w}, spanning lines inside quotes; ';' separates commands.
 *   Command substitution ($(...) `...`), arithmetic and any command are
 *   refused, as the interpreter's disabled execution refuses them.
 *
 * Variables are looked up in the file's own earlier assignments, then in
 * VARS (the caller's environment).  Apptainer leaves out the shell's
 * read-only variables (EUID GID HOME IFS OPTIND PWD UID); so does capsa. */
#include "runtime/envfile.h"

#include <ctype.h>
#include <string.h>

/* A value may not grow past this by expansions (A=$A$A doubles it). */
#define ENVFILE_MAX_VALUE (1 << 20)

struct parser {
    const char *s;         /* current position */
    long line;
    const char *path;
    const struct strv *vars; /* the caller's environment (KEY=VALUE) */
    struct strv *out;      /* assignments so far (KEY=VALUE, unique keys) */
    capsa_error_t *err;
};

static bool
name_start (int c)
{
    return isalpha (c) || c == '_';
}

static bool
name_char (int c)
{
    return isalnum (c) || c == '_';
}

static int
fail (struct parser *p, const char *what)
{
    return capsa_error_make (p->err, 0, "--env-file %s: line %ld: %s", p->path, p->line, what);
}

static const char *
lookup_in (const struct strv *list, const char *name, size_t len)
{
    const char *found = NULL;
    for (size_t i = 0; i < list->n; i++)
        if (strncmp (list->v[i], name, len) == 0 && list->v[i][len] == '=')
            found = list->v[i] + len + 1;
    return found;
}

/* The value of NAME (LEN bytes), or NULL when unset. */
static const char *
lookup (struct parser *p, const char *name, size_t len)
{
    const char *v = lookup_in (p->out, name, len);
    return v ? v : p->vars ? lookup_in (p->vars, name, len) : NULL;
}

static void
append (char **buf, size_t *len, const char *s, size_t n)
{
    cleanup_free char *piece = strndup (s, n);
    if (piece == NULL)
        abort ();
    str_append (buf, len, piece);
}

static int parse_word (struct parser *p, char **buf, size_t *len, char stop);

/* After '$': a parameter expansion into BUF (no field splitting: the
 * words are values of assignments). */
static int
parse_dollar (struct parser *p, char **buf, size_t *len)
{
    const char *s = p->s;
    if (*s == '(')
        return fail (p, "command substitution and arithmetic ($(...)) are not allowed");
    if (name_start ((unsigned char) *s)) {
        const char *start = s;
        while (name_char ((unsigned char) *s))
            s++;
        const char *v = lookup (p, start, (size_t) (s - start));
        if (v)
            str_append (buf, len, v);
        p->s = s;
        return *len > ENVFILE_MAX_VALUE ? fail (p, "a value is longer than 1 MiB") : 0;
    }
    if (*s != '{') {
        /* A lone '$' (or "$1", "$$"...: special parameters are not set in
         * such a file; a lone '$' is literal, as in the shell). */
        if (*s != '\0' && (isdigit ((unsigned char) *s) || strchr ("@*#?-$!", *s) != NULL)) {
            p->s = s + 1;
            return 0;
        }
        str_append (buf, len, "$");
        return 0;
    }
    s++;
    if (!name_start ((unsigned char) *s))
        return fail (p, "only ${NAME}, ${NAME:-word}, ${NAME-word}, ${NAME:+word} and ${NAME+word} are allowed");
    const char *start = s;
    while (name_char ((unsigned char) *s))
        s++;
    size_t nlen = (size_t) (s - start);
    const char *v = lookup (p, start, nlen);
    if (*s == '}') {
        if (v)
            str_append (buf, len, v);
        p->s = s + 1;
        return *len > ENVFILE_MAX_VALUE ? fail (p, "a value is longer than 1 MiB") : 0;
    }
    bool colon = *s == ':';
    if (colon)
        s++;
    char op = *s;
    if (op != '-' && op != '+')
        return fail (p, "only ${NAME}, ${NAME:-word}, ${NAME-word}, ${NAME:+word} and ${NAME+word} are allowed");
    s++;
    /* The word up to the matching '}', expanded. */
    p->s = s;
    cleanup_free char *word = NULL;
    size_t wlen = 0;
    str_append (&word, &wlen, "");
    if (parse_word (p, &word, &wlen, '}') < 0)
        return -1;
    if (*p->s != '}')
        return fail (p, "missing '}'");
    p->s++;
    bool set = v != NULL && (!colon || *v != '\0');
    if (op == '-')
        str_append (buf, len, set ? v : word);
    else if (set)
        str_append (buf, len, word);
    return *len > ENVFILE_MAX_VALUE ? fail (p, "a value is longer than 1 MiB") : 0;
}

/* "..." from just after the opening quote. */
static int
parse_dquoted (struct parser *p, char **buf, size_t *len)
{
    for (;;) {
        const char *s = p->s;
        switch (*s) {
        case '\0':
            return fail (p, "unterminated double quote");
        case '"':
            p->s = s + 1;
            return 0;
        case '`':
            return fail (p, "command substitution (`...`) is not allowed");
        case '\\':
            if (s[1] == '\n') {
                p->line++;
                p->s = s + 2;
            } else if (s[1] != '\0' && strchr ("$`\"\\", s[1]) != NULL) {
                append (buf, len, s + 1, 1);
                p->s = s + 2;
            } else {
                append (buf, len, s, 1);
                p->s = s + 1;
            }
            break;
        case '$':
            p->s = s + 1;
            if (parse_dollar (p, buf, len) < 0)
                return -1;
            break;
        default:
            if (*s == '\n')
                p->line++;
            append (buf, len, s, 1);
            p->s = s + 1;
        }
    }
}

/* One word into BUF: up to a blank, newline, ';' or end (or STOP, for
 * the word of ${NAME-word}, where blanks are part of the word). */
static int
parse_word (struct parser *p, char **buf, size_t *len, char stop)
{
    for (;;) {
        const char *s = p->s;
        if (*s == '\0' || (stop && *s == stop))
            return 0;
        if (!stop && (*s == ' ' || *s == '\t' || *s == '\n' || *s == ';'))
            return 0;
        if (!stop && strchr ("&|<>()", *s) != NULL)
            return fail (p, "only variable assignments are allowed (found a shell operator)");
        switch (*s) {
        case '\'': {
            const char *end = strchr (s + 1, '\'');
            if (end == NULL)
                return fail (p, "unterminated single quote");
            for (const char *q = s + 1; q < end; q++)
                if (*q == '\n')
                    p->line++;
            append (buf, len, s + 1, (size_t) (end - s - 1));
            p->s = end + 1;
            break;
        }
        case '"':
            p->s = s + 1;
            if (parse_dquoted (p, buf, len) < 0)
                return -1;
            break;
        case '`':
            return fail (p, "command substitution (`...`) is not allowed");
        case '\\':
            if (s[1] == '\n') {
                p->line++;
                p->s = s + 2;
            } else if (s[1] != '\0') {
                append (buf, len, s + 1, 1);
                p->s = s + 2;
            } else {
                p->s = s + 1;
            }
            break;
        case '$':
            p->s = s + 1;
            if (parse_dollar (p, buf, len) < 0)
                return -1;
            break;
        default:
            if (*s == '\n')
                p->line++;
            append (buf, len, s, 1);
            p->s = s + 1;
        }
    }
}

static bool
read_only_name (const char *name, size_t len)
{
    static const char *const ro[] = { "EUID", "GID", "HOME", "IFS", "OPTIND", "PWD", "UID" };
    for (size_t i = 0; i < ARRAY_SIZE (ro); i++)
        if (strlen (ro[i]) == len && strncmp (ro[i], name, len) == 0)
            return true;
    return false;
}

static void
set_var (struct strv *out, const char *name, size_t nlen, const char *value)
{
    for (size_t i = 0; i < out->n; i++) {
        if (strncmp (out->v[i], name, nlen) == 0 && out->v[i][nlen] == '=') {
            free (out->v[i]);
            out->v[i] = xasprintf ("%.*s=%s", (int) nlen, name, value);
            return;
        }
    }
    strv_push_take (out, xasprintf ("%.*s=%s", (int) nlen, name, value));
}

/* One command: [export] NAME=word... or export NAME... */
static int
parse_command (struct parser *p)
{
    bool is_export = false;
    bool first = true;
    for (;;) {
        while (*p->s == ' ' || *p->s == '\t')
            p->s++;
        const char *s = p->s;
        if (*s == '\0' || *s == '\n' || *s == ';' || *s == '#')
            return 0;
        if (first && strncmp (s, "export", 6) == 0 && (s[6] == ' ' || s[6] == '\t')) {
            is_export = true;
            p->s = s + 6;
            first = false;
            continue;
        }
        first = false;
        const char *start = s;
        while (name_char ((unsigned char) *s))
            s++;
        size_t nlen = (size_t) (s - start);
        bool is_name = nlen > 0 && name_start ((unsigned char) *start);
        if (is_name && *s == '=') {
            cleanup_free char *value = NULL;
            size_t vlen = 0;
            str_append (&value, &vlen, "");
            p->s = s + 1;
            if (parse_word (p, &value, &vlen, '\0') < 0)
                return -1;
            if (!read_only_name (start, nlen))
                set_var (p->out, start, nlen, value);
            continue;
        }
        if (is_export && is_name && (*s == ' ' || *s == '\t' || *s == '\n' || *s == ';' || *s == '\0')) {
            /* "export NAME": everything is exported already; a variable
             * of the caller's environment named here becomes one of the
             * file's, as with set -a. */
            const char *v = lookup_in (p->out, start, nlen) ? NULL : p->vars ? lookup_in (p->vars, start, nlen) : NULL;
            if (v && !read_only_name (start, nlen))
                set_var (p->out, start, nlen, v);
            p->s = s;
            continue;
        }
        cleanup_free char *word = strndup (start, strcspn (start, " \t\n;"));
        cleanup_free char *msg
            = xasprintf ("'%s' is not a variable assignment (only NAME=value lines are allowed)", word ? word : "");
        return fail (p, msg);
    }
}

int
capsa_envfile_parse (const char *text, const char *path, const struct strv *vars, struct strv *out, capsa_error_t *err)
{
    struct parser p = { .s = text, .line = 1, .path = path, .vars = vars, .out = out, .err = err };
    for (;;) {
        if (parse_command (&p) < 0)
            return -1;
        if (*p.s == '#')
            p.s += strcspn (p.s, "\n");
        if (*p.s == '\0')
            return 0;
        if (*p.s == '\n')
            p.line++;
        p.s++; /* '\n' or ';' */
    }
}
