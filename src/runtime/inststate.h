/* The record of a running instance, and the few /proc parsers that check a
 * process against it.  Pure functions: nothing here opens a file.
 *
 * One record is text, one "key=value" per line, between a first line
 * "capsa-instance 1" and a last line "end":
 *
 *   capsa-instance 1
 *   name=web                instance name ([A-Za-z0-9._-], 1-128 bytes, not . or ..)
 *   uid=1001                owner
 *   user=alice
 *   mode=setuid             root | setuid | userns: how it was started
 *   boot=<boot_id>          /proc/sys/kernel/random/boot_id at start
 *   pid=4242                the instance's init (host pid), its start time in
 *   start=1234567             clock ticks since boot (/proc/PID/stat field 22)
 *   monitor=4240            the monitor (parent of the init) and its start time
 *   monitor-start=1234560
 *   ns.mnt=DEV:INO          identities of the init's namespaces (fstat of
 *   ns.pid=DEV:INO            /proc/PID/ns/X): mnt and pid always, the
 *   ...                       others (ipc uts net user cgroup) when known
 *   image=/path/img.sif     what APPTAINER_CONTAINER says
 *   home=/home/alice        $HOME inside
 *   log-out=... log-err=... the log files
 *   cgroup=/PATH            cgroup v2 of its own, relative to the hierarchy (optional)
 *   fakeroot=0|1
 *   created=1700000000      seconds since the epoch
 *   state=running|dead      only in the starter's list output
 *   end
 *
 * Values escape "\\" and every byte below 0x20 or 0x7f as "\\", "\n",
 * "\t" or "\xHH"; "\x00" is refused.  Every key is known, appears once,
 * and is checked (numbers in range, paths absolute); a record is at most
 * CAPSA_INST_RECORD_MAX bytes.  The setuid starter reads only records it
 * wrote itself into a root-owned directory, but parses them as if they
 * were hostile all the same (tests/fuzz/fuzz_inststate.c). */
#ifndef CAPSA_INSTSTATE_H
#define CAPSA_INSTSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/error.h"

#define CAPSA_INST_RECORD_MAX 65536
#define CAPSA_INST_NAME_MAX 128
#define CAPSA_INST_MAGIC "capsa-instance 1"

enum capsa_inst_ns {
    INST_NS_MNT,
    INST_NS_PID,
    INST_NS_IPC,
    INST_NS_UTS,
    INST_NS_NET,
    INST_NS_USER,
    INST_NS_CGROUP,
    INST_NS_COUNT
};

/* "mnt", "pid", ... (the names below /proc/PID/ns). */
extern const char *const capsa_inst_ns_names[INST_NS_COUNT];

enum capsa_inst_mode { INST_MODE_ROOT, INST_MODE_SETUID, INST_MODE_USERNS };

/* A namespace's identity: the device and inode of its nsfs file; ino 0
 * means not recorded. */
struct capsa_inst_id {
    uint64_t dev, ino;
};

struct capsa_inst_state {
    char *name;
    uid_t uid;
    char *user;
    enum capsa_inst_mode mode;
    char boot[40];
    pid_t pid;
    uint64_t start;
    pid_t monitor;
    uint64_t monitor_start;
    struct capsa_inst_id ns[INST_NS_COUNT];
    char *image;
    char *home;
    char *log_out, *log_err; /* may be NULL */
    char *cgroup;            /* may be NULL */
    bool fakeroot;
    int64_t created;
    /* List output only: has_state says whether state= was given. */
    bool has_state, running;
};

/* Is NAME a valid instance name? */
bool capsa_inst_name_valid (const char *name);

const char *capsa_inst_mode_name (enum capsa_inst_mode m);

/* Parse the first record of TEXT (LEN bytes, which may hold more records
 * after it); *used receives the bytes the record took (its "end" line
 * included).  On error *st is left empty. */
int capsa_inst_state_parse (const char *text, size_t len, struct capsa_inst_state *st, size_t *used,
                            capsa_error_t *err);

/* The record as text (owned), ending with "end\n". */
char *capsa_inst_state_format (const struct capsa_inst_state *st);

void capsa_inst_state_free (struct capsa_inst_state *st);

/* /proc/PID/stat: the state letter (field 3), the parent (4) and the start
 * time (22).  Returns -1 when TEXT is not such a line. */
int capsa_inst_parse_stat (const char *text, char *state, pid_t *ppid, uint64_t *start);

/* /proc/PID/status: the real and effective uids of the "Uid:" line. */
int capsa_inst_parse_status_uid (const char *text, uid_t *ruid, uid_t *euid);

/* /proc/PID/cgroup: the cgroup v2 path ("0::PATH"), owned; NULL if none. */
char *capsa_inst_parse_cgroup2 (const char *text);

/* /proc/self/mountinfo: the mount point of the cgroup v2 hierarchy's root
 * (one without escapes), owned; NULL if none. */
char *capsa_cgroup2_point (const char *mountinfo);

#endif
