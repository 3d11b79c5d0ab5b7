/* libFuzzer target for the gocryptfs image reader (SIF fs type 6), which
 * capsa-cryptfuse and the front end run on partitions users bring: the
 * outer squashfs (through libsquashfs and capsa's file object over the
 * partition), gocryptfs.conf (JSON, base64, scrypt parameters), the data
 * file's header and block layout, and block decryption.
 *
 * Each input is a partition.  It is opened with a master key (no scrypt,
 * which would only slow the fuzzer down; the conf is parsed and checked
 * all the same): the master key of the seeds in regress-gocryptfs/, which
 * gocryptfs made (password "fuzzpw", master key from gocryptfs-xray
 * -dumpmasterkey), so that inputs near the seeds open and their reads are
 * fuzzed too.
 *
 * Build metadata for tests/fuzz/build.sh follows. */
// fuzz-sources: src/crypt/gocryptfs.c src/crypt/secmem.c src/crypt/xts.c src/squashfs/sqfile.c
// fuzz-libs: -lsquashfs -ljson-c -lcrypto -lpthread
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crypt/crypt.h"
#include "lib/utils.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const uint8_t master_key[32] = {
    0x74, 0x45, 0x0a, 0x6c, 0xda, 0xc1, 0x50, 0x38, 0x49, 0xcb, 0xe7, 0xc5, 0x2a, 0x7b, 0x5b, 0xbd,
    0x9f, 0xb1, 0xc7, 0xdf, 0x1b, 0xb9, 0x30, 0x63, 0x3c, 0x3a, 0x29, 0xd6, 0x42, 0x76, 0x38, 0xa6,
};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    struct capsa_gocryptfs_volume *v = NULL;
    capsa_error_t err = NULL;
    int fd = memfd_create ("fuzz-gocryptfs", MFD_CLOEXEC);
    uint8_t buf[3 * 4096];

    if (fd < 0)
        return 0;
    if (size > 0 && write_all (fd, data, size) < 0) {
        close (fd);
        return 0;
    }
    if (capsa_gocryptfs_open (fd, 0, size, master_key, sizeof (master_key), CAPSA_CRYPT_DATA_KEY, &v, &err) == 0) {
        uint64_t n = capsa_gocryptfs_size (v);
        (void) capsa_gocryptfs_read (v, buf, sizeof (buf), 0, NULL);
        (void) capsa_gocryptfs_read (v, buf, 100, n > 50 ? n - 50 : 0, NULL);
        (void) capsa_gocryptfs_read (v, buf, 5000, n / 2, NULL);
        capsa_gocryptfs_close (v);
    }
    capsa_error_free (&err);
    close (fd);
    return 0;
}
