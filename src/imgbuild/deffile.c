/* Definition-file parser: see deffile.h.
 *
 * One pass over the lines.  Until the first section line the text is the
 * header; a section line is any line whose first word starts with '%' (as
 * in Apptainer, so an indented "%d" inside a script starts a section too).
 * Errors carry "NAME:LINE: " so that the user can jump to the line. */
#include "imgbuild/deffile.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/utils.h"

static const char *const section_names[DEF_NSECTIONS] = {
    [DEF_HELP] = "help",       [DEF_SETUP] = "setup",         [DEF_FILES] = "files",
    [DEF_LABELS] = "labels",   [DEF_ENVIRONMENT] = "environment", [DEF_POST] = "post",
    [DEF_RUNSCRIPT] = "runscript", [DEF_TEST] = "test",       [DEF_STARTSCRIPT] = "startscript",
};

/* Apptainer's sections that capsa knows but does not implement. */
static const char *const unsupported_sections[] = {
    "pre", "arguments", "appinstall", "applabels", "appfiles", "appenv", "apptest", "apphelp", "apprun", "appstart",
};

/* Apptainer's header keywords (validHeaders); "otherurlN" takes any N. */
static const char *const valid_headers[] = {
    "bootstrap", "from",    "includecmd", "mirrorurl", "updateurl",   "osversion", "include", "library",
    "registry",  "namespace", "stage",    "product",   "user",        "regcode",   "productpgp", "registerurl",
    "modules",   "fingerprints", "confurl", "setopt",
};

const char *
deffile_section_name (enum def_section_kind k)
{
    static const char *const names[DEF_NSECTIONS] = {
        [DEF_HELP] = "%help",     [DEF_SETUP] = "%setup",         [DEF_FILES] = "%files",
        [DEF_LABELS] = "%labels", [DEF_ENVIRONMENT] = "%environment", [DEF_POST] = "%post",
        [DEF_RUNSCRIPT] = "%runscript", [DEF_TEST] = "%test",     [DEF_STARTSCRIPT] = "%startscript",
    };
    return (unsigned) k < DEF_NSECTIONS ? names[k] : "%?";
}

static int __attribute__ ((format (printf, 4, 5)))
def_error (capsa_error_t *err, const char *name, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start (ap, fmt);
    vsnprintf (msg, sizeof (msg), fmt, ap);
    va_end (ap);
    if (line > 0)
        return capsa_error_make (err, 0, "%s:%d: %s", name, line, msg);
    return capsa_error_make (err, 0, "%s: %s", name, msg);
}

/* A printable, bounded copy of user text for messages. */
static char *
def_quote (const char *s, size_t n)
{
    size_t len = n > 64 ? 64 : n;
    char *q = xmalloc (len + 4);
    for (size_t i = 0; i < len; i++)
        q[i] = isprint ((unsigned char) s[i]) ? s[i] : '?';
    if (n > len) {
        memcpy (q + len, "...", 3);
        len += 3;
    }
    q[len] = '\0';
    return q;
}

static char *
def_strndup (const char *s, size_t n)
{
    char *r = xmalloc (n + 1);
    memcpy (r, s, n);
    r[n] = '\0';
    return r;
}

