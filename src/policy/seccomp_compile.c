/* The seccomp profile compiler (JSON -> BPF): front end and helpers only,
 * never linked into the starter (see seccomp_compile.h for the format and
 * how conditions are decided). */
#include "policy/seccomp_compile.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/utils.h"

#define PROFILE_MAX (4 << 20)

struct name_value {
    const char *name;
    uint32_t value;
};

/* libseccomp's architecture tokens, by the names profiles use in
 * "architectures" and "archMap", and by the short names of
 * includes/excludes "arches" (the names libseccomp-golang gives them,
 * which Docker, containers-common and runc compare against). */
struct arch_name {
    const char *scmp;
    const char *go;
    uint32_t token;
};

static const struct arch_name arch_names[] = {
    { "SCMP_ARCH_X86", "x86", SCMP_ARCH_X86 },
    { "SCMP_ARCH_X86_64", "amd64", SCMP_ARCH_X86_64 },
    { "SCMP_ARCH_X32", "x32", SCMP_ARCH_X32 },
    { "SCMP_ARCH_ARM", "arm", SCMP_ARCH_ARM },
    { "SCMP_ARCH_AARCH64", "arm64", SCMP_ARCH_AARCH64 },
    { "SCMP_ARCH_MIPS", "mips", SCMP_ARCH_MIPS },
    { "SCMP_ARCH_MIPS64", "mips64", SCMP_ARCH_MIPS64 },
    { "SCMP_ARCH_MIPS64N32", "mips64n32", SCMP_ARCH_MIPS64N32 },
    { "SCMP_ARCH_MIPSEL", "mipsel", SCMP_ARCH_MIPSEL },
    { "SCMP_ARCH_MIPSEL64", "mipsel64", SCMP_ARCH_MIPSEL64 },
    { "SCMP_ARCH_MIPSEL64N32", "mipsel64n32", SCMP_ARCH_MIPSEL64N32 },
    { "SCMP_ARCH_PPC", "ppc", SCMP_ARCH_PPC },
    { "SCMP_ARCH_PPC64", "ppc64", SCMP_ARCH_PPC64 },
    { "SCMP_ARCH_PPC64LE", "ppc64le", SCMP_ARCH_PPC64LE },
    { "SCMP_ARCH_S390", "s390", SCMP_ARCH_S390 },
    { "SCMP_ARCH_S390X", "s390x", SCMP_ARCH_S390X },
    { "SCMP_ARCH_PARISC", "parisc", SCMP_ARCH_PARISC },
    { "SCMP_ARCH_PARISC64", "parisc64", SCMP_ARCH_PARISC64 },
    { "SCMP_ARCH_RISCV64", "riscv64", SCMP_ARCH_RISCV64 },
};

static const struct name_value ops[] = {
    { "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
    { "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
    { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

/* Everything a rule is decided against. */
struct ctx {
    const char *name;  /* the profile, for messages */
    const struct capsa_seccomp_target *t;
    const char *arch;  /* this machine's short architecture name ("amd64") */
    unsigned kmajor, kminor;
};

static const struct arch_name *
arch_by_scmp (const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE (arch_names); i++)
        if (strcmp (arch_names[i].scmp, name) == 0)
            return &arch_names[i];
    return NULL;
}

static const char *
native_arch (void)
{
    uint32_t native = seccomp_arch_native ();
    for (size_t i = 0; i < ARRAY_SIZE (arch_names); i++)
        if (arch_names[i].token == native)
            return arch_names[i].go;
    return "unknown";
}

static const char *
native_scmp_arch (void)
{
    uint32_t native = seccomp_arch_native ();
    for (size_t i = 0; i < ARRAY_SIZE (arch_names); i++)
        if (arch_names[i].token == native)
            return arch_names[i].scmp;
    return "unknown";
}

static int
lookup (const struct name_value *t, size_t n, const char *name, uint32_t *out)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp (t[i].name, name) == 0) {
            *out = t[i].value;
            return 0;
        }
    return -1;
}

static const char *
get_string (json_object *obj, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex (obj, key, &v) || !json_object_is_type (v, json_type_string))
        return NULL;
    return json_object_get_string (v);
}

/* An optional member that, when present and not null, must have TYPE. */
static int
member (json_object *obj, const char *key, json_type type, json_object **out)
{
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex (obj, key, &v) || v == NULL || json_object_is_type (v, json_type_null))
        return 0;
    if (!json_object_is_type (v, type))
        return -1;
    *out = v;
    return 1;
}

static int
u64_field (json_object *obj, const char *key, uint64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex (obj, key, &v)) {
        *out = 0;
        return 0;
    }
    if (!json_object_is_type (v, json_type_int))
        return -1;
    *out = json_object_get_uint64 (v);
    return 0;
}

