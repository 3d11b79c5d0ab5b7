# Test set-up, sourced by tests/run.sh (as root).  Idempotent: creates the
# test users, opens /dev/fuse to users as distributions ship it, resets the
# installed capsa.conf, builds helper programs and the cached image fixtures.
chmod 0666 /dev/fuse
for u in capsa-u1 capsa-u2; do
    id "$u" >/dev/null 2>&1 || useradd -m -s /bin/sh "$u"
done
export TUSER=capsa-u1 TUSER2=capsa-u2

# Every test starts from the shipped configuration.
install -m 0644 "$TOP/etc/capsa.conf" "$CAPSA_PREFIX/etc/capsa/capsa.conf"
install -m 0644 "$TOP/etc/capability.json" "$CAPSA_PREFIX/etc/capsa/capability.json"

source "$TOP/tests/fixtures.sh"
IMG_DIR=$(fixture_busybox_dir) && IMG_SQFS=$(fixture_busybox_sqfs) || return 1
export IMG_DIR IMG_SQFS

# Helper programs, rebuilt each run (they are tiny).
HELPERS=$(mktemp -d /tmp/capsa-helpers.XXXXXX)
chmod 0755 "$HELPERS"
cc -static -O1 -o "$HELPERS/showid" "$TOP/tests/helpers/showid.c" || return 1
cc -shared -fPIC -o "$HELPERS/evil.so" "$TOP/tests/helpers/evil.c" || return 1
export HELPERS