static bool
def_space (char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

/* [*s, *e) trimmed of white space on both ends. */
static void
def_trim (const char **s, const char **e)
{
    while (*s < *e && def_space (**s))
        (*s)++;
    while (*e > *s && def_space ((*e)[-1]))
        (*e)--;
}

static void
kv_push (struct def_kv **v, size_t *n, char *key, char *value, int line)
{
    *v = xrealloc (*v, (*n + 1) * sizeof (**v));
    (*v)[*n] = (struct def_kv) { .key = key, .value = value, .line = line };
    (*n)++;
}

static bool
header_key_valid (const char *key)
{
    size_t len = strlen (key), digits = 0;

    for (size_t i = 0; i < ARRAY_SIZE (valid_headers); i++)
        if (strcmp (key, valid_headers[i]) == 0)
            return true;
    while (digits < len && isdigit ((unsigned char) key[len - 1 - digits]))
        digits++;
    return digits > 0 && len - digits == strlen ("otherurl") && strncmp (key, "otherurl", 8) == 0;
}

/* ---- header ----------------------------------------------------------------- */

struct def_parser {
    struct deffile *d;
    capsa_error_t *err;
    /* a header value continued with a trailing backslash */
    char *cont_key;
    char *cont_val;
    int cont_line;
};

static int
header_finish_cont (struct def_parser *p)
{
    if (p->cont_key == NULL)
        return 0;
    kv_push (&p->d->header, &p->d->nheader, p->cont_key, p->cont_val, p->cont_line);
    p->cont_key = p->cont_val = NULL;
    return 0;
}

static int
header_line (struct def_parser *p, const char *s, const char *e, int line)
{
    const char *colon, *hash;
    char *key, *val;
    size_t vlen;
    int kline = line;

    def_trim (&s, &e);
    if (s == e || *s == '#')
        return header_finish_cont (p);
    /* Comments end a header line ("From: x  # a comment"). */
    hash = memchr (s, '#', (size_t) (e - s));
    if (hash != NULL) {
        e = hash;
        def_trim (&s, &e);
    }
    if (p->cont_key != NULL) {
        char *joined = xasprintf ("%s%.*s", p->cont_val, (int) (e - s), s);
        free (p->cont_val);
        key = p->cont_key;
        val = joined;
        kline = p->cont_line;
        p->cont_key = p->cont_val = NULL;
    } else {
        colon = memchr (s, ':', (size_t) (e - s));
        if (colon == NULL) {
            cleanup_free char *q = def_quote (s, (size_t) (e - s));
            return def_error (p->err, p->d->name, line, "header line '%s' is not 'Keyword: value'", q);
        }
        const char *ks = s, *ke = colon, *vs = colon + 1, *ve = e;
        def_trim (&ks, &ke);
        def_trim (&vs, &ve);
        key = def_strndup (ks, (size_t) (ke - ks));
        for (char *c = key; *c; c++)
            *c = (char) tolower ((unsigned char) *c);
        if (!header_key_valid (key)) {
            cleanup_free char *q = def_quote (ks, (size_t) (ke - ks));
            free (key);
            return def_error (p->err, p->d->name, line, "unknown header keyword '%s'", q);
        }
        val = def_strndup (vs, (size_t) (ve - vs));
    }
    vlen = strlen (val);
    if (vlen > 0 && val[vlen - 1] == '\\') {
        val[--vlen] = '\0';
        if (vlen >= 2 && val[vlen - 2] == '\\' && val[vlen - 1] == 'n') {
            val[vlen - 2] = '\n';
            val[vlen - 1] = '\0';
        }
        p->cont_key = key;
        p->cont_val = val;
        p->cont_line = kline;
        return 0;
    }
    kv_push (&p->d->header, &p->d->nheader, key, val, kline);
    return 0;
}

/* ---- sections ----------------------------------------------------------------- */

static void
section_append (struct def_section *sec, const char *s, size_t n)
{
    size_t old = sec->body ? strlen (sec->body) : 0;
    sec->body = xrealloc (sec->body, old + n + 2);
    memcpy (sec->body + old, s, n);
    sec->body[old + n] = '\n';
    sec->body[old + n + 1] = '\0';
}

/* "%name args": start a section.  Returns the section index or -1. */
static int
section_start (struct def_parser *p, const char *s, const char *e, int line)
{
    const char *n, *ne, *as, *ae;
    cleanup_free char *name = NULL;

    def_trim (&s, &e);
    while (s < e && *s == '%')
        s++;
    n = ne = s;
    while (ne < e && !def_space (*ne))
        ne++;
    as = ne;
    ae = e;
    def_trim (&as, &ae);
    name = def_strndup (n, (size_t) (ne - n));
    for (char *c = name; *c; c++)
        *c = (char) tolower ((unsigned char) *c);
    for (int k = 0; k < DEF_NSECTIONS; k++) {
        if (strcmp (name, section_names[k]) != 0)
            continue;
        struct def_section *sec = &p->d->sec[k];
        if (!sec->present) {
            sec->present = true;
            sec->line = line;
            sec->body = xstrdup ("");
        }
        free (sec->args);
        sec->args = def_strndup (as, (size_t) (ae - as));
        return k;
    }
    cleanup_free char *q = def_quote (n, (size_t) (ne - n));
    for (size_t i = 0; i < ARRAY_SIZE (unsupported_sections); i++)
        if (strcmp (name, unsupported_sections[i]) == 0)
            return def_error (p->err, p->d->name, line, "section '%%%s' is not supported by capsa", q);
    return def_error (p->err, p->d->name, line, "unknown section '%%%s'", q);
}

/* Split a %files line into at most two words; "..." and '...' quote. */
static int
files_line (struct def_parser *p, const char *s, const char *e, int line)
{
    char *words[2] = { NULL, NULL };
    int nw = 0;

    def_trim (&s, &e);
    if (s == e || *s == '#')
        return 0;
    while (s < e) {
        const char *ws, *we;
        if (*s == '"' || *s == '\'') {
            const char *close = memchr (s + 1, *s, (size_t) (e - s - 1));
            if (close == NULL) {
                free (words[0]);
                free (words[1]);
                return def_error (p->err, p->d->name, line, "%%files: unterminated quote");
            }
            ws = s + 1;
            we = close;
            s = close + 1;
        } else {
            ws = s;
            while (s < e && !def_space (*s))
                s++;
            we = s;
        }
        if (nw == 2) {
            free (words[0]);
            free (words[1]);
            return def_error (p->err, p->d->name, line, "%%files: more than a source and a destination (quote paths with spaces)");
        }
        words[nw++] = def_strndup (ws, (size_t) (we - ws));
        while (s < e && def_space (*s))
            s++;
    }
    if (words[0][0] == '\0' || (words[1] != NULL && words[1][0] == '\0')) {
        free (words[0]);
        free (words[1]);
        return def_error (p->err, p->d->name, line, "%%files: empty path");
    }
    struct deffile *d = p->d;
    d->files = xrealloc (d->files, (d->nfiles + 1) * sizeof (*d->files));
    d->files[d->nfiles++] = (struct def_file_entry) { .src = words[0], .dst = words[1], .line = line };
    return 0;
}

/* A %labels line: "KEY VALUE" split at the first white space. */
static int
labels_line (struct def_parser *p, const char *s, const char *e, int line)
{
    const char *k, *ke, *vs, *ve;

    def_trim (&s, &e);
    if (s == e || *s == '#')
        return 0;
    k = ke = s;
    while (ke < e && !def_space (*ke))
        ke++;
    vs = ke;
    ve = e;
    def_trim (&vs, &ve);
    kv_push (&p->d->labels, &p->d->nlabels, def_strndup (k, (size_t) (ke - k)), def_strndup (vs, (size_t) (ve - vs)),
             line);
    return 0;
}

/* "-c SHELL" (the only arguments a %setup or %post takes). */
static int
script_shell (struct def_parser *p, enum def_section_kind k)
{
    struct def_section *sec = &p->d->sec[k];
    char *a = sec->args, *sh;

    if (!sec->present || a == NULL || *a == '\0')
        return 0;
    if (strncmp (a, "-c", 2) != 0 || !def_space (a[2]))
        goto bad;
    sh = a + 2;
    while (def_space (*sh))
        sh++;
    if (*sh != '/' || strpbrk (sh, " \t\v\f\r") != NULL)
        goto bad;
    p->d->shell[k] = sh;
    return 0;
bad:;
    cleanup_free char *q = def_quote (a, strlen (a));
    return def_error (p->err, p->d->name, sec->line, "%s: unsupported arguments '%s' (only '-c /path/to/shell')",
                      deffile_section_name (k), q);
}

/* ---- checks of the whole file --------------------------------------------------- */

const struct def_kv *
deffile_header (const struct deffile *d, const char *key)
{
    for (size_t i = d->nheader; i-- > 0;)
        if (strcmp (d->header[i].key, key) == 0)
            return &d->header[i];
    return NULL;
}

static int
check_header (struct def_parser *p)
{
    struct deffile *d = p->d;
    const struct def_kv *bs = deffile_header (d, "bootstrap"), *kv;

    if (bs == NULL)
        return def_error (p->err, d->name, 0, "no 'Bootstrap:' header (capsa builds from 'localimage', 'debootstrap', 'docker', 'docker-archive' and 'oci-archive')");
    d->bootstrap_line = bs->line;
    if (strcasecmp (bs->value, "localimage") == 0) {
        d->bootstrap = DEF_BOOTSTRAP_LOCALIMAGE;
        kv = deffile_header (d, "from");
        if (kv == NULL || kv->value[0] == '\0')
            return def_error (p->err, d->name, bs->line, "'Bootstrap: localimage' needs a 'From:' header naming the image");
        d->from = kv->value;
    } else if (strcasecmp (bs->value, "docker") == 0 || strcasecmp (bs->value, "docker-archive") == 0
               || strcasecmp (bs->value, "oci-archive") == 0) {
        d->bootstrap = strcasecmp (bs->value, "docker") == 0           ? DEF_BOOTSTRAP_DOCKER
                       : strcasecmp (bs->value, "docker-archive") == 0 ? DEF_BOOTSTRAP_DOCKER_ARCHIVE
                                                                       : DEF_BOOTSTRAP_OCI_ARCHIVE;
        kv = deffile_header (d, "from");
        if (kv == NULL || kv->value[0] == '\0')
            return def_error (p->err, d->name, bs->line, "'Bootstrap: %s' needs a 'From:' header naming the image",
                              bs->value);
        d->from = kv->value;
    } else if (strcasecmp (bs->value, "debootstrap") == 0) {
        d->bootstrap = DEF_BOOTSTRAP_DEBOOTSTRAP;
        kv = deffile_header (d, "osversion");
        if (kv == NULL || kv->value[0] == '\0')
            return def_error (p->err, d->name, bs->line, "'Bootstrap: debootstrap' needs an 'OSVersion:' header (e.g. bookworm)");
        d->osversion = kv->value;
        for (const char *c = kv->value; *c; c++)
            if (!isalnum ((unsigned char) *c) && *c != '-' && *c != '_' && *c != '.')
                return def_error (p->err, d->name, kv->line, "invalid OSVersion '%s'", kv->value);
        kv = deffile_header (d, "mirrorurl");
        d->mirror = kv && kv->value[0] ? kv->value : DEF_DEFAULT_MIRROR;
        kv = deffile_header (d, "include");
        /* Include: packages separated by spaces and/or commas. */
        struct strv pk = { 0 };
        cleanup_free char *copy = xstrdup (kv ? kv->value : "");
        char *save = NULL;
        size_t total = 1;
        for (char *w = strtok_r (copy, " \t,", &save); w; w = strtok_r (NULL, " \t,", &save)) {
            for (const char *c = w; *c; c++)
                if (!isalnum ((unsigned char) *c) && strchr ("+-.:_=", *c) == NULL) {
                    int line = kv->line;
                    strv_free (&pk);
                    return def_error (p->err, d->name, line, "invalid package name in Include: '%s'", w);
                }
            strv_push (&pk, w);
            total += strlen (w) + 1;
        }
        d->include = xmalloc (total);
        d->include[0] = '\0';
        for (size_t i = 0; i < pk.n; i++) {
            if (i > 0)
                strcat (d->include, ",");
            strcat (d->include, pk.v[i]);
        }
        strv_free (&pk);
    } else {
        cleanup_free char *q = def_quote (bs->value, strlen (bs->value));
        return def_error (p->err, d->name, bs->line,
                          "bootstrap agent '%s' is not supported (capsa builds from 'localimage', 'debootstrap', 'docker', 'docker-archive' and 'oci-archive')", q);
    }
    return 0;
}

/* ---- entry points --------------------------------------------------------------- */

void
deffile_free (struct deffile *d)
{
    if (d == NULL)
        return;
    free (d->name);
    free (d->raw);
    for (size_t i = 0; i < d->nheader; i++) {
        free (d->header[i].key);
        free (d->header[i].value);
    }
    free (d->header);
    for (size_t i = 0; i < d->nlabels; i++) {
        free (d->labels[i].key);
        free (d->labels[i].value);
    }
    free (d->labels);
    for (size_t i = 0; i < d->nfiles; i++) {
        free (d->files[i].src);
        free (d->files[i].dst);
    }
    free (d->files);
    for (int k = 0; k < DEF_NSECTIONS; k++) {
        free (d->sec[k].args);
        free (d->sec[k].body);
    }
    free (d->include);
    free (d);
}

int
deffile_parse (const char *name, const char *buf, size_t len, struct deffile **out, capsa_error_t *err)
{
    struct deffile *d = xcalloc (1, sizeof (*d));
    struct def_parser p = { .d = d, .err = err };
    int cur = -1, line = 0;
    bool any = false;
    const char *s = buf, *end = buf + len;

    *out = NULL;
    d->name = xstrdup (name ? name : "definition file");
    if (len > DEFFILE_MAX_SIZE) {
        def_error (err, d->name, 0, "definition file larger than %d bytes", DEFFILE_MAX_SIZE);
        goto fail;
    }
    if (memchr (buf, '\0', len) != NULL) {
        def_error (err, d->name, 0, "not a definition file (it contains NUL bytes)");
        goto fail;
    }
    d->raw = def_strndup (buf, len);
    d->rawlen = len;

    while (s < end) {
        const char *nl = memchr (s, '\n', (size_t) (end - s));
        const char *e = nl ? nl : end, *w = s;
        line++;
        if (e > s && e[-1] == '\r')
            e--;
        while (w < e && def_space (*w))
            w++;
        if (w < e && *w == '%') {
            if (header_finish_cont (&p) < 0)
                goto fail;
            cur = section_start (&p, s, e, line);
            if (cur < 0)
                goto fail;
            any = true;
        } else if (cur < 0) {
            if (header_line (&p, s, e, line) < 0)
                goto fail;
            if (w < e && *w != '#')
                any = true;
        } else {
            /* A new "Bootstrap:" starts another stage in Apptainer. */
            if (e - s >= 10 && strncasecmp (s, "bootstrap:", 10) == 0) {
                def_error (err, d->name, line, "multi-stage definition files are not supported");
                goto fail;
            }
            section_append (&d->sec[cur], s, (size_t) (e - s));
            if (cur == DEF_FILES && files_line (&p, s, e, line) < 0)
                goto fail;
            if (cur == DEF_LABELS && labels_line (&p, s, e, line) < 0)
                goto fail;
        }
        s = nl ? nl + 1 : end;
    }
    if (header_finish_cont (&p) < 0)
        goto fail;
    if (!any) {
        def_error (err, d->name, 0, "empty definition file");
        goto fail;
    }
    if (d->sec[DEF_FILES].present && d->sec[DEF_FILES].args[0] != '\0') {
        def_error (err, d->name, d->sec[DEF_FILES].line, "'%%files %s': copying from another stage is not supported",
                   d->sec[DEF_FILES].args);
        goto fail;
    }
    if (script_shell (&p, DEF_SETUP) < 0 || script_shell (&p, DEF_POST) < 0)
        goto fail;
    if (check_header (&p) < 0)
        goto fail;
    *out = d;
    return 0;
fail:
    free (p.cont_key);
    free (p.cont_val);
    deffile_free (d);
    return -1;
}

char *
deffile_shebang (const struct def_section *s, const char **script)
{
    const char *body = s->body ? s->body : "", *t = body;
    char *shebang;

    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r')
        t++;
    if (strncmp (t, "#!", 2) == 0) {
        const char *nl = strchr (t, '\n');
        const char *e = nl ? nl : t + strlen (t);
        def_trim (&t, &e);
        shebang = def_strndup (t, (size_t) (e - t));
        *script = nl ? nl + 1 : t + strlen (t);
    } else {
        shebang = xstrdup ("#!/bin/sh");
        *script = body;
    }
    if (s->args != NULL && s->args[0] != '\0') {
        /* Arguments after the name go on the interpreter line, comments cut. */
        const char *a = s->args, *ae = strchr (a, '#');
        if (ae == NULL)
            ae = a + strlen (a);
        def_trim (&a, &ae);
        if (ae > a) {
            char *more = xasprintf ("%s %.*s", shebang, (int) (ae - a), a);
            free (shebang);
            shebang = more;
        }
    }
    return shebang;
}