/* ---- actions ------------------------------------------------------------ */

static int
errno_ret (json_object *obj, const char *key, const char *where, uint32_t *out, capsa_error_t *err)
{
    json_object *v;
    *out = EPERM;
    if (!json_object_object_get_ex (obj, key, &v) || v == NULL || json_object_is_type (v, json_type_null))
        return 0;
    if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0 || json_object_get_int64 (v) > 4095)
        return capsa_error_make (err, 0, "%s: %s must be an integer from 0 to 4095", where, key);
    *out = (uint32_t) json_object_get_int64 (v);
    return 0;
}

static int
parse_action (const char *name, uint32_t errnoret, const char *where, uint32_t *out, capsa_error_t *err)
{
    if (strcmp (name, "SCMP_ACT_ALLOW") == 0)
        *out = SCMP_ACT_ALLOW;
    else if (strcmp (name, "SCMP_ACT_ERRNO") == 0)
        *out = SCMP_ACT_ERRNO (errnoret);
    else if (strcmp (name, "SCMP_ACT_KILL") == 0 || strcmp (name, "SCMP_ACT_KILL_THREAD") == 0)
        *out = SCMP_ACT_KILL;
    else if (strcmp (name, "SCMP_ACT_KILL_PROCESS") == 0)
        *out = SCMP_ACT_KILL_PROCESS;
    else if (strcmp (name, "SCMP_ACT_TRAP") == 0)
        *out = SCMP_ACT_TRAP;
    else if (strcmp (name, "SCMP_ACT_TRACE") == 0)
        *out = SCMP_ACT_TRACE (errnoret);
    else if (strcmp (name, "SCMP_ACT_LOG") == 0)
        *out = SCMP_ACT_LOG;
    else if (strcmp (name, "SCMP_ACT_NOTIFY") == 0)
        return capsa_error_make (err, 0, "%s: SCMP_ACT_NOTIFY needs a listener, which capsa does not provide", where);
    else
        return capsa_error_make (err, 0,
                                 "%s: unknown action '%s' (allowed: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, "
                                 "SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_TRACE, "
                                 "SCMP_ACT_LOG)",
                                 where, name);
    return 0;
}

/* Does applying a rule with this action make the filter stricter? */
static bool
denies (uint32_t act)
{
    return act != SCMP_ACT_ALLOW && act != SCMP_ACT_LOG;
}

/* ---- conditions (includes / excludes) ----------------------------------- */

enum tri { T_NO, T_YES, T_MAYBE };

static enum tri
tri_and (enum tri a, enum tri b)
{
    if (a == T_NO || b == T_NO)
        return T_NO;
    if (a == T_MAYBE || b == T_MAYBE)
        return T_MAYBE;
    return T_YES;
}

static enum tri
tri_not (enum tri a)
{
    return a == T_YES ? T_NO : a == T_NO ? T_YES : T_MAYBE;
}

/* Whether the container will have the capability named NAME. */
static enum tri
cap_state (const struct ctx *x, const char *name)
{
    cap_value_t cap;
    if (strncasecmp (name, "CAP_", 4) != 0 || cap_from_name (name, &cap) < 0 || cap < 0 || cap > 63)
        return T_NO; /* a capability this system does not know: nobody has it */
    uint64_t bit = UINT64_C (1) << cap;
    if (x->t == NULL)
        return T_MAYBE;
    if (x->t->caps_have & bit)
        return T_YES;
    if (x->t->caps_maybe & bit)
        return T_MAYBE;
    return T_NO;
}

/* "MAJOR.MINOR" (Docker's minKernel), compared with the kernel. */
static int
kernel_at_least (const struct ctx *x, const char *want, const char *where, enum tri *out, capsa_error_t *err)
{
    unsigned major, minor;
    int n = 0;
    if (sscanf (want, "%u.%u%n", &major, &minor, &n) != 2 || want[n] != '\0')
        return capsa_error_make (err, 0, "%s: minKernel '%s' is not MAJOR.MINOR", where, want);
    *out = (x->kmajor > major || (x->kmajor == major && x->kminor >= minor)) ? T_YES : T_NO;
    return 0;
}

/* Evaluate one "includes" or "excludes" object: for includes, whether all
 * its conditions hold; for excludes, whether any does. */
