/* Instance records: see inststate.h. */
#include "runtime/inststate.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/utils.h"

const char *const capsa_inst_ns_names[INST_NS_COUNT] = { "mnt", "pid", "ipc", "uts", "net", "user", "cgroup" };

bool
capsa_inst_name_valid (const char *name)
{
    size_t n = strlen (name);
    if (n == 0 || n > CAPSA_INST_NAME_MAX || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) name[i];
        if (!(isascii (ch) && isalnum (ch)) && ch != '.' && ch != '_' && ch != '-')
            return false;
    }
    return true;
}

const char *
capsa_inst_mode_name (enum capsa_inst_mode m)
{
    switch (m) {
    case INST_MODE_ROOT:
        return "root";
    case INST_MODE_SETUID:
        return "setuid";
    case INST_MODE_USERNS:
        return "userns";
    }
    return "?";
}

void
capsa_inst_state_free (struct capsa_inst_state *st)
{
    free (st->name);
    free (st->user);
    free (st->image);
    free (st->home);
    free (st->log_out);
    free (st->log_err);
    free (st->cgroup);
    memset (st, 0, sizeof (*st));
}

/* ---- writing ------------------------------------------------------------- */

static void
put_escaped (char **buf, size_t *len, const char *s)
{
    char tmp[8];
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if (*p == '\\')
            str_append (buf, len, "\\\\");
        else if (*p == '\n')
            str_append (buf, len, "\\n");
        else if (*p == '\t')
            str_append (buf, len, "\\t");
        else if (*p < 0x20 || *p == 0x7f) {
            snprintf (tmp, sizeof (tmp), "\\x%02x", *p);
            str_append (buf, len, tmp);
        } else {
            tmp[0] = (char) *p;
            tmp[1] = '\0';
            str_append (buf, len, tmp);
        }
    }
}

static void
put_str (char **buf, size_t *len, const char *key, const char *value)
{
    if (value == NULL)
        return;
    str_append (buf, len, key);
    str_append (buf, len, "=");
    put_escaped (buf, len, value);
    str_append (buf, len, "\n");
}

static void
put_num (char **buf, size_t *len, const char *key, const char *fmt, ...) __attribute__ ((format (printf, 4, 5)));

static void
put_num (char **buf, size_t *len, const char *key, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (tmp, sizeof (tmp), fmt, ap);
    va_end (ap);
    str_append (buf, len, key);
    str_append (buf, len, "=");
    str_append (buf, len, tmp);
    str_append (buf, len, "\n");
}

char *
capsa_inst_state_format (const struct capsa_inst_state *st)
{
    char *buf = NULL;
    size_t len = 0;
    str_append (&buf, &len, CAPSA_INST_MAGIC "\n");
    put_str (&buf, &len, "name", st->name);
    put_num (&buf, &len, "uid", "%u", (unsigned) st->uid);
    put_str (&buf, &len, "user", st->user);
    put_str (&buf, &len, "mode", capsa_inst_mode_name (st->mode));
    put_str (&buf, &len, "boot", st->boot);
    put_num (&buf, &len, "pid", "%d", (int) st->pid);
    put_num (&buf, &len, "start", "%" PRIu64, st->start);
    put_num (&buf, &len, "monitor", "%d", (int) st->monitor);
    put_num (&buf, &len, "monitor-start", "%" PRIu64, st->monitor_start);
    for (int i = 0; i < INST_NS_COUNT; i++) {
        if (st->ns[i].ino == 0)
            continue;
        char key[32];
        snprintf (key, sizeof (key), "ns.%s", capsa_inst_ns_names[i]);
        put_num (&buf, &len, key, "%" PRIu64 ":%" PRIu64, st->ns[i].dev, st->ns[i].ino);
    }
    put_str (&buf, &len, "image", st->image);
    put_str (&buf, &len, "home", st->home);
    put_str (&buf, &len, "log-out", st->log_out);
    put_str (&buf, &len, "log-err", st->log_err);
    put_str (&buf, &len, "cgroup", st->cgroup);
    put_num (&buf, &len, "fakeroot", "%d", st->fakeroot ? 1 : 0);
    put_num (&buf, &len, "created", "%" PRId64, st->created);
    if (st->has_state)
        put_str (&buf, &len, "state", st->running ? "running" : "dead");
    str_append (&buf, &len, "end\n");
    return buf;
}

