/* capsa sif: inspect and modify SIF images, the way sylabs' siftool does.
 *
 * header, list, info and dump print exactly what siftool prints for the
 * same image (tests/e2e/test_sif.sh compares them with siftool's own golden
 * files), so scripts written against siftool keep working.  new, add, del
 * and setprim take siftool's arguments and flags. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include "commands.h"
#include "lib/error.h"
#include "lib/utils.h"
#include "sif/sif.h"

/* ---- Go formatting helpers ---------------------------------------------- */

/* siftool's readableSize(): "%d B" below 1 KiB, else the size in the
 * largest unit that keeps it under 1024, rounded half away from zero.  The
 * divisor is a power of two, so integer arithmetic gives Go's float result
 * for every size below 2^53. */
static void
readable_size (int64_t size, char *buf, size_t len)
{
    static const char units[] = "KMGTPE";
    uint64_t div = 1024, mag, q;
    int exp = 0;

    if (-1024 < size && size < 1024) {
        snprintf (buf, len, "%" PRId64 " B", size);
        return;
    }
    for (int64_t n = size / 1024; n <= -1024 || n >= 1024; n /= 1024) {
        div *= 1024;
        exp++;
    }
    mag = size < 0 ? (uint64_t) 0 - (uint64_t) size : (uint64_t) size;
    q = mag / div + (mag % div >= div - mag % div ? 1 : 0);
    snprintf (buf, len, "%s%" PRIu64 " %ciB", size < 0 ? "-" : "", q, units[exp]);
}

/* Go's time.Time.String() of a Unix time in UTC:
 * "2020-05-22 19:30:59 +0000 UTC".  Civil-from-days conversion on 64-bit
 * integers, so that any value an image holds formats without overflow. */
static void
go_time_string (int64_t t, char *buf, size_t len)
{
    int64_t days = t / 86400, secs = t % 86400;
    int64_t z, era, doe, yoe, y, doy, mp, d, m;

    if (secs < 0) {
        secs += 86400;
        days--;
    }
    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    snprintf (buf, len, "%s%04" PRId64 "-%02" PRId64 "-%02" PRId64 " %02" PRId64 ":%02" PRId64 ":%02" PRId64 " +0000 UTC",
              y < 0 ? "-" : "", y < 0 ? -y : y, m, d, secs / 3600, secs / 60 % 60, secs % 60);
}

/* ---- A text/tabwriter work-alike ------------------------------------------
 * siftool aligns header and info output with Go's text/tabwriter
 * (minwidth 0, padchar ' ', no flags).  Cells end at '\t'; the text after
 * the last tab of a line is not aligned; a column's width is computed over
 * each run of consecutive lines that have a cell in it. */

struct tw_line {
    const char **cells;
    size_t *width;
    size_t n;
};

struct tw {
    FILE *out;
    struct tw_line *lines;
    size_t nlines;
    size_t padding;
    size_t widths[32];
    size_t nwidths;
};

static size_t
rune_count (const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char) *s & 0xC0) != 0x80)
            n++;
    return n;
}

static void
tw_write_lines (struct tw *tw, size_t line0, size_t line1)
{
    for (size_t i = line0; i < line1; i++) {
        const struct tw_line *l = &tw->lines[i];
        for (size_t j = 0; j < l->n; j++) {
            fputs (l->cells[j], tw->out);
            if (j < tw->nwidths)
                for (size_t k = l->width[j]; k < tw->widths[j]; k++)
                    fputc (' ', tw->out);
        }
        fputc ('\n', tw->out);
    }
}

static void
tw_format (struct tw *tw, size_t line0, size_t line1)
{
    size_t column = tw->nwidths;

    for (size_t ln = line0; ln < line1; ln++) {
        size_t width = 0;

        if (column + 1 >= tw->lines[ln].n)
            continue;
        tw_write_lines (tw, line0, ln);
        line0 = ln;
        for (; ln < line1; ln++) {
            const struct tw_line *l = &tw->lines[ln];
            if (column + 1 >= l->n)
                break;
            if (l->width[column] + tw->padding > width)
                width = l->width[column] + tw->padding;
        }
        if (tw->nwidths == ARRAY_SIZE (tw->widths))
            break; /* absurdly many columns: print the rest unaligned */
        tw->widths[tw->nwidths++] = width;
        tw_format (tw, line0, ln);
        tw->nwidths--;
        line0 = ln;
    }
    tw_write_lines (tw, line0, line1);
}

