/* Unit tests for src/sif: the reader must refuse every malformed image
 * with an error (never crash), accept every reference image, and the
 * writer must round-trip create/add/del/setprim.
 *
 * Fixtures: $FIXTURES, else ../shared/fixtures relative to the cwd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/utils.h"
#include "sif/sif.h"
#include "tap.h"

static const char *fixtures;
static char tmpdir[] = "/tmp/capsa-test-sif.XXXXXX";

/* ---- helpers -------------------------------------------------------------- */

static char *
fixture (const char *name)
{
    return xasprintf ("%s/sif/%s", fixtures, name);
}

static uint8_t *
slurp (const char *path, size_t *len)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    capsa_error_t err = NULL;

    *len = 0;
    if (fd < 0)
        return NULL;
    if (read_fd_all (fd, 64 << 20, &buf, len, &err) < 0) {
        capsa_error_free (&err);
        buf = NULL;
    }
    close (fd);
    return (uint8_t *) buf;
}

static char *
write_tmp (const char *name, const void *buf, size_t len)
{
    char *path = xasprintf ("%s/%s", tmpdir, name);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all (fd, buf, len) < 0) {
        perror (path);
        exit (2);
    }
    close (fd);
    return path;
}

static void
put32 (uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

static void
put64 (uint8_t *p, int64_t sv)
{
    uint64_t v = (uint64_t) sv;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

/* Whether [a, a+alen) and [b, b+blen) share a byte (no overflow: the
 * callers' values are checked to lie inside a small file first, or come
 * from a header the reader has accepted). */
static bool
ranges_overlap (int64_t a, int64_t alen, int64_t b, int64_t blen)
{
    return alen > 0 && blen > 0 && a < b + blen && b < a + alen;
}

/* Field offsets (DESIGN.md section 2). */
enum { H_DFREE = 80, H_DTOTAL = 88, H_DOFF = 96, H_DSIZE = 104, H_DATAOFF = 112, H_DATASIZE = 120 };
enum { D_TYPE = 0, D_USED = 4, D_ID = 5, D_OFFSET = 17, D_SIZE = 25, D_NAME = 73 };
#define SLOT(n) (4096 + (n) * 585)

/* Open buf both by path and through a memfd; both must fail cleanly with an
 * "invalid SIF image" message. */
static void
expect_invalid (const char *what, const uint8_t *buf, size_t len, const char *needle)
{
    char *path = write_tmp ("bad.sif", buf, len);
    struct sif_image *img = NULL;
    capsa_error_t err = NULL;
    char name[256];
    int rc, fd;

    rc = sif_open (path, false, &img, &err);
    snprintf (name, sizeof (name), "malformed (%s) rejected by sif_open", what);
    CHECK (rc < 0 && img == NULL && err != NULL && strstr (err->msg, "invalid SIF image") != NULL
               && (needle == NULL || strstr (err->msg, needle) != NULL),
           name);
    if (err && (rc >= 0 || (needle && strstr (err->msg, needle) == NULL)))
        printf ("# got: %s\n", err->msg);
    capsa_error_free (&err);
    sif_close (img);

    fd = memfd_create ("sif", MFD_CLOEXEC);
    if (fd >= 0 && write_all (fd, buf, len) >= 0) {
        img = NULL;
        rc = sif_open_fd (fd, &img, &err);
        snprintf (name, sizeof (name), "malformed (%s) rejected by sif_open_fd", what);
        CHECK (rc < 0 && img == NULL && err != NULL, name);
        capsa_error_free (&err);
        sif_close (img);
        /* the caller's descriptor survives a failed open */
        CHECK (fcntl (fd, F_GETFD) >= 0, "sif_open_fd leaves the fd open on failure");
    }
    if (fd >= 0)
        close (fd);
    unlink (path);
    free (path);
}

/* ---- reading the reference images ------------------------------------------ */

static void
test_fixtures (void)
{
    static const char *const names[] = {
        "sylabs/empty.sif", "sylabs/empty-id.sif", "sylabs/empty-launch-script.sif", "sylabs/one-group.sif",
        "sylabs/one-group-signed-dsse.sif", "sylabs/one-group-signed-legacy.sif",
        "sylabs/one-group-signed-legacy-all.sif", "sylabs/one-group-signed-legacy-group.sif",
        "sylabs/one-group-signed-pgp.sif", "sylabs/one-object-crypt-message.sif",
        "sylabs/one-object-generic-json.sif", "sylabs/one-object-oci-blob.sif",
        "sylabs/one-object-oci-root-index.sif", "sylabs/one-object-sbom.sif", "sylabs/one-object-time.sif",
        "sylabs/two-groups.sif", "sylabs/two-groups-signed-dsse.sif", "sylabs/two-groups-signed-legacy.sif",
        "sylabs/two-groups-signed-legacy-all.sif", "sylabs/two-groups-signed-legacy-group.sif",
        "sylabs/two-groups-signed-pgp.sif", "busybox_amd64.sif",
    };
    for (size_t i = 0; i < ARRAY_SIZE (names); i++) {
        cleanup_free char *path = fixture (names[i]);
        struct sif_image *img = NULL;
        capsa_error_t err = NULL;
        char name[256];

        snprintf (name, sizeof (name), "reference image %s loads", names[i]);
        CHECK (sif_open (path, false, &img, &err) == 0, name);
        if (err)
            printf ("# %s\n", err->msg);
        capsa_error_free (&err);
        sif_close (img);
    }
}

static void
test_busybox (void)
{
    cleanup_free char *path = fixture ("busybox_amd64.sif");
    cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
    struct sif_image *img = NULL;
    const struct sif_descriptor *d = NULL;
    struct sif_partition p;
    capsa_error_t err = NULL;
    char *data = NULL;
    size_t len = 0;
    uint8_t magic[4];

    CHECK (fd >= 0 && sif_open_fd_named (fd, "busybox", &img, &err) == 0, "busybox opens from an fd");
    if (img == NULL) {
        capsa_error_free (&err);
        return;
    }
    CHECK (sif_descriptor_count (img) == 5, "busybox has 5 objects");
    CHECK (sif_find_primary_partition (img, &d, &err) == 0 && d && d->id == 4, "primary partition is object 4");
    CHECK (d && sif_get_partition (d, &p, &err) == 0 && p.fstype == SIF_FS_SQUASHFS
               && strcmp (sif_arch_name (p.arch), "amd64") == 0,
           "primary partition is amd64 squashfs");
    CHECK (d && sif_read_object_at (img, d, magic, 4, 0, &err) == 0 && memcmp (magic, "hsqs", 4) == 0,
           "partition starts with the squashfs magic");
    CHECK (d && sif_read_object_at (img, d, magic, 4, d->size - 2, &err) < 0, "read past the object refused");
    capsa_error_free (&err);
    CHECK (sif_find_descriptor (img, 1, &d, &err) == 0 && sif_read_object (img, d, 4096, &data, &len, &err) == 0
               && len == 39 && strncmp (data, "BootStrap: docker", 17) == 0,
           "definition file reads back");
    free (data);
    CHECK (sif_find_descriptor (img, 2, &d, &err) == 0 && sif_read_object (img, d, 10, &data, &len, &err) < 0
               && err && err->code == EFBIG,
           "sif_read_object honours its size limit");
    capsa_error_free (&err);
    CHECK (sif_find_descriptor (img, 99, &d, &err) < 0 && err && err->code == ENOENT, "missing object is ENOENT");
    capsa_error_free (&err);
    CHECK (sif_find_descriptor (img, 5, &d, &err) == 0 && d->link_is_group && d->link == 1 && d->group == 0,
           "signature links to group 1");
    CHECK (strcmp (sif_get_header (img)->arch, "02") == 0, "header arch is amd64");
    sif_close (img);
    CHECK (fcntl (fd, F_GETFD) >= 0, "sif_close does not close a borrowed fd");

    CHECK (strcmp (sif_arch_code ("arm64"), "04") == 0 && sif_arch_code ("vax") == NULL, "arch codes");
    CHECK (strcmp (sif_arch_name ("12"), "riscv64") == 0 && strcmp (sif_arch_name ("13"), "unknown") == 0,
           "arch names");
    CHECK (sif_arch_code (sif_host_arch ()) != NULL, "host arch has a SIF code");
}

/* ---- malformed images ------------------------------------------------------- */

static void
test_malformed (void)
{
    cleanup_free char *bb_path = fixture ("busybox_amd64.sif");
    cleanup_free char *og_path = fixture ("sylabs/one-group.sif");
    cleanup_free uint8_t *bb = NULL, *og = NULL;
    cleanup_free uint8_t *buf = NULL;
    size_t bblen, oglen;

    bb = slurp (bb_path, &bblen);
    og = slurp (og_path, &oglen);
    CHECK (bb != NULL && og != NULL && bblen > 700000 && oglen == 40960, "fixtures readable");
    if (bb == NULL || og == NULL)
        return;
    buf = xmalloc (bblen > 65536 ? bblen : 65536);

#define FROM_OG() memcpy (buf, og, oglen)
    expect_invalid ("empty file", bb, 0, "too small");
    expect_invalid ("truncated header", bb, 100, "too small");
    expect_invalid ("truncated descriptor table", bb, 10000, "descriptor table extends past end of file");
    expect_invalid ("truncated partition", bb, 500000, "past end of file");
    expect_invalid ("truncated last byte", bb, bblen - 1, "past end of file");

    FROM_OG ();
    memcpy (buf + 32, "SIF_MAGIX", 9);
    expect_invalid ("bad magic", buf, oglen, "magic");
    FROM_OG ();
    memcpy (buf + 42, "02", 2);
    expect_invalid ("bad version", buf, oglen, "version");

    FROM_OG ();
    put64 (buf + H_DTOTAL, 1000000000);
    put64 (buf + H_DSIZE, INT64_C (1000000000) * 585);
    expect_invalid ("10^9 descriptors", buf, oglen, "descriptor count");
    FROM_OG ();
    put64 (buf + H_DTOTAL, -1);
    expect_invalid ("negative descriptor count", buf, oglen, "descriptor count");
    FROM_OG ();
    put64 (buf + H_DSIZE, 48 * 585 - 1);
    expect_invalid ("descriptor size != total*585", buf, oglen, "does not match");
    FROM_OG ();
    put64 (buf + H_DOFF, 40960);
    expect_invalid ("descriptor table past end", buf, oglen, "descriptor table extends past end of file");
    FROM_OG ();
    put64 (buf + H_DOFF, INT64_MAX - 10);
    expect_invalid ("descriptor offset overflow", buf, oglen, NULL);
    FROM_OG ();
    put64 (buf + H_DOFF, 16);
    expect_invalid ("descriptor table over header", buf, oglen, "overlaps the header");
    FROM_OG ();
    put64 (buf + H_DFREE, 49);
    expect_invalid ("free > total", buf, oglen, "free descriptor count");
    FROM_OG ();
    put64 (buf + H_DATASIZE, INT64_MAX);
    expect_invalid ("data section past end", buf, oglen, "data section");

    FROM_OG ();
    put64 (buf + SLOT (1) + D_SIZE, INT64_C (1) << 40);
    expect_invalid ("descriptor past end", buf, oglen, "descriptor 2 extends past end of file");
    FROM_OG ();
    put64 (buf + SLOT (1) + D_OFFSET, INT64_MAX);
    expect_invalid ("offset+size overflow", buf, oglen, "descriptor 2 extends past end of file");
    FROM_OG ();
    put64 (buf + SLOT (0) + D_OFFSET, -4096);
    expect_invalid ("negative offset", buf, oglen, "negative");
    FROM_OG ();
    put64 (buf + SLOT (1) + D_OFFSET, 32768);
    expect_invalid ("overlapping objects", buf, oglen, "overlap");
    FROM_OG ();
    put64 (buf + SLOT (1) + D_OFFSET, 30000);
    expect_invalid ("object over the descriptor table", buf, oglen, "descriptor table");
    FROM_OG ();
    put64 (buf + SLOT (1) + D_OFFSET, 64);
    put64 (buf + SLOT (1) + D_SIZE, 16);
    expect_invalid ("object over the header", buf, oglen, "header");
    FROM_OG ();
    put32 (buf + SLOT (0) + D_TYPE, 0x4010);
    expect_invalid ("unknown data type", buf, oglen, "unknown data type 0x4010");
    FROM_OG ();
    put32 (buf + SLOT (0) + D_TYPE, 0x4000);
    expect_invalid ("data type below range", buf, oglen, "unknown data type");
    FROM_OG ();
    memset (buf + SLOT (0) + D_NAME, 'A', 128);
    expect_invalid ("unterminated name", buf, oglen, "unterminated name");
    FROM_OG ();
    put32 (buf + SLOT (1) + D_ID, 1);
    expect_invalid ("duplicate object ID", buf, oglen, "object ID 1");
    FROM_OG ();
    put32 (buf + SLOT (1) + D_ID, 0);
    expect_invalid ("object ID 0", buf, oglen, "object ID 0");
    FROM_OG ();
    buf[SLOT (5) + D_USED] = 1; /* a used descriptor full of zeros */
    expect_invalid ("used empty descriptor", buf, oglen, NULL);

    /* Random bytes carrying the magic and version must be refused. */
    srand (12345);
    for (int round = 0; round < 200; round++) {
        bool ok = true;
        for (size_t i = 0; i < 65536; i++)
            buf[i] = (uint8_t) rand ();
        memcpy (buf + 32, "SIF_MAGIC\0" "01\0", 13);
        char *path = write_tmp ("rand.sif", buf, 65536);
        struct sif_image *img = NULL;
        capsa_error_t err = NULL;
        if (sif_open (path, false, &img, &err) == 0 || err == NULL)
            ok = false;
        capsa_error_free (&err);
        sif_close (img);
        free (path);
        if (!ok) {
            CHECK (ok, "random bytes with the magic rejected");
            break;
        }
        if (round == 199)
            CHECK (ok, "random bytes with the magic rejected (200 rounds)");
    }

    /* A valid header over a random descriptor table.  The reader either
     * refuses it with a message, or accepts it and then keeps the promise
     * of sif.h: every object lies inside the file, overlaps neither the
     * header, the descriptor table nor another object, and reads back.  (A
     * crash ends this binary, which tests/run.sh reports as a failure.) */
    {
        int rounds = 0, accepted = 0, refused = 0, broken = 0;
        char why[256] = "";
        for (int round = 0; round < 500; round++) {
            struct sif_image *img = NULL;
            capsa_error_t err = NULL;
            int fd = memfd_create ("sif", MFD_CLOEXEC);

            /* Odd rounds: one byte in eight replaced; even rounds: one to
             * four bytes, so that many tables are still accepted. */
            FROM_OG ();
            if (round % 2)
                for (size_t i = SLOT (0); i < SLOT (3); i++) {
                    if (rand () % 8 == 0)
                        buf[i] = (uint8_t) rand ();
                }
            else
                for (int k = rand () % 4; k >= 0; k--)
                    buf[SLOT (0) + (size_t) rand () % (SLOT (3) - SLOT (0))] = (uint8_t) rand ();
            if (fd < 0 || write_all (fd, buf, oglen) < 0) {
                if (fd >= 0)
                    close (fd);
                break;
            }
            rounds++;
            int rc = sif_open_fd (fd, &img, &err);
            if (rc < 0) {
                if (img == NULL && err != NULL && err->msg[0] != '\0')
                    refused++;
                else if (broken++ == 0)
                    snprintf (why, sizeof (why), "round %d: refused without a message", round);
            } else if (img == NULL || err != NULL) {
                if (broken++ == 0)
                    snprintf (why, sizeof (why), "round %d: accepted with an error set", round);
            } else {
                const struct sif_header *h = sif_get_header (img);
                size_t n = sif_descriptor_count (img);
                const char *bad = NULL;
                accepted++;
                for (size_t i = 0; i < n && bad == NULL; i++) {
                    const struct sif_descriptor *d = sif_descriptor_at (img, i);
                    char tmp[64];
                    if (d->offset < 0 || d->size < 0 || d->offset > (int64_t) oglen
                        || d->size > (int64_t) oglen - d->offset)
                        bad = "an object outside the file";
                    else if (ranges_overlap (d->offset, d->size, 0, SIF_HEADER_SIZE)
                             || ranges_overlap (d->offset, d->size, h->descr_offset, h->descr_size))
                        bad = "an object over the header or the descriptor table";
                    for (size_t j = 0; j < i && bad == NULL; j++) {
                        const struct sif_descriptor *e = sif_descriptor_at (img, j);
                        if (ranges_overlap (d->offset, d->size, e->offset, e->size))
                            bad = "two objects overlap";
                    }
                    if (bad == NULL && d->size <= (int64_t) sizeof (tmp)
                        && sif_read_object_at (img, d, tmp, (size_t) d->size, 0, &err) < 0)
                        bad = "an accepted object does not read back";
                    capsa_error_free (&err);
                }
                if (bad != NULL && broken++ == 0)
                    snprintf (why, sizeof (why), "round %d: %s", round, bad);
                const struct sif_descriptor *d;
                sif_find_primary_partition (img, &d, &err);
            }
            capsa_error_free (&err);
            sif_close (img);
            close (fd);
        }
        printf ("# random descriptor tables: %d rounds, %d accepted, %d refused\n", rounds, accepted, refused);
        if (broken)
            printf ("# first broken promise: %s\n", why);
        CHECK (rounds == 500, "random descriptor tables: 500 rounds ran");
        CHECK (broken == 0, "random descriptor tables: refused with a message, or accepted with every object inside "
                            "the file, apart from the header, the table and each other");
        CHECK (accepted > 0 && refused > 0, "random descriptor tables: both outcomes occur (the mutations reach the reader)");
    }

    /* Not a regular file. */
    {
        struct sif_image *img = NULL;
        capsa_error_t err = NULL;
        int fd = open (tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        CHECK (sif_open_fd (fd, &img, &err) < 0 && err != NULL, "a directory is not a SIF image");
        capsa_error_free (&err);
        close (fd);
    }
}

/* ---- writing --------------------------------------------------------------- */

static int
data_fd (const char *content, size_t len)
{
    int fd = memfd_create ("data", MFD_CLOEXEC);
    if (fd < 0 || write_all (fd, content, len) < 0 || lseek (fd, 0, SEEK_SET) < 0)
        exit (2);
    return fd;
}

static uint32_t
add (struct sif_image *img, const struct sif_add_opts *o, const char *content)
{
    capsa_error_t err = NULL;
    uint32_t id = 0;
    int fd = data_fd (content, strlen (content));

    if (sif_add_object (img, o, fd, &id, &err) < 0) {
        printf ("# add: %s\n", err->msg);
        capsa_error_free (&err);
        id = 0;
    }
    close (fd);
    return id;
}

static void
test_roundtrip (void)
{
    cleanup_free char *path = xasprintf ("%s/new.sif", tmpdir);
    cleanup_free char *bad = xasprintf ("%s/no/such/dir/new.sif", tmpdir);
    struct sif_create_opts co = { .arch = NULL };
    struct sif_image *img = NULL;
    const struct sif_descriptor *d;
    struct sif_partition p;
    capsa_error_t err = NULL;
    char *data = NULL, digest[400];
    size_t len;
    struct stat st;
    DIR *dir;
    int entries = 0;

    CHECK (sif_create (path, &co, &err) == 0, "create an empty SIF");
    capsa_error_free (&err);
    CHECK (stat (path, &st) == 0 && st.st_size == 4096 + 48 * 585, "empty SIF is header + 48 descriptors");
    dir = opendir (tmpdir);
    for (struct dirent *e; dir && (e = readdir (dir));)
        if (e->d_name[0] != '.' || strstr (e->d_name, ".tmp"))
            entries += strstr (e->d_name, ".tmp") ? 100 : 1;
    if (dir)
        closedir (dir);
    CHECK (entries < 100, "no temporary file left beside the new image");
    CHECK (sif_create (bad, NULL, &err) < 0 && err != NULL, "create in a missing directory fails");
    capsa_error_free (&err);

    CHECK (sif_open (path, false, &img, &err) == 0, "new SIF opens");
    if (img) {
        const struct sif_header *h = sif_get_header (img);
        CHECK (strcmp (h->launch, "#!/usr/bin/env run-singularity\n") == 0, "launch script set");
        CHECK (h->descr_free == 48 && h->descr_total == 48 && h->data_offset == 32176 && h->data_size == 0,
               "header counts of a new SIF");
        CHECK ((h->uuid[6] & 0xf0) == 0x40, "random version-4 UUID");
        struct sif_add_opts o = { .datatype = SIF_DATA_GENERIC, .alignment = -1 };
        CHECK (sif_add_object (img, &o, 0, NULL, &err) < 0 && err && err->code == EBADF,
               "read-only image cannot be modified");
        capsa_error_free (&err);
        sif_close (img);
        img = NULL;
    }

    CHECK (sif_open (path, true, &img, &err) == 0, "new SIF opens writable");
    if (img == NULL) {
        capsa_error_free (&err);
        return;
    }
    {
        struct sif_add_opts def = { .datatype = SIF_DATA_DEFFILE, .group = 1, .alignment = -1, .name = "def" };
        struct sif_add_opts p1 = { .datatype = SIF_DATA_PARTITION, .group = 1, .alignment = -1,
                                   .fstype = SIF_FS_SQUASHFS, .parttype = SIF_PART_PRIMSYS, .arch = "amd64" };
        struct sif_add_opts p2 = { .datatype = SIF_DATA_PARTITION, .group = 1, .alignment = -1,
                                   .fstype = SIF_FS_EXT3, .parttype = SIF_PART_SYSTEM, .arch = "arm64" };
        struct sif_add_opts oci = { .datatype = SIF_DATA_OCI_BLOB, .alignment = -1 };
        struct sif_add_opts big = { .datatype = SIF_DATA_GENERIC, .alignment = -1,
                                    .name = "0123456789012345678901234567890123456789012345678901234567890123456789"
                                            "0123456789012345678901234567890123456789012345678901234567890123456789" };

        CHECK (add (img, &def, "bootstrap: docker\n") == 1, "add a definition file as object 1");
        CHECK (add (img, &p1, "partition one") == 2, "add a primary partition as object 2");
        CHECK (add (img, &p1, "again") == 0, "a second primary partition is refused");
        CHECK (add (img, &p2, "partition two") == 3, "add a system partition as object 3");
        CHECK (add (img, &oci, "abc") == 4, "add an OCI blob as object 4");
        CHECK (add (img, &big, "x") == 0, "a 140-byte name is refused");
        CHECK (sif_find_descriptor (img, 2, &d, &err) == 0 && d->offset == 32768 && d->offset % 4096 == 0,
               "partitions are aligned to 4096");
        CHECK (sif_find_descriptor (img, 4, &d, &err) == 0 && sif_get_oci_digest (d, digest, sizeof (digest), &err) == 0
                   && strcmp (digest, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
               "OCI blob digest is its SHA-256");
        CHECK (strcmp (sif_get_header (img)->arch, "02") == 0, "primary partition sets the header arch");
        capsa_error_free (&err);
    }
    sif_close (img);
    img = NULL;

    /* Reopen: everything persisted, and the reader accepts what the writer wrote. */
    CHECK (sif_open (path, true, &img, &err) == 0, "modified SIF reopens");
    if (img == NULL) {
        capsa_error_free (&err);
        return;
    }
    CHECK (sif_descriptor_count (img) == 4 && sif_get_header (img)->descr_free == 44, "4 objects, 44 free");
    CHECK (sif_find_descriptor (img, 1, &d, &err) == 0 && sif_read_object (img, d, 100, &data, &len, &err) == 0
               && len == 18 && strcmp (data, "bootstrap: docker\n") == 0 && strcmp (d->name, "def") == 0
               && d->group == 1,
           "definition file reads back");
    free (data);
    CHECK (sif_set_primary (img, 3, &err) == 0, "setprim 3");
    capsa_error_free (&err);
    CHECK (sif_find_primary_partition (img, &d, &err) == 0 && d->id == 3, "object 3 is now primary");
    CHECK (sif_find_descriptor (img, 2, &d, &err) == 0 && sif_get_partition (d, &p, &err) == 0
               && p.parttype == SIF_PART_SYSTEM && p.fstype == SIF_FS_SQUASHFS && strcmp (p.arch, "02") == 0,
           "former primary demoted to System");
    CHECK (strcmp (sif_get_header (img)->arch, "04") == 0, "header arch follows the new primary");
    CHECK (sif_set_primary (img, 1, &err) < 0 && err != NULL, "setprim on a non-partition fails");
    capsa_error_free (&err);
    CHECK (sif_delete_object (img, 2, true, false, &err) == 0, "delete object 2");
    CHECK (sif_find_descriptor (img, 2, &d, &err) < 0, "object 2 is gone");
    capsa_error_free (&err);
    CHECK (sif_delete_object (img, 3, false, false, &err) == 0 && strcmp (sif_get_header (img)->arch, "00") == 0,
           "deleting the primary resets the header arch");
    {
        struct sif_add_opts g = { .datatype = SIF_DATA_GENERIC_JSON, .group = 2, .link = 1, .alignment = 0 };
        CHECK (add (img, &g, "{}") == 2, "a new object reuses the first free slot");
    }
    sif_close (img);
    img = NULL;

    CHECK (sif_open (path, true, &img, &err) == 0, "SIF reopens after del/setprim");
    if (img) {
        CHECK (sif_descriptor_count (img) == 3 && sif_get_header (img)->descr_free == 45, "3 objects, 45 free");
        CHECK (sif_find_descriptor (img, 2, &d, &err) == 0 && d->datatype == SIF_DATA_GENERIC_JSON && d->group == 2
                   && d->link == 1 && !d->link_is_group,
               "reused slot holds the new object");
        stat (path, &st);
        CHECK (sif_delete_object (img, 2, false, true, &err) == 0, "delete with compact");
        {
            struct stat st2;
            CHECK (stat (path, &st2) == 0 && st2.st_size < st.st_size
                       && st2.st_size == sif_get_header (img)->data_offset + sif_get_header (img)->data_size,
                   "compact truncates the file to the data end");
        }
        sif_close (img);
        img = NULL;
        CHECK (sif_open (path, false, &img, &err) == 0, "compacted SIF reopens");
        sif_close (img);
    }
    capsa_error_free (&err);

    /* A pipe as data source, and a deterministic image stays deterministic. */
    {
        static const uint8_t nil[16];
        struct sif_create_opts det = { .uuid = nil, .time = SIF_TIME_UNSET, .launch = "" };
        struct sif_add_opts g = { .datatype = SIF_DATA_GENERIC, .group = 1, .alignment = -1 };
        int pfd[2];
        uint32_t id = 0;

        CHECK (sif_create (path, &det, &err) == 0 && sif_open (path, true, &img, &err) == 0, "deterministic SIF");
        if (img && pipe (pfd) == 0) {
            (void) !write (pfd[1], "piped", 5);
            close (pfd[1]);
            CHECK (sif_add_object (img, &g, pfd[0], &id, &err) == 0 && id == 1, "add from a pipe");
            close (pfd[0]);
            CHECK (sif_find_descriptor (img, 1, &d, &err) == 0 && d->size == 5 && d->created == SIF_TIME_UNSET
                       && sif_get_header (img)->modified == SIF_TIME_UNSET,
                   "deterministic image keeps unset times");
        }
        capsa_error_free (&err);
        sif_close (img);
    }
}

static int
rm_entry (const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove (p);
}

int
main (void)
{
    fixtures = getenv ("FIXTURES");
    if (fixtures == NULL || *fixtures == '\0')
        fixtures = "../shared/fixtures";
    if (mkdtemp (tmpdir) == NULL) {
        perror ("mkdtemp");
        return 2;
    }
    test_fixtures ();
    test_busybox ();
    test_malformed ();
    test_roundtrip ();
    nftw (tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return tap_done ();
}
