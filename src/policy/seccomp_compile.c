/* The seccomp profile compiler (JSON -> BPF): front end and helpers only,
 * never linked into the starter (see seccomp_compile.h). */
#include "policy/seccomp_compile.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/utils.h"

#define PROFILE_MAX (4 << 20)

struct name_value {
    const char *name;
    uint32_t value;
};

static int
parse_action (const char *name, json_object *rule, const char *where, uint32_t *out, capsa_error_t *err)
{
    json_object *v;
    uint32_t errnoret = EPERM;

    if (rule && json_object_object_get_ex (rule, "errnoRet", &v)) {
        if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0 || json_object_get_int64 (v) > 4095)
            return capsa_error_make (err, 0, "%s: errnoRet must be an integer from 0 to 4095", where);
        errnoret = (uint32_t) json_object_get_int64 (v);
    }
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
    else if (strcmp (name, "SCMP_ACT_LOG") == 0)
        *out = SCMP_ACT_LOG;
    else
        return capsa_error_make (err, 0,
                                 "%s: unknown action '%s' (allowed: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, "
                                 "SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_LOG)",
                                 where, name);
    return 0;
}

static const struct name_value arches[] = {
    { "SCMP_ARCH_X86", SCMP_ARCH_X86 },         { "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64 },
    { "SCMP_ARCH_X32", SCMP_ARCH_X32 },         { "SCMP_ARCH_ARM", SCMP_ARCH_ARM },
    { "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64 }, { "SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE },
    { "SCMP_ARCH_S390X", SCMP_ARCH_S390X },     { "SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64 },
};

static const struct name_value ops[] = {
    { "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
    { "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
    { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

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
add_rules (scmp_filter_ctx ctx, const char *name, json_object *rule, size_t index, uint32_t default_action,
           capsa_error_t *err)
{
    char where[96];
    json_object *names, *args;
    const char *action;
    uint32_t act;
    struct scmp_arg_cmp cmps[6];
    unsigned ncmp = 0;

    snprintf (where, sizeof (where), "%s: syscalls[%zu]", name, index);
    if (!json_object_is_type (rule, json_type_object))
        return capsa_error_make (err, 0, "%s: must be an object", where);
    action = get_string (rule, "action");
    if (action == NULL)
        return capsa_error_make (err, 0, "%s: missing \"action\"", where);
    if (parse_action (action, rule, where, &act, err) < 0)
        return -1;
    if (json_object_object_get_ex (rule, "includes", NULL) || json_object_object_get_ex (rule, "excludes", NULL)) {
        json_object *inc = NULL, *exc = NULL;
        json_object_object_get_ex (rule, "includes", &inc);
        json_object_object_get_ex (rule, "excludes", &exc);
        if ((inc && json_object_object_length (inc) > 0) || (exc && json_object_object_length (exc) > 0)) {
            verbosef ("%s: conditional rule (includes/excludes) skipped", where);
            return 0;
        }
    }
    if (json_object_object_get_ex (rule, "args", &args) && args != NULL && !json_object_is_type (args, json_type_null)) {
        if (!json_object_is_type (args, json_type_array))
            return capsa_error_make (err, 0, "%s: \"args\" must be an array", where);
        for (size_t i = 0; i < json_object_array_length (args); i++) {
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
            ncmp++;
        }
    }
    if (act == default_action)
        return 0; /* libseccomp refuses rules equal to the default */

    json_object *one = NULL;
    if (!json_object_object_get_ex (rule, "names", &names)) {
        if (!json_object_object_get_ex (rule, "name", &one) || !json_object_is_type (one, json_type_string))
            return capsa_error_make (err, 0, "%s: missing \"names\"", where);
    } else if (!json_object_is_type (names, json_type_array)) {
        return capsa_error_make (err, 0, "%s: \"names\" must be an array of strings", where);
    }
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
        int r = seccomp_rule_add_array (ctx, act, nr, ncmp, cmps);
        if (r < 0)
            return capsa_error_make (err, -r, "%s: cannot add a rule for '%s'", where, sys);
    }
    return 0;
}

int
capsa_seccomp_compile (const char *name, const char *text, size_t len, int out_fd, capsa_error_t *err)
{
    json_tokener *tok = json_tokener_new ();
    json_object *root = NULL, *v;
    scmp_filter_ctx ctx = NULL;
    uint32_t def;
    int ret = -1;

    if (tok == NULL || len > INT32_MAX)
        return capsa_error_make (err, ENOMEM, "%s", name);
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
    if (parse_action (defname, root, name, &def, err) < 0)
        goto out;
    ctx = seccomp_init (def);
    if (ctx == NULL) {
        capsa_error_make (err, ENOMEM, "%s: seccomp_init", name);
        goto out;
    }
    if (json_object_object_get_ex (root, "architectures", &v) && v && !json_object_is_type (v, json_type_null)) {
        if (!json_object_is_type (v, json_type_array)) {
            capsa_error_make (err, 0, "%s: \"architectures\" must be an array", name);
            goto out;
        }
        for (size_t i = 0; i < json_object_array_length (v); i++) {
            json_object *a = json_object_array_get_idx (v, i);
            uint32_t arch;
            if (!json_object_is_type (a, json_type_string) || lookup (arches, ARRAY_SIZE (arches), json_object_get_string (a), &arch) < 0) {
                capsa_error_make (err, 0, "%s: unknown architecture '%s'", name,
                                  json_object_is_type (a, json_type_string) ? json_object_get_string (a) : "?");
                goto out;
            }
            int r = seccomp_arch_add (ctx, arch);
            if (r < 0 && r != -EEXIST) {
                capsa_error_make (err, -r, "%s: cannot add architecture %s", name, json_object_get_string (a));
                goto out;
            }
        }
    }
    if (json_object_object_get_ex (root, "syscalls", &v) && v && !json_object_is_type (v, json_type_null)) {
        if (!json_object_is_type (v, json_type_array)) {
            capsa_error_make (err, 0, "%s: \"syscalls\" must be an array", name);
            goto out;
        }
        for (size_t i = 0; i < json_object_array_length (v); i++)
            if (add_rules (ctx, name, json_object_array_get_idx (v, i), i, def, err) < 0)
                goto out;
    }
    int r = seccomp_export_bpf (ctx, out_fd);
    if (r < 0) {
        capsa_error_make (err, -r, "%s: cannot export the filter", name);
        goto out;
    }
    ret = 0;
out:
    if (ctx)
        seccomp_release (ctx);
    json_object_put (root);
    json_tokener_free (tok);
    return ret;
}

int
capsa_seccomp_compile_file (const char *path, capsa_error_t *err)
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
    if (capsa_seccomp_compile (path, text, len, out, err) < 0)
        return -1;
    if (fcntl (out, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        return capsa_error_make (err, errno, "cannot seal the seccomp program");
    return steal_fd (&out);
}