static int
condition (const struct ctx *x, json_object *filter, bool any, const char *where, enum tri *out, capsa_error_t *err)
{
    enum tri r = any ? T_NO : T_YES;
    *out = r;
    if (filter == NULL)
        return 0;
    json_object_object_foreach (filter, key, val)
    {
        enum tri c = T_YES;
        if (val == NULL || json_object_is_type (val, json_type_null))
            continue;
        if (strcmp (key, "arches") == 0 || strcmp (key, "caps") == 0) {
            if (!json_object_is_type (val, json_type_array))
                return capsa_error_make (err, 0, "%s: \"%s\" must be an array of strings", where, key);
            size_t n = json_object_array_length (val);
            if (n == 0)
                continue;
            bool arches = key[0] == 'a';
            /* arches: is this machine's in the list; caps (includes): are
             * all present; caps (excludes): is any present. */
            enum tri acc = arches ? T_NO : (any ? T_NO : T_YES);
            for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx (val, i);
                if (!json_object_is_type (e, json_type_string))
                    return capsa_error_make (err, 0, "%s: \"%s\" must be an array of strings", where, key);
                const char *s = json_object_get_string (e);
                if (arches) {
                    if (strcmp (s, x->arch) == 0)
                        acc = T_YES;
                } else if (any) {
                    enum tri st = cap_state (x, s);
                    acc = tri_not (tri_and (tri_not (acc), tri_not (st)));
                } else {
                    acc = tri_and (acc, cap_state (x, s));
                }
            }
            c = acc;
        } else if (strcmp (key, "minKernel") == 0) {
            if (!json_object_is_type (val, json_type_string))
                return capsa_error_make (err, 0, "%s: \"minKernel\" must be a string", where);
            if (kernel_at_least (x, json_object_get_string (val), where, &c, err) < 0)
                return -1;
        } else {
            return capsa_error_make (err, 0, "%s: unknown condition \"%s\" (allowed: arches, caps, minKernel)", where,
                                     key);
        }
        r = any ? tri_not (tri_and (tri_not (r), tri_not (c))) : tri_and (r, c);
    }
    *out = r;
    return 0;
}

/* ---- rules -------------------------------------------------------------- */

static int
add_one (scmp_filter_ctx ctx, uint32_t act, int nr, const char *sys, unsigned n, const struct scmp_arg_cmp *cmps,
         const char *where, capsa_error_t *err)
{
    int r = seccomp_rule_add_array (ctx, act, nr, n, cmps);
    /* The same call with the same action twice is no error. */
    if (r == -EEXIST)
        return 0;
    if (r < 0)
        return capsa_error_make (err, -r, "%s: cannot add a rule for '%s'", where, sys);
    return 0;
}

