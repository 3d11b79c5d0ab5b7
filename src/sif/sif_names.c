/* Names of SIF codes, spelled exactly as sylabs' siftool prints them so that
 * `capsa sif list/info` output matches siftool's byte for byte. */
#include "sif/sif_private.h"

const char *
sif_datatype_name (int32_t t)
{
    static const char *const names[] = {
        "Def.FILE",     "Env.Vars",    "JSON.Labels",           "FS",   "Signature", "JSON.Generic",
        "Generic/Raw",  "Cryptographic Message", "SBOM", "OCI.RootIndex", "OCI.Blob",
    };
    if (t < SIF_DATA_DEFFILE || t > SIF_DATA_OCI_BLOB)
        return "Unknown";
    return names[t - SIF_DATA_DEFFILE];
}

const char *
sif_fstype_name (int32_t t)
{
    switch (t) {
    case SIF_FS_SQUASHFS:
        return "Squashfs";
    case SIF_FS_EXT3:
        return "Ext3";
    case SIF_FS_ARCHIVE:
        return "Archive";
    case SIF_FS_RAW:
        return "Raw";
    case SIF_FS_ENCRYPTED_SQUASHFS:
        return "Encrypted squashfs";
    case SIF_FS_GOCRYPTFS_SQUASHFS:
        return "Gocryptfs squashfs";
    }
    return "Unknown";
}

const char *
sif_parttype_name (int32_t t)
{
    switch (t) {
    case SIF_PART_SYSTEM:
        return "System";
    case SIF_PART_PRIMSYS:
        return "*System";
    case SIF_PART_DATA:
        return "Data";
    case SIF_PART_OVERLAY:
        return "Overlay";
    }
    return "Unknown";
}

/* siftool prints Go's crypto.Hash names, not the SIF constant names. */
const char *
sif_hashtype_name (int32_t t)
{
    switch (t) {
    case SIF_HASH_SHA256:
        return "SHA-256";
    case SIF_HASH_SHA384:
        return "SHA-384";
    case SIF_HASH_SHA512:
        return "SHA-512";
    case SIF_HASH_BLAKE2S:
        return "BLAKE2s-256";
    case SIF_HASH_BLAKE2B:
        return "BLAKE2b-256";
    }
    return "Unknown";
}

const char *
sif_format_name (int32_t t)
{
    switch (t) {
    case SIF_FORMAT_OPENPGP:
        return "OpenPGP";
    case SIF_FORMAT_PEM:
        return "PEM";
    }
    return "Unknown";
}

const char *
sif_message_name (int32_t t)
{
    switch (t) {
    case SIF_MESSAGE_CLEAR_SIGNATURE:
        return "Clear Signature";
    case SIF_MESSAGE_RSA_OAEP:
        return "RSA-OAEP";
    }
    return "Unknown";
}

static const char *const sbom_names[] = {
    "cyclonedx-json", "cyclonedx-xml",  "github-json", "spdx-json",
    "spdx-rdf",       "spdx-tag-value", "spdx-yaml",   "syft-json",
};

const char *
sif_sbom_format_name (int32_t f)
{
    if (f < SIF_SBOM_CYCLONEDX_JSON || f > SIF_SBOM_SYFT_JSON)
        return "unknown";
    return sbom_names[f - SIF_SBOM_CYCLONEDX_JSON];
}

int32_t
sif_sbom_format_from_name (const char *name)
{
    if (strcmp (name, "github") == 0) /* siftool accepts this alias */
        return SIF_SBOM_GITHUB_JSON;
    for (size_t i = 0; i < sizeof (sbom_names) / sizeof (sbom_names[0]); i++)
        if (strcmp (name, sbom_names[i]) == 0)
            return (int32_t) i + SIF_SBOM_CYCLONEDX_JSON;
    return 0;
}

/* SIF arch codes are two ASCII digits and a NUL; index = code value. */
static const char *const arch_names[] = {
    NULL,   "386",  "amd64",  "arm",      "arm64", "ppc64",  "ppc64le",
    "mips", "mipsle", "mips64", "mips64le", "s390x", "riscv64",
};

const char *
sif_arch_name (const char code[3])
{
    unsigned v;

    if (code[0] < '0' || code[0] > '9' || code[1] < '0' || code[1] > '9' || code[2] != '\0')
        return "unknown";
    v = (unsigned) (code[0] - '0') * 10 + (unsigned) (code[1] - '0');
    if (v == 0 || v >= sizeof (arch_names) / sizeof (arch_names[0]))
        return "unknown";
    return arch_names[v];
}

const char *
sif_arch_code (const char *goarch)
{
    static const char codes[][3] = { "00", "01", "02", "03", "04", "05", "06",
                                     "07", "08", "09", "10", "11", "12" };

    if (goarch == NULL)
        return NULL;
    for (size_t i = 1; i < sizeof (arch_names) / sizeof (arch_names[0]); i++)
        if (strcmp (goarch, arch_names[i]) == 0)
            return codes[i];
    return NULL;
}

const char *
sif_host_arch (void)
{
#if defined(__x86_64__)
    return "amd64";
#elif defined(__i386__)
    return "386";
#elif defined(__aarch64__)
    return "arm64";
#elif defined(__arm__)
    return "arm";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
    return "ppc64le";
#elif defined(__powerpc64__)
    return "ppc64";
#elif defined(__s390x__)
    return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
    return "riscv64";
#elif defined(__mips64) && defined(__MIPSEL__)
    return "mips64le";
#elif defined(__mips64)
    return "mips64";
#elif defined(__mips__) && defined(__MIPSEL__)
    return "mipsle";
#elif defined(__mips__)
    return "mips";
#else
    return "unknown";
#endif
}
