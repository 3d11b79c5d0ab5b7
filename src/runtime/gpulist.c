/* The pure parts of GPU support (gpu.h): the administrator's lists,
 * `ldconfig -p`, /proc/devices, the --gpu-file syntax.  No I/O
 * (tests/unit/test_gpu.c, tests/fuzz/fuzz_options.c). */
#include "runtime/gpu.h"

#include <string.h>


void
capsa_gpu_list_parse (const char *text, struct capsa_gpu_list *out)
{
    cleanup_free char *copy = xstrdup (text);
    char *save = NULL;
    for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        char *e = trim (line);
        if (*e == '\0' || *e == '#')
            continue;
        if (strstr (e, ".so") != NULL)
            strv_push (&out->libs, e);
        else if (e[0] == '/')
            strv_push (&out->files, e);
        else
            strv_push (&out->bins, e);
    }
}

void
capsa_gpu_list_free (struct capsa_gpu_list *l)
{
    strv_free (&l->libs);
    strv_free (&l->bins);
    strv_free (&l->files);
}

static const char *
base_name (const char *path)
{
    const char *slash = strrchr (path, '/');
    return slash ? slash + 1 : path;
}

bool
capsa_gpu_list_lib (const struct capsa_gpu_list *l, const char *path)
{
    const char *name = base_name (path);
    if (*name == '\0')
        return false;
    for (size_t i = 0; i < l->libs.n; i++) {
        const char *e = l->libs.v[i];
        if (e[0] == '/' ? strcmp (e, path) == 0 : strncmp (name, e, strlen (e)) == 0)
            return true;
    }
    return false;
}

bool
capsa_gpu_list_bin (const struct capsa_gpu_list *l, const char *name)
{
    for (size_t i = 0; i < l->bins.n; i++)
        if (strcmp (l->bins.v[i], name) == 0 && strchr (name, '/') == NULL)
            return true;
    return false;
}

bool
capsa_gpu_list_file (const struct capsa_gpu_list *l, const char *path)
{
    for (size_t i = 0; i < l->files.n; i++)
        if (strcmp (l->files.v[i], path) == 0)
            return true;
    return false;
}

void
capsa_gpu_ldcache_parse (const char *text, struct strv *names, struct strv *paths)
{
    cleanup_free char *copy = xstrdup (text);
    char *save = NULL;
    for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        char *arrow = strstr (line, "=>");
        if (arrow == NULL)
            continue;
        *arrow = '\0';
        char *paren = strrchr (line, '(');
        char *path = trim (arrow + 2);
        if (paren == NULL || strchr (paren, ')') == NULL || path[0] != '/')
            continue;
        *paren = '\0';
        char *name = trim (line);
        if (*name == '\0' || strchr (name, '/') != NULL)
            continue;
        strv_push (names, name);
        strv_push (paths, path);
    }
}

char *
capsa_gpu_char_driver (const char *text, unsigned major)
{
    cleanup_free char *copy = xstrdup (text);
    char *save = NULL;
    bool chars = false;
    for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        char *t = trim (line);
        if (strcmp (t, "Character devices:") == 0) {
            chars = true;
            continue;
        }
        if (strcmp (t, "Block devices:") == 0) {
            chars = false;
            continue;
        }
        char *sp = strpbrk (t, " \t");
        long n;
        if (!chars || sp == NULL)
            continue;
        *sp = '\0';
        if (parse_long (t, 0, 0xfffff, &n) == 0 && (unsigned) n == major)
            return xstrdup (trim (sp + 1));
    }
    return NULL;
}

bool
capsa_gpu_major_ok (enum capsa_gpu_driver driver, const char *name)
{
    if (name == NULL)
        return true;
    switch (driver) {
    case GPU_DRIVER_NVIDIA:
        return strncmp (name, "nvidia", 6) == 0;
    case GPU_DRIVER_KFD:
        return strcmp (name, "kfd") == 0;
    case GPU_DRIVER_DRM:
        return strcmp (name, "drm") == 0;
    }
    return false;
}

int
capsa_gpu_file_valid (const char *value)
{
    static const char *const kinds[] = { "lib:", "lib32:", "bin:", "file:", "dev:" };
    const char *path = NULL;
    for (size_t i = 0; i < ARRAY_SIZE (kinds) && path == NULL; i++)
        if (strncmp (value, kinds[i], strlen (kinds[i])) == 0)
            path = value + strlen (kinds[i]);
    if (path == NULL)
        return -1;
    if (strcmp (value, "dev:none") == 0)
        return 0;
    if (path[0] != '/' || path[1] == '\0' || strlen (path) >= 4096)
        return -1;
    for (const char *p = path + 1; *p;) {
        size_t l = strcspn (p, "/");
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
            return -1;
        p += l;
        if (*p == '/' && p[1] == '\0')
            return -1;
        if (*p == '/')
            p++;
    }
    return 0;
}
