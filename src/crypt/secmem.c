/* Buffers for secrets: their own pages, locked when allowed, not dumped,
 * wiped on free.  The first page-aligned header holds the sizes, so a
 * buffer can be freed from its pointer alone. */
#include "crypt/crypt_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

struct secure_hdr {
    size_t map_len; /* whole mapping, header included */
    size_t len;     /* usable bytes */
    bool locked;
};

/* The header sits at the start of the mapping; user data starts 64 bytes
 * in (cache-line aligned, enough for any key type). */
#define SECURE_OFFSET 64

void *
capsa_secure_alloc (size_t len, bool *locked)
{
    size_t page = (size_t) sysconf (_SC_PAGESIZE);
    size_t map_len;
    struct secure_hdr *h;

    if (len > SIZE_MAX - SECURE_OFFSET - page)
        abort ();
    map_len = (len + SECURE_OFFSET + page - 1) / page * page;
    h = mmap (NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h == MAP_FAILED) {
        static const char msg[] = "FATAL:   out of memory\n";
        (void) !write (STDERR_FILENO, msg, sizeof (msg) - 1);
        abort ();
    }
    /* Never in a core dump.  (Not MADV_WIPEONFORK: a forked helper may
     * legitimately need the secret before it execs.) */
    (void) madvise (h, map_len, MADV_DONTDUMP);
    h->map_len = map_len;
    h->len = len;
    h->locked = mlock (h, map_len) == 0;
    if (locked)
        *locked = h->locked;
    return (char *) h + SECURE_OFFSET;
}

static struct secure_hdr *
hdr_of (const void *p)
{
    return (struct secure_hdr *) ((char *) (uintptr_t) p - SECURE_OFFSET);
}

size_t
capsa_secure_size (const void *p)
{
    return p ? hdr_of (p)->len : 0;
}

void
capsa_secure_free (void *p)
{
    struct secure_hdr *h;
    size_t map_len;

    if (p == NULL)
        return;
    h = hdr_of (p);
    map_len = h->map_len;
    explicit_bzero (h, map_len);
    (void) munlock (h, map_len);
    (void) munmap (h, map_len);
}


uint8_t *
capsa_secret_read_fd (int fd, size_t *len, capsa_error_t *err)
{
    uint8_t *key = capsa_secure_alloc (CAPSA_SECRET_RECORD_MAX + 1, NULL);
    size_t n = 0;
    for (;;) {
        ssize_t r = read (fd, key + n, CAPSA_SECRET_RECORD_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            capsa_secure_free (key);
            close (fd);
            capsa_error_make (err, e, "cannot read the key descriptor");
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t) r;
        if (n > CAPSA_SECRET_RECORD_MAX) {
            capsa_secure_free (key);
            close (fd);
            capsa_error_make (err, 0, "the key record is longer than %u bytes", CAPSA_SECRET_RECORD_MAX);
            return NULL;
        }
    }
    close (fd);
    if (n == 0) {
        capsa_secure_free (key);
        capsa_error_make (err, 0, "no key on the key descriptor");
        return NULL;
    }
    *len = n;
    return key;
}