/* Align text (lines ending in '\n') and print it to out. */
static void
tabwrite (FILE *out, char *text, size_t padding)
{
    struct tw tw = { .out = out, .padding = padding };
    size_t cap = 0;
    char *p = text;

    while (*p) {
        char *eol = strchr (p, '\n');
        struct tw_line *l;

        if (eol)
            *eol = '\0';
        if (tw.nlines == cap) {
            cap = cap ? cap * 2 : 16;
            tw.lines = xrealloc (tw.lines, cap * sizeof (*tw.lines));
        }
        l = &tw.lines[tw.nlines++];
        memset (l, 0, sizeof (*l));
        for (char *c = p;;) {
            char *tab = strchr (c, '\t');
            l->cells = xrealloc (l->cells, (l->n + 1) * sizeof (*l->cells));
            l->width = xrealloc (l->width, (l->n + 1) * sizeof (*l->width));
            if (tab)
                *tab = '\0';
            l->cells[l->n] = c;
            l->width[l->n] = rune_count (c);
            l->n++;
            if (!tab)
                break;
            c = tab + 1;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    tw_format (&tw, 0, tw.nlines);
    for (size_t i = 0; i < tw.nlines; i++) {
        free (tw.lines[i].cells);
        free (tw.lines[i].width);
    }
    free (tw.lines);
}

/* ---- Shared plumbing ---------------------------------------------------- */

static noreturn void
die (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static noreturn void
die (const char *fmt, ...)
{
    capsa_error_t err = NULL;
    va_list ap;
    char *msg = NULL;

    va_start (ap, fmt);
    if (vasprintf (&msg, fmt, ap) < 0)
        msg = NULL;
    va_end (ap);
    capsa_error_make (&err, 0, "%s", msg ? msg : "out of memory");
    free (msg);
    capsa_error_fatal (&err);
}

static struct sif_image *
open_image (const char *path, bool writable)
{
    capsa_error_t err = NULL;
    struct sif_image *img;

    if (sif_open (path, writable, &img, &err) < 0)
        capsa_error_fatal (&err);
    return img;
}

static uint32_t
parse_id (const char *s)
{
    long v;
    if (parse_long (s, 0, UINT32_MAX, &v) < 0)
        die ("invalid object ID '%s': expected a number from 1 to %" PRIu32, s, UINT32_MAX);
    return (uint32_t) v;
}

static long
parse_num (const char *opt, const char *s, long min, long max)
{
    long v;
    if (parse_long (s, min, max, &v) < 0)
        die ("invalid value '%s' for --%s: expected a number from %ld to %ld", s, opt, min, max);
    return v;
}

static int
finish_output (void)
{
    if (fflush (stdout) != 0 || ferror (stdout))
        die ("write to standard output: %s", strerror (errno));
    return 0;
}

static const char *
usage_of (const char *cmd)
{
    if (strcmp (cmd, "header") == 0)
        return "Usage: capsa sif header IMAGE\n\nDisplay the global header of a SIF image.\n";
    if (strcmp (cmd, "list") == 0)
        return "Usage: capsa sif list IMAGE\n\nList the data objects of a SIF image.\n";
    if (strcmp (cmd, "info") == 0)
        return "Usage: capsa sif info ID IMAGE\n\nDisplay the descriptor of data object ID.\n";
    if (strcmp (cmd, "dump") == 0)
        return "Usage: capsa sif dump ID IMAGE\n\nWrite the data of object ID to standard output.\n";
    if (strcmp (cmd, "new") == 0)
        return "Usage: capsa sif new IMAGE\n\nCreate an empty SIF image (replacing IMAGE if it exists).\n";
    if (strcmp (cmd, "del") == 0)
        return "Usage: capsa sif del [--zero] [--compact] ID IMAGE\n\n"
               "Delete data object ID from a SIF image.\n\n"
               "  --zero      overwrite the object's data with zeros\n"
               "  --compact   truncate the image after the last remaining object\n";
    if (strcmp (cmd, "setprim") == 0)
        return "Usage: capsa sif setprim ID IMAGE\n\n"
               "Make system partition ID the primary system partition.\n";
    if (strcmp (cmd, "add") == 0)
        return "Usage: capsa sif add [OPTIONS] IMAGE FILE\n\n"
               "Add FILE (\"-\": standard input) to a SIF image as a new data object.\n\n"
               "  --datatype N     the type of data to add [required]:\n"
               "                     1-Deffile,       2-EnvVar,        3-Labels,\n"
               "                     4-Partition,     5-Signature,     6-GenericJSON,\n"
               "                     7-Generic,       8-CryptoMessage, 9-SBOM,\n"
               "                     10-OCI.RootIndex 11-OCI.Blob\n"
               "  --parttype N     partition type (with --datatype 4) [required]:\n"
               "                     1-System, 2-PrimSys, 3-Data, 4-Overlay\n"
               "  --partfs N       partition file system (with --datatype 4) [required]:\n"
               "                     1-Squash, 2-Ext3, 3-ImmuObj, 4-Raw,\n"
               "                     5-Encrypted squashfs, 6-Gocryptfs squashfs\n"
               "  --partarch N     partition architecture (with --datatype 4) [required]:\n"
               "                     1-386,       2-amd64,     3-arm,\n"
               "                     4-arm64,     5-ppc64,     6-ppc64le,\n"
               "                     7-mips,      8-mipsle,    9-mips64,\n"
               "                     10-mips64le, 11-s390x,    12-riscv64\n"
               "  --signhash N     signature hash (with --datatype 5) [required]:\n"
               "                     1-SHA256, 2-SHA384, 3-SHA512, 4-BLAKE2s_256, 5-BLAKE2b_256\n"
               "  --signentity FP  signing entity fingerprint, 40 hex digits (with --datatype 5)\n"
               "  --sbomformat F   SBOM format (with --datatype 9): cyclonedx-json,\n"
               "                     cyclonedx-xml, github-json, spdx-json, spdx-rdf,\n"
               "                     spdx-tag-value, spdx-yaml, syft-json\n"
               "  --groupid N      object group [default: 0, no group]\n"
               "  --link N         ID of the object this one is linked to (also --linkid)\n"
               "  --alignment N    data alignment [default: 4096 for partitions, else none]\n"
               "  --filename NAME  object name [default: none]\n";
    return NULL;
}

static const char sif_usage[] =
    "Usage: capsa sif COMMAND ...\n"
    "\n"
    "Inspect and modify SIF images; commands, arguments and output match\n"
    "sylabs' siftool.\n"
    "\n"
    "Commands:\n"
    "  header IMAGE              display the global header\n"
    "  list IMAGE                list the data objects\n"
    "  info ID IMAGE             display the descriptor of object ID\n"
    "  dump ID IMAGE             write the data of object ID to standard output\n"
    "  new IMAGE                 create an empty SIF image\n"
    "  add [OPTIONS] IMAGE FILE  add FILE as a new data object\n"
    "  del ID IMAGE              delete object ID\n"
    "  setprim ID IMAGE          make partition ID the primary system partition\n"
    "\n"
    "Run 'capsa sif COMMAND --help' for the options of a command.\n";

static void
want_args (const char *cmd, int have, int want)
{
    if (have != want)
        die ("'capsa sif %s' takes %d argument%s, got %d (see 'capsa sif %s --help')", cmd, want,
             want == 1 ? "" : "s", have, cmd);
}

/* Options of a command that takes none beyond --help (argv[0] is its
 * name); returns the index of the first of its `want` operands. */
static int
simple_args (int argc, char **argv, int want)
{
    static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs (usage_of (argv[0]), stdout);
            exit (finish_output ());
        }
        die ("unknown option '%s' for 'capsa sif %s'", argv[optind - 1], argv[0]);
    }
    want_args (argv[0], argc - optind, want);
    return optind;
}

/* ---- header, list, info, dump ------------------------------------------ */

static int
do_header (int argc, char **argv)
{
    int i = simple_args (argc, argv, 1);
    struct sif_image *img = open_image (argv[i], false);
    const struct sif_header *h = sif_get_header (img);
    static const uint8_t nil[16];
    const char *arch = sif_arch_name (h->arch);
    char *text = NULL, num[64];
    size_t textlen = 0;
    FILE *f = open_memstream (&text, &textlen);

    if (f == NULL)
        die ("out of memory");
    if (h->launch[0]) {
        size_t n = strlen (h->launch);
        fprintf (f, "Launch Script:\t%.*s\n", (int) (n > 0 && h->launch[n - 1] == '\n' ? n - 1 : n), h->launch);
    }
    fprintf (f, "Version:\t%s\n", h->version);
    if (strcmp (arch, "unknown") != 0)
        fprintf (f, "Primary Architecture:\t%s\n", arch);
    if (memcmp (h->uuid, nil, 16) != 0) {
        const uint8_t *u = h->uuid;
        fprintf (f, "ID:\t%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x\n", u[0], u[1],
                 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    }
    if (h->created != SIF_TIME_UNSET) {
        go_time_string (h->created, num, sizeof (num));
        fprintf (f, "Created At:\t%s\n", num);
    }
    if (h->modified != SIF_TIME_UNSET) {
        go_time_string (h->modified, num, sizeof (num));
        fprintf (f, "Modified At:\t%s\n", num);
    }
    fprintf (f, "Descriptors Free:\t%" PRId64 "\n", h->descr_free);
    fprintf (f, "Descriptors Total:\t%" PRId64 "\n", h->descr_total);
    fprintf (f, "Descriptors Offset:\t%" PRId64 "\n", h->descr_offset);
    readable_size (h->descr_size, num, sizeof (num));
    fprintf (f, "Descriptors Size:\t%s\n", num);
    fprintf (f, "Data Offset:\t%" PRId64 "\n", h->data_offset);
    readable_size (h->data_size, num, sizeof (num));
    fprintf (f, "Data Size:\t%s\n", num);
    fclose (f);

    tabwrite (stdout, text, 1);
    free (text);
    sif_close (img);
    return finish_output ();
}

static void
print_list_type (const struct sif_descriptor *d)
{
    const char *dt = sif_datatype_name (d->datatype);
    struct sif_partition p;
    struct sif_signature s;
    struct sif_crypto_message m;
    int32_t sbom;

    switch (d->datatype) {
    case SIF_DATA_PARTITION:
        sif_get_partition (d, &p, NULL);
        printf ("|%s (%s/%s/%s)\n", dt, sif_fstype_name (p.fstype), sif_parttype_name (p.parttype),
                sif_arch_name (p.arch));
        break;
    case SIF_DATA_SIGNATURE:
        sif_get_signature (d, &s, NULL);
        printf ("|%s (%s)\n", dt, sif_hashtype_name (s.hashtype));
        break;
    case SIF_DATA_CRYPTO_MESSAGE:
        sif_get_crypto_message (d, &m, NULL);
        printf ("|%s (%s/%s)\n", dt, sif_format_name (m.format), sif_message_name (m.message));
        break;
    case SIF_DATA_SBOM:
        sif_get_sbom_format (d, &sbom, NULL);
        printf ("|%s (%s)\n", dt, sif_sbom_format_name (sbom));
        break;
    default:
        printf ("|%s\n", dt);
    }
}

static int
do_list (int argc, char **argv)
{
    static const char rule[] = "------------------------------------------------------------------------------";
    int i = simple_args (argc, argv, 1);
    struct sif_image *img = open_image (argv[i], false);

    printf ("%s\n", rule);
    printf ("%-4s %-8s %-8s %-26s %s\n", "ID", "|GROUP", "|LINK", "|SIF POSITION (start-end)", "|TYPE");
    printf ("%s\n", rule);
    for (size_t k = 0; k < sif_descriptor_count (img); k++) {
        const struct sif_descriptor *d = sif_descriptor_at (img, k);
        char pos[64];

        printf ("%-4" PRIu32 " ", d->id);
        if (d->group == 0)
            printf ("|%-7s ", "NONE");
        else
            printf ("|%-7" PRIu32 " ", d->group);
        if (d->link == 0)
            printf ("|%-7s ", "NONE");
        else if (d->link_is_group)
            printf ("|%-3" PRIu32 " (G) ", d->link);
        else
            printf ("|%-7" PRIu32 " ", d->link);
        /* offset + size cannot overflow: both were checked against the file size */
        snprintf (pos, sizeof (pos), "|%" PRId64 "-%" PRId64 " ", d->offset, d->offset + d->size);
        printf ("%-26s ", pos);
        print_list_type (d);
    }
    sif_close (img);
    return finish_output ();
}

static const struct sif_descriptor *
find_or_die (struct sif_image *img, uint32_t id)
{
    capsa_error_t err = NULL;
    const struct sif_descriptor *d;

    if (sif_find_descriptor (img, id, &d, &err) < 0)
        capsa_error_fatal (&err);
    return d;
}

static int
do_info (int argc, char **argv)
{
    int i = simple_args (argc, argv, 2);
    uint32_t id = parse_id (argv[i]);
    struct sif_image *img = open_image (argv[i + 1], false);
    const struct sif_descriptor *d = find_or_die (img, id);
    char *text = NULL, buf[SIF_EXTRA_LEN + 1];
    size_t textlen = 0;
    FILE *f = open_memstream (&text, &textlen);

    if (f == NULL)
        die ("out of memory");
    fprintf (f, "\tData Type:\t%s\n", sif_datatype_name (d->datatype));
    fprintf (f, "\tID:\t%" PRIu32 "\n", d->id);
    if (d->group == 0)
        fprintf (f, "\tGroup ID:\tNONE\n");
    else
        fprintf (f, "\tGroup ID:\t%" PRIu32 "\n", d->group);
    if (d->link == 0)
        fprintf (f, "\tLinked ID:\tNONE\n");
    else
        fprintf (f, "\tLinked ID:\t%" PRIu32 "%s\n", d->link, d->link_is_group ? " (G)" : "");
    fprintf (f, "\tOffset:\t%" PRId64 "\n", d->offset);
    fprintf (f, "\tSize:\t%" PRId64 "\n", d->size);
    if (d->created != SIF_TIME_UNSET) {
        go_time_string (d->created, buf, sizeof (buf));
        fprintf (f, "\tCreated At:\t%s\n", buf);
    }
    if (d->modified != SIF_TIME_UNSET) {
        go_time_string (d->modified, buf, sizeof (buf));
        fprintf (f, "\tModified At:\t%s\n", buf);
    }
    if (d->name[0])
        fprintf (f, "\tName:\t%s\n", d->name);

    switch (d->datatype) {
    case SIF_DATA_PARTITION: {
        struct sif_partition p;
        sif_get_partition (d, &p, NULL);
        fprintf (f, "\tFilesystem Type:\t%s\n", sif_fstype_name (p.fstype));
        fprintf (f, "\tPartition Type:\t%s\n", sif_parttype_name (p.parttype));
        fprintf (f, "\tArchitecture:\t%s\n", sif_arch_name (p.arch));
        break;
    }
    case SIF_DATA_SIGNATURE: {
        struct sif_signature s;
        sif_get_signature (d, &s, NULL);
        fprintf (f, "\tHash Type:\t%s\n", sif_hashtype_name (s.hashtype));
        if (s.has_entity) {
            fprintf (f, "\tEntity:\t");
            for (size_t k = 0; k < sizeof (s.entity); k++)
                fprintf (f, "%02X", s.entity[k]);
            fprintf (f, "\n");
        }
        break;
    }
    case SIF_DATA_CRYPTO_MESSAGE: {
        struct sif_crypto_message m;
        sif_get_crypto_message (d, &m, NULL);
        fprintf (f, "\tFormat Type:\t%s\n", sif_format_name (m.format));
        fprintf (f, "\tMessage Type:\t%s\n", sif_message_name (m.message));
        break;
    }
    case SIF_DATA_SBOM: {
        int32_t sbom;
        sif_get_sbom_format (d, &sbom, NULL);
        fprintf (f, "\tFormat:\t%s\n", sif_sbom_format_name (sbom));
        break;
    }
    case SIF_DATA_OCI_BLOB:
    case SIF_DATA_OCI_ROOT_INDEX:
        sif_get_oci_digest (d, buf, sizeof (buf), NULL);
        fprintf (f, "\tDigest:\t%s\n", buf);
        break;
    default:
        break;
    }
    fclose (f);

    tabwrite (stdout, text, 2);
    free (text);
    sif_close (img);
    return finish_output ();
}

static int
do_dump (int argc, char **argv)
{
    int i = simple_args (argc, argv, 2);
    uint32_t id = parse_id (argv[i]);
    struct sif_image *img = open_image (argv[i + 1], false);
    const struct sif_descriptor *d = find_or_die (img, id);
    capsa_error_t err = NULL;

    fflush (stdout);
    if (sif_copy_object (img, d, STDOUT_FILENO, &err) < 0)
        capsa_error_fatal (&err);
    sif_close (img);
    return 0;
}

/* ---- new, add, del, setprim --------------------------------------------- */

static int
do_new (int argc, char **argv)
{
    int i = simple_args (argc, argv, 1);
    capsa_error_t err = NULL;

    if (sif_create (argv[i], NULL, &err) < 0)
        capsa_error_fatal (&err);
    return 0;
}

static int
hexval (char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static const char *const partarch_names[] = {
    NULL, "386", "amd64", "arm", "arm64", "ppc64", "ppc64le", "mips", "mipsle", "mips64", "mips64le", "s390x", "riscv64",
};

static int
do_add (int argc, char **argv)
{
    enum { O_DATATYPE = 256, O_PARTTYPE, O_PARTFS, O_PARTARCH, O_SIGNHASH, O_SIGNENTITY, O_SBOMFORMAT,
           O_GROUPID, O_LINK, O_ALIGNMENT, O_FILENAME };
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "datatype", required_argument, NULL, O_DATATYPE },
        { "parttype", required_argument, NULL, O_PARTTYPE },
        { "partfs", required_argument, NULL, O_PARTFS },
        { "partarch", required_argument, NULL, O_PARTARCH },
        { "signhash", required_argument, NULL, O_SIGNHASH },
        { "signentity", required_argument, NULL, O_SIGNENTITY },
        { "sbomformat", required_argument, NULL, O_SBOMFORMAT },
        { "groupid", required_argument, NULL, O_GROUPID },
        { "link", required_argument, NULL, O_LINK },
        { "linkid", required_argument, NULL, O_LINK },
        { "alignment", required_argument, NULL, O_ALIGNMENT },
        { "filename", required_argument, NULL, O_FILENAME },
        { NULL, 0, NULL, 0 },
    };
    struct sif_add_opts o = { .alignment = -1 };
    long datatype = 0, partarch = 0;
    const char *signentity = NULL, *sbomformat = NULL;
    bool have_link = false;
    uint8_t entity[20];
    capsa_error_t err = NULL;
    cleanup_close int fd = -1;
    struct sif_image *img;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        switch (c) {
        case 'h':
            fputs (usage_of ("add"), stdout);
            exit (finish_output ());
        case O_DATATYPE:
            datatype = parse_num ("datatype", optarg, INT32_MIN, INT32_MAX);
            break;
        case O_PARTTYPE:
            o.parttype = (int32_t) parse_num ("parttype", optarg, INT32_MIN, INT32_MAX);
            break;
        case O_PARTFS:
            o.fstype = (int32_t) parse_num ("partfs", optarg, INT32_MIN, INT32_MAX);
            break;
        case O_PARTARCH:
            partarch = parse_num ("partarch", optarg, INT32_MIN, INT32_MAX);
            break;
        case O_SIGNHASH:
            o.hashtype = (int32_t) parse_num ("signhash", optarg, INT32_MIN, INT32_MAX);
            break;
        case O_SIGNENTITY:
            signentity = optarg;
            break;
        case O_SBOMFORMAT:
            sbomformat = optarg;
            break;
        case O_GROUPID:
            o.group = (uint32_t) parse_num ("groupid", optarg, 0, (long) ~SIF_GROUP_MASK);
            break;
        case O_LINK:
            o.link = (uint32_t) parse_num ("link", optarg, 0, (long) ~SIF_GROUP_MASK);
            have_link = true;
            break;
        case O_ALIGNMENT:
            o.alignment = parse_num ("alignment", optarg, 0, 1L << 30);
            break;
        case O_FILENAME:
            o.name = optarg;
            break;
        case ':':
            die ("option '%s' needs a value", name);
        default:
            die ("unknown option '%s' for 'capsa sif add'", name);
        }
    }
    want_args ("add", argc - optind, 2);

    if (datatype < 1 || datatype > 11)
        die ("--datatype is required, from 1 to 11 (see 'capsa sif add --help')");
    o.datatype = (int32_t) (0x4000 + datatype);
    if (have_link && o.link == 0)
        die ("invalid --link 0: object IDs start at 1");

    switch (o.datatype) {
    case SIF_DATA_PARTITION:
        if (o.parttype == 0 || o.fstype == 0 || partarch == 0)
            die ("with partition datatype, --partfs, --parttype and --partarch must be passed");
        if (partarch < 1 || partarch >= (long) ARRAY_SIZE (partarch_names))
            die ("unknown architecture: --partarch %ld", partarch);
        o.arch = partarch_names[partarch];
        break;
    case SIF_DATA_SIGNATURE:
        if (o.hashtype < 1 || o.hashtype > 5)
            die ("invalid hash type: %" PRId32, o.hashtype);
        if (signentity == NULL || strlen (signentity) != 40)
            die ("invalid signing entity fingerprint length: want 40 hex digits");
        for (int k = 0; k < 20; k++) {
            int hi = hexval (signentity[2 * k]), lo = hexval (signentity[2 * k + 1]);
            if (hi < 0 || lo < 0)
                die ("failed to decode signing entity fingerprint '%s'", signentity);
            entity[k] = (uint8_t) (hi << 4 | lo);
        }
        o.entity = entity;
        break;
    case SIF_DATA_SBOM:
        if (sbomformat == NULL)
            die ("with SBOM datatype, --sbomformat must be passed");
        if ((o.sbom_format = sif_sbom_format_from_name (sbomformat)) == 0)
            die ("invalid SBOM format: %s", sbomformat);
        break;
    default:
        break;
    }

    if (strcmp (argv[optind + 1], "-") == 0)
        fd = dup (STDIN_FILENO);
    else
        fd = open (argv[optind + 1], O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die ("open %s: %s", argv[optind + 1], strerror (errno));
    img = open_image (argv[optind], true);
    if (sif_add_object (img, &o, fd, NULL, &err) < 0)
        capsa_error_fatal (&err);
    sif_close (img);
    return 0;
}

static int
do_del (int argc, char **argv)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "zero", no_argument, NULL, 'z' },
        { "compact", no_argument, NULL, 'c' },
        { NULL, 0, NULL, 0 },
    };
    bool zero = false, compact = false;
    capsa_error_t err = NULL;
    struct sif_image *img;
    uint32_t id;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long (argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs (usage_of ("del"), stdout);
            exit (finish_output ());
        case 'z':
            zero = true;
            break;
        case 'c':
            compact = true;
            break;
        default:
            die ("unknown option '%s' for 'capsa sif del'", argv[optind - 1]);
        }
    }
    want_args ("del", argc - optind, 2);
    id = parse_id (argv[optind]);
    img = open_image (argv[optind + 1], true);
    if (sif_delete_object (img, id, zero, compact, &err) < 0)
        capsa_error_fatal (&err);
    sif_close (img);
    return 0;
}

static int
do_setprim (int argc, char **argv)
{
    int i = simple_args (argc, argv, 2);
    uint32_t id = parse_id (argv[i]);
    struct sif_image *img = open_image (argv[i + 1], true);
    capsa_error_t err = NULL;

    if (sif_set_primary (img, id, &err) < 0)
        capsa_error_fatal (&err);
    sif_close (img);
    return 0;
}

int
cmd_sif (int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn) (int, char **);
    } cmds[] = {
        { "header", do_header }, { "list", do_list }, { "info", do_info },       { "dump", do_dump },
        { "new", do_new },       { "add", do_add },   { "del", do_del },         { "setprim", do_setprim },
    };

    if (argc < 2) {
        fputs (sif_usage, stderr);
        die ("'capsa sif' needs a command");
    }
    if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "help") == 0) {
        fputs (sif_usage, stdout);
        return finish_output ();
    }
    for (size_t k = 0; k < ARRAY_SIZE (cmds); k++)
        if (strcmp (argv[1], cmds[k].name) == 0)
            return cmds[k].fn (argc - 1, argv + 1);
    die ("unknown command 'capsa sif %s' (see 'capsa sif --help')", argv[1]);
}
