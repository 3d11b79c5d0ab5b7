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