static int
add_rules (const struct ctx *x, scmp_filter_ctx fctx, json_object *rule, size_t index, uint32_t default_action,
           capsa_error_t *err)
{
    char where[96];
    json_object *names = NULL, *one = NULL, *args = NULL, *inc = NULL, *exc = NULL;
    const char *action;
    uint32_t act, errnoret;
    struct scmp_arg_cmp cmps[6];
    unsigned ncmp = 0, per_index[6] = { 0 };

    snprintf (where, sizeof (where), "%s: syscalls[%zu]", x->name, index);
    if (!json_object_is_type (rule, json_type_object))
        return capsa_error_make (err, 0, "%s: must be an object", where);
    action = get_string (rule, "action");
    if (action == NULL)
        return capsa_error_make (err, 0, "%s: missing \"action\"", where);
    if (errno_ret (rule, "errnoRet", where, &errnoret, err) < 0 || parse_action (action, errnoret, where, &act, err) < 0)
        return -1;
    if (member (rule, "includes", json_type_object, &inc) < 0 || member (rule, "excludes", json_type_object, &exc) < 0)
        return capsa_error_make (err, 0, "%s: \"includes\" and \"excludes\" must be objects", where);
    if (member (rule, "args", json_type_array, &args) < 0)
        return capsa_error_make (err, 0, "%s: \"args\" must be an array", where);
    if (member (rule, "names", json_type_array, &names) < 0)
        return capsa_error_make (err, 0, "%s: \"names\" must be an array of strings", where);
    if (member (rule, "name", json_type_string, &one) < 0)
        return capsa_error_make (err, 0, "%s: \"name\" must be a string", where);
    if (names != NULL && one != NULL)
        return capsa_error_make (err, 0, "%s: give \"name\" or \"names\", not both", where);
    if (names == NULL && one == NULL)
        return capsa_error_make (err, 0, "%s: missing \"names\"", where);

    for (size_t i = 0; args != NULL && i < json_object_array_length (args); i++) {
        json_object *a = json_object_array_get_idx (args, i);
        uint64_t idx, value, value2;
        uint32_t op;
        const char *opname = json_object_is_type (a, json_type_object) ? get_string (a, "op") : NULL;
        if (ncmp >= 6 || opname == NULL || u64_field (a, "index", &idx) < 0 || idx > 5
            || u64_field (a, "value", &value) < 0 || u64_field (a, "valueTwo", &value2) < 0
            || lookup (ops, ARRAY_SIZE (ops), opname, &op) < 0)
            return capsa_error_make (err, 0, "%s: args[%zu] is not a valid argument condition", where, i);
        cmps[ncmp].arg = (unsigned) idx;
        cmps[ncmp].op = (enum scmp_compare) op;
        cmps[ncmp].datum_a = value;
        cmps[ncmp].datum_b = value2;
        per_index[idx]++;
        ncmp++;
    }

    enum tri in, ex;
    if (condition (x, inc, false, where, &in, err) < 0 || condition (x, exc, true, where, &ex, err) < 0)
        return -1;
    enum tri applies = tri_and (in, tri_not (ex));
    if (applies == T_NO)
        return 0;
    if (applies == T_MAYBE) {
        /* Depends on a capability the starter decides later. */
        if (!denies (act)) {
            verbosef ("%s: allows only with capabilities the container may lack: left out", where);
            return 0;
        }
        verbosef ("%s: denies unless the container has capabilities it may lack: kept", where);
    }
    if (act == default_action)
        return 0; /* libseccomp refuses rules equal to the default */

    /* Several conditions on one argument: each is a rule of its own (OR),
     * as runc reads them; otherwise all conditions together (AND). */
    bool split = false;
    for (unsigned i = 0; i < 6; i++)
        split = split || per_index[i] > 1;

    size_t n = one ? 1 : json_object_array_length (names);
    for (size_t i = 0; i < n; i++) {
        json_object *nm = one ? one : json_object_array_get_idx (names, i);
        if (!json_object_is_type (nm, json_type_string))
            return capsa_error_make (err, 0, "%s: \"names\" must be an array of strings", where);
        const char *sys = json_object_get_string (nm);
        int nr = seccomp_syscall_resolve_name (sys);
        if (nr == __NR_SCMP_ERROR) {
            verbosef ("%s: unknown system call '%s' skipped", where, sys);
            continue;
        }
        if (split) {
            for (unsigned k = 0; k < ncmp; k++)
                if (add_one (fctx, act, nr, sys, 1, &cmps[k], where, err) < 0)
                    return -1;
        } else if (add_one (fctx, act, nr, sys, ncmp, cmps, where, err) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Line and column of byte OFF in TEXT, for error messages. */
static void
position (const char *text, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int
add_arch (scmp_filter_ctx fctx, const char *profile, const char *name, capsa_error_t *err)
{
    const struct arch_name *a = arch_by_scmp (name);
    if (a == NULL)
        return capsa_error_make (err, 0, "%s: unknown architecture '%s'", profile, name);
    int r = seccomp_arch_add (fctx, a->token);
    if (r < 0 && r != -EEXIST)
        return capsa_error_make (err, -r, "%s: cannot add architecture %s", profile, name);
    return 0;
}

static void
running_kernel (unsigned *major, unsigned *minor)
{
    struct utsname u;
    *major = *minor = 0;
    if (uname (&u) == 0 && sscanf (u.release, "%u.%u", major, minor) != 2)
        *major = *minor = 0;
}

/* "architectures" (names to add), or the "archMap" entry of this machine
 * (the architecture and its sub-architectures), not both. */
static int
architectures (scmp_filter_ctx fctx, json_object *root, const char *name, capsa_error_t *err)
{
    json_object *list, *map;
    if (member (root, "architectures", json_type_array, &list) < 0)
        return capsa_error_make (err, 0, "%s: \"architectures\" must be an array", name);
    if (member (root, "archMap", json_type_array, &map) < 0)
        return capsa_error_make (err, 0, "%s: \"archMap\" must be an array", name);
    if (list && map && json_object_array_length (list) > 0 && json_object_array_length (map) > 0)
        return capsa_error_make (err, 0, "%s: give \"architectures\" or \"archMap\", not both", name);
    for (size_t i = 0; list && i < json_object_array_length (list); i++) {
        json_object *a = json_object_array_get_idx (list, i);
        if (!json_object_is_type (a, json_type_string))
            return capsa_error_make (err, 0, "%s: \"architectures\" must be an array of strings", name);
        if (add_arch (fctx, name, json_object_get_string (a), err) < 0)
            return -1;
    }
    const char *native = native_scmp_arch ();
    for (size_t i = 0; map && i < json_object_array_length (map); i++) {
        json_object *e = json_object_array_get_idx (map, i), *subs;
        const char *arch = json_object_is_type (e, json_type_object) ? get_string (e, "architecture") : NULL;
        if (arch == NULL || member (e, "subArchitectures", json_type_array, &subs) < 0)
            return capsa_error_make (err, 0, "%s: archMap[%zu] must have \"architecture\" and \"subArchitectures\"",
                                     name, i);
        if (strcmp (arch, native) != 0)
            continue;
        for (size_t k = 0; subs && k < json_object_array_length (subs); k++) {
            json_object *s = json_object_array_get_idx (subs, k);
            if (!json_object_is_type (s, json_type_string))
                return capsa_error_make (err, 0, "%s: archMap[%zu]: subArchitectures must be strings", name, i);
            if (add_arch (fctx, name, json_object_get_string (s), err) < 0)
                return -1;
        }
        break;
    }
    return 0;
}

int
capsa_seccomp_compile (const char *name, const char *text, size_t len, const struct capsa_seccomp_target *t,
                       int out_fd, capsa_error_t *err)
{
    json_tokener *tok = json_tokener_new ();
    json_object *root = NULL, *v;
    scmp_filter_ctx fctx = NULL;
    uint32_t def, errnoret;
    int ret = -1;
    struct ctx x = { .name = name, .t = t, .arch = native_arch () };

    if (t != NULL && (t->kernel_major != 0 || t->kernel_minor != 0)) {
        x.kmajor = t->kernel_major;
        x.kminor = t->kernel_minor;
    } else {
        running_kernel (&x.kmajor, &x.kminor);
    }
    if (tok == NULL || len > INT32_MAX) {
        json_tokener_free (tok);
        return capsa_error_make (err, ENOMEM, "%s", name);
    }
    root = json_tokener_parse_ex (tok, text, (int) len);
    if (root == NULL || json_tokener_get_error (tok) != json_tokener_success) {
        size_t line, col;
        position (text, json_tokener_get_parse_end (tok), &line, &col);
        capsa_error_make (err, 0, "%s: invalid JSON at line %zu, column %zu: %s", name, line, col,
                          json_tokener_error_desc (json_tokener_get_error (tok)));
        goto out;
    }
    if (!json_object_is_type (root, json_type_object)) {
        capsa_error_make (err, 0, "%s: a seccomp profile must be a JSON object", name);
        goto out;
    }
    const char *defname = get_string (root, "defaultAction");
    if (defname == NULL) {
        capsa_error_make (err, 0, "%s: missing \"defaultAction\"", name);
        goto out;
    }
    if (errno_ret (root, "defaultErrnoRet", name, &errnoret, err) < 0
        || parse_action (defname, errnoret, name, &def, err) < 0)
        goto out;
    fctx = seccomp_init (def);
    if (fctx == NULL) {
        capsa_error_make (err, ENOMEM, "%s: seccomp_init", name);
        goto out;
    }
    if (architectures (fctx, root, name, err) < 0)
        goto out;
    if (member (root, "syscalls", json_type_array, &v) < 0) {
        capsa_error_make (err, 0, "%s: \"syscalls\" must be an array", name);
        goto out;
    }
    for (size_t i = 0; v != NULL && i < json_object_array_length (v); i++)
        if (add_rules (&x, fctx, json_object_array_get_idx (v, i), i, def, err) < 0)
            goto out;
    int r = seccomp_export_bpf (fctx, out_fd);
    if (r < 0) {
        capsa_error_make (err, -r, "%s: cannot export the filter", name);
        goto out;
    }
    ret = 0;
out:
    if (fctx)
        seccomp_release (fctx);
    json_object_put (root);
    json_tokener_free (tok);
    return ret;
}

int
capsa_seccomp_compile_file (const char *path, const struct capsa_seccomp_target *t, capsa_error_t *err)
{
    cleanup_free char *text = NULL;
    size_t len;
    cleanup_close int in = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (in < 0)
        return capsa_error_make (err, errno, "seccomp profile %s", path);
    if (fstat (in, &st) < 0 || !S_ISREG (st.st_mode))
        return capsa_error_make (err, 0, "seccomp profile %s is not a regular file", path);
    if (read_fd_all (in, PROFILE_MAX, &text, &len, err) < 0)
        return capsa_error_wrap (err, "seccomp profile %s", path);
    cleanup_close int out = memfd_create ("capsa-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (out < 0)
        return capsa_error_make (err, errno, "memfd_create");
    if (capsa_seccomp_compile (path, text, len, t, out, err) < 0)
        return -1;
    if (fcntl (out, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        return capsa_error_make (err, errno, "cannot seal the seccomp program");
    return steal_fd (&out);
}
