/* Small helpers shared by every capsa program: scope-bound cleanup,
 * robust I/O, string lists.  Pure helpers only: nothing here changes
 * privileges or mounts anything. */
#ifndef CAPSA_UTILS_H
#define CAPSA_UTILS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "error.h"

static inline void
cleanup_freep (void *p)
{
    void **pp = (void **) p;
    free (*pp);
}

static inline void
cleanup_closep (int *fd)
{
    if (*fd >= 0)
        close (*fd);
}

static inline void
cleanup_fclosep (FILE **f)
{
    if (*f)
        fclose (*f);
}

#define cleanup_free __attribute__ ((cleanup (cleanup_freep)))
#define cleanup_close __attribute__ ((cleanup (cleanup_closep)))
#define cleanup_fclose __attribute__ ((cleanup (cleanup_fclosep)))

/* Hand ownership out of a cleanup_* variable. */
static inline void *
steal_ptr (void *pp)
{
    void **p = (void **) pp;
    void *r = *p;
    *p = NULL;
    return r;
}

static inline int
steal_fd (int *fd)
{
    int r = *fd;
    *fd = -1;
    return r;
}

#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))

/* Allocation that cannot fail: aborts the process on out-of-memory. */
void *xmalloc (size_t n);
void *xcalloc (size_t n, size_t m);
void *xrealloc (void *p, size_t n);
char *xstrdup (const char *s);
char *xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Read or write exactly len bytes, retrying on EINTR and short counts.
 * Return len, or -1 with errno set (short read at EOF sets errno EIO). */
ssize_t read_all (int fd, void *buf, size_t len);
ssize_t write_all (int fd, const void *buf, size_t len);
ssize_t pread_all (int fd, void *buf, size_t len, off_t off);
ssize_t pwrite_all (int fd, const void *buf, size_t len, off_t off);

/* Fill buf with len bytes from the kernel's random generator. */
int capsa_random_bytes (void *buf, size_t len, capsa_error_t *err);

/* Read a whole (small) file from an open descriptor; max bytes at most. */
int read_fd_all (int fd, size_t max, char **out, size_t *outlen, capsa_error_t *err);

/* Write a string to a file path (for /proc/self/uid_map and friends). */
int write_file (const char *path, const char *content, capsa_error_t *err);

/* Replace PATH with TEXT atomically: a temporary file beside it, given
 * owner UID:GID and MODE, written and fsync'ed, renamed over PATH, then
 * the directory fsync'ed.  Readers see the old file or the new one. */
int write_file_atomic (const char *path, const char *text, uid_t uid, gid_t gid, mode_t mode, capsa_error_t *err);

/* A NULL-terminated, growable list of owned strings. */
struct strv {
    char **v;
    size_t n, cap;
};
void strv_push (struct strv *s, const char *str);      /* copies */
void strv_push_take (struct strv *s, char *str);       /* takes */
void strv_free (struct strv *s);

/* Parse a decimal number in [min,max]; whole string must match. */
int parse_long (const char *s, long min, long max, long *out);

/* "a,b,,c" -> calls cb for each non-empty trimmed element. */
int split_list (const char *s, char sep, int (*cb) (const char *item, void *data, capsa_error_t *err),
                void *data, capsa_error_t *err);

char *trim (char *s);

/* "1.5 MiB", "12 B": a size for people, in BUF. */
void format_size (uint64_t n, char *buf, size_t len);

/* Is the absolute PATH DIR itself or below it?  Compared by whole
 * components: "/scratch" does not contain "/scratch2". */
bool path_is_within (const char *path, const char *dir);

/* Undo the octal escapes of a mountinfo field (\040...), in place. */
void mountinfo_unescape (char *s);

/* Append S to the growing string *BUF of *LEN bytes (*BUF may be NULL);
 * the second form single-quotes it for sh ('it'\''s'). */
void str_append (char **buf, size_t *len, const char *s);
void str_append_shell_quoted (char **buf, size_t *len, const char *s);

#endif