/* ---- reading ------------------------------------------------------------- */

static int
hexval (char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The value V (VLEN bytes) unescaped, owned; NULL if malformed. */
static char *
unescape (const char *v, size_t vlen)
{
    char *out = xmalloc (vlen + 1);
    size_t n = 0;
    for (size_t i = 0; i < vlen; i++) {
        unsigned char ch = (unsigned char) v[i];
        if (ch < 0x20 || ch == 0x7f)
            goto bad;
        if (ch != '\\') {
            out[n++] = (char) ch;
            continue;
        }
        if (++i >= vlen)
            goto bad;
        switch (v[i]) {
        case '\\':
            out[n++] = '\\';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'x': {
            int hi, lo;
            if (i + 2 >= vlen)
                goto bad;
            hi = hexval (v[i + 1]);
            lo = hexval (v[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto bad;
            out[n++] = (char) (hi * 16 + lo);
            i += 2;
            break;
        }
        default:
            goto bad;
        }
    }
    out[n] = '\0';
    return out;
bad:
    free (out);
    return NULL;
}

/* A decimal number without sign, leading '+', blanks or leading zeros
 * beyond a lone 0, in [0, max]. */
static int
parse_u64 (const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned) (*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int
parse_id (const char *s, struct capsa_inst_id *id)
{
    const char *colon = strchr (s, ':');
    if (colon == NULL || colon - s > 24)
        return -1;
    char dev[32];
    memcpy (dev, s, (size_t) (colon - s));
    dev[colon - s] = '\0';
    if (parse_u64 (dev, UINT64_MAX, &id->dev) < 0 || parse_u64 (colon + 1, UINT64_MAX, &id->ino) < 0 || id->ino == 0)
        return -1;
    return 0;
}

static bool
abs_path (const char *s)
{
    return s[0] == '/' && strlen (s) < 4096;
}

/* An absolute path without empty, '.' or '..' components (a cgroup's). */
static bool
plain_path (const char *s)
{
    if (!abs_path (s) || strstr (s, "//") != NULL)
        return false;
    for (const char *p = s + 1; *p;) {
        const char *e = strchrnul (p, '/');
        size_t n = (size_t) (e - p);
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p = *e ? e + 1 : e;
    }
    return true;
}

static bool
boot_id_valid (const char *s)
{
    size_t n = strlen (s);
    if (n != 36)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : hexval (s[i]) < 0)
            return false;
    }
    return true;
}

enum {
    K_NAME, K_UID, K_USER, K_MODE, K_BOOT, K_PID, K_START, K_MONITOR, K_MONITOR_START, K_NS /* .. K_NS+6 */,
    K_IMAGE = K_NS + INST_NS_COUNT, K_HOME, K_LOG_OUT, K_LOG_ERR, K_CGROUP, K_FAKEROOT, K_CREATED, K_STATE, K_COUNT
};

static int
key_index (const char *k)
{
    static const char *const keys[] = { [K_NAME] = "name",       [K_UID] = "uid",         [K_USER] = "user",
                                        [K_MODE] = "mode",       [K_BOOT] = "boot",       [K_PID] = "pid",
                                        [K_START] = "start",     [K_MONITOR] = "monitor", [K_MONITOR_START] = "monitor-start",
                                        [K_IMAGE] = "image",     [K_HOME] = "home",       [K_LOG_OUT] = "log-out",
                                        [K_LOG_ERR] = "log-err", [K_CGROUP] = "cgroup",   [K_FAKEROOT] = "fakeroot",
                                        [K_CREATED] = "created", [K_STATE] = "state" };
    for (int i = 0; i < K_COUNT; i++)
        if (keys[i] && strcmp (keys[i], k) == 0)
            return i;
    if (strncmp (k, "ns.", 3) == 0)
        for (int i = 0; i < INST_NS_COUNT; i++)
            if (strcmp (k + 3, capsa_inst_ns_names[i]) == 0)
                return K_NS + i;
    return -1;
}

/* Set one field; -1 when the value is not acceptable.  V is owned by
 * the caller. */
static int
set_field (struct capsa_inst_state *st, int k, const char *v)
{
    uint64_t n;
    switch (k) {
    case K_NAME:
        if (!capsa_inst_name_valid (v))
            return -1;
        st->name = xstrdup (v);
        return 0;
    case K_UID:
        if (parse_u64 (v, 0xfffffffeULL, &n) < 0)
            return -1;
        st->uid = (uid_t) n;
        return 0;
    case K_USER:
        if (v[0] == '\0' || strlen (v) > 256 || strchr (v, '/') || strchr (v, '\n'))
            return -1;
        st->user = xstrdup (v);
        return 0;
    case K_MODE:
        if (strcmp (v, "root") == 0)
            st->mode = INST_MODE_ROOT;
        else if (strcmp (v, "setuid") == 0)
            st->mode = INST_MODE_SETUID;
        else if (strcmp (v, "userns") == 0)
            st->mode = INST_MODE_USERNS;
        else
            return -1;
        return 0;
    case K_BOOT:
        if (!boot_id_valid (v))
            return -1;
        memcpy (st->boot, v, 37);
        return 0;
    case K_PID:
    case K_MONITOR:
        /* Never 0 or 1: kill(0) and kill(-1) mean groups, and 1 is init. */
        if (parse_u64 (v, 4194304, &n) < 0 || n < 2)
            return -1;
        *(k == K_PID ? &st->pid : &st->monitor) = (pid_t) n;
        return 0;
    case K_START:
    case K_MONITOR_START:
        if (parse_u64 (v, UINT64_MAX, &n) < 0)
            return -1;
        *(k == K_START ? &st->start : &st->monitor_start) = n;
        return 0;
    case K_IMAGE:
        if (v[0] == '\0' || strlen (v) >= 4096)
            return -1;
        st->image = xstrdup (v);
        return 0;
    case K_HOME:
    case K_LOG_OUT:
    case K_LOG_ERR:
    case K_CGROUP:
        if (!abs_path (v) || (k == K_CGROUP && !plain_path (v)))
            return -1;
        *(k == K_HOME ? &st->home : k == K_LOG_OUT ? &st->log_out : k == K_LOG_ERR ? &st->log_err : &st->cgroup)
            = xstrdup (v);
        return 0;
    case K_FAKEROOT:
        if (strcmp (v, "0") != 0 && strcmp (v, "1") != 0)
            return -1;
        st->fakeroot = v[0] == '1';
        return 0;
    case K_CREATED:
        if (parse_u64 (v, INT64_MAX, &n) < 0)
            return -1;
        st->created = (int64_t) n;
        return 0;
    case K_STATE:
        if (strcmp (v, "running") != 0 && strcmp (v, "dead") != 0)
            return -1;
        st->has_state = true;
        st->running = v[0] == 'r';
        return 0;
    default:
        if (k >= K_NS && k < K_NS + INST_NS_COUNT)
            return parse_id (v, &st->ns[k - K_NS]);
        return -1;
    }
}

int
capsa_inst_state_parse (const char *text, size_t len, struct capsa_inst_state *st, size_t *used, capsa_error_t *err)
{
    bool seen[K_COUNT] = { false };
    size_t pos = 0, lineno = 0;
    bool ended = false;

    memset (st, 0, sizeof (*st));
    while (pos < len && !ended) {
        const char *line = text + pos;
        const char *nl = memchr (line, '\n', len - pos);
        if (nl == NULL)
            goto bad_end;
        size_t llen = (size_t) (nl - line);
        pos += llen + 1;
        lineno++;
        if (pos > CAPSA_INST_RECORD_MAX) {
            capsa_inst_state_free (st);
            return capsa_error_make (err, 0, "instance record longer than %d bytes", CAPSA_INST_RECORD_MAX);
        }
        if (memchr (line, '\0', llen) != NULL)
            goto bad_line;
        if (lineno == 1) {
            if (llen != strlen (CAPSA_INST_MAGIC) || memcmp (line, CAPSA_INST_MAGIC, llen) != 0) {
                capsa_inst_state_free (st);
                return capsa_error_make (err, 0, "not an instance record of this version (first line)");
            }
            continue;
        }
        if (llen == 3 && memcmp (line, "end", 3) == 0) {
            ended = true;
            break;
        }
        const char *eq = memchr (line, '=', llen);
        if (eq == NULL || eq == line || eq - line > 32)
            goto bad_line;
        char key[40];
        memcpy (key, line, (size_t) (eq - line));
        key[eq - line] = '\0';
        int k = key_index (key);
        if (k < 0 || seen[k])
            goto bad_line;
        seen[k] = true;
        cleanup_free char *value = unescape (eq + 1, llen - (size_t) (eq - line) - 1);
        if (value == NULL || set_field (st, k, value) < 0)
            goto bad_line;
    }
    if (!ended)
        goto bad_end;
    static const int required[] = { K_NAME, K_UID, K_USER, K_MODE, K_BOOT, K_PID, K_START, K_MONITOR,
                                    K_MONITOR_START, K_NS + INST_NS_MNT, K_NS + INST_NS_PID, K_IMAGE, K_HOME,
                                    K_CREATED };
    for (size_t i = 0; i < ARRAY_SIZE (required); i++) {
        if (!seen[required[i]]) {
            capsa_inst_state_free (st);
            return capsa_error_make (err, 0, "instance record incomplete (a required key is missing)");
        }
    }
    if (used)
        *used = pos;
    return 0;
bad_line:
    capsa_inst_state_free (st);
    return capsa_error_make (err, 0, "instance record: bad line %zu", lineno);
bad_end:
    capsa_inst_state_free (st);
    return capsa_error_make (err, 0, "instance record: no end line");
}

/* ---- /proc ------------------------------------------------------------------ */

int
capsa_inst_parse_stat (const char *text, char *state, pid_t *ppid, uint64_t *start)
{
    /* "PID (COMM) S PPID ...": COMM may hold anything, ')' included; the
     * last ')' ends it. */
    const char *p = strrchr (text, ')');
    if (p == NULL || p[1] != ' ')
        return -1;
    p += 2;
    /* Fields from 3 on, separated by single spaces. */
    for (int field = 3; field <= 22; field++) {
        const char *end = p + strcspn (p, " \n");
        if (end == p)
            return -1;
        if (field == 3) {
            if (end - p != 1)
                return -1;
            *state = *p;
        } else if (field == 4 || field == 22) {
            char num[32];
            uint64_t v;
            if (end - p >= (long) sizeof (num))
                return -1;
            memcpy (num, p, (size_t) (end - p));
            num[end - p] = '\0';
            if (parse_u64 (num, field == 4 ? 4194304 : UINT64_MAX, &v) < 0)
                return -1;
            if (field == 4)
                *ppid = (pid_t) v;
            else
                *start = v;
        }
        if (*end != ' ' && field < 22)
            return -1;
        p = end + 1;
    }
    return 0;
}

int
capsa_inst_parse_status_uid (const char *text, uid_t *ruid, uid_t *euid)
{
    for (const char *l = text; l && *l; l = strchr (l, '\n') ? strchr (l, '\n') + 1 : NULL) {
        if (strncmp (l, "Uid:", 4) != 0)
            continue;
        unsigned long r, e;
        char *end;
        const char *p = l + 4;
        errno = 0;
        r = strtoul (p, &end, 10);
        if (end == p || errno != 0 || r > 0xffffffffUL)
            return -1;
        p = end;
        e = strtoul (p, &end, 10);
        if (end == p || errno != 0 || e > 0xffffffffUL)
            return -1;
        *ruid = (uid_t) r;
        *euid = (uid_t) e;
        return 0;
    }
    return -1;
}

char *
capsa_inst_parse_cgroup2 (const char *text)
{
    for (const char *l = text; l && *l; l = strchr (l, '\n') ? strchr (l, '\n') + 1 : NULL) {
        if (strncmp (l, "0::/", 4) != 0)
            continue;
        size_t n = strcspn (l + 3, "\n");
        return strndup (l + 3, n);
    }
    return NULL;
}

char *
capsa_cgroup2_point (const char *mountinfo)
{
    for (const char *l = mountinfo; l && *l; l = strchr (l, '\n') ? strchr (l, '\n') + 1 : NULL) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER */
        const char *sep = strstr (l, " - cgroup2 ");
        const char *eol = strchr (l, '\n');
        if (sep == NULL || (eol && sep > eol))
            continue;
        char root[4096], point[4096];
        if (sscanf (l, "%*s %*s %*s %4095s %4095s", root, point) != 2 || strcmp (root, "/") != 0
            || strchr (point, '\\'))
            continue;
        return xstrdup (point);
    }
    return NULL;
}
