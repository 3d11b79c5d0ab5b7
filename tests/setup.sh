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
install -m 0644 "$TOP/etc/nvliblist.conf" "$CAPSA_PREFIX/etc/capsa/nvliblist.conf"
install -m 0644 "$TOP/etc/rocmliblist.conf" "$CAPSA_PREFIX/etc/capsa/rocmliblist.conf"

source "$TOP/tests/fixtures.sh"
IMG_DIR=$(fixture_busybox_dir) && IMG_SQFS=$(fixture_busybox_sqfs) || return 1
export IMG_DIR IMG_SQFS

# Helper programs, rebuilt each run (they are tiny).
HELPERS=$(mktemp -d /tmp/capsa-helpers.XXXXXX)
chmod 0755 "$HELPERS"
cc -static -O1 -o "$HELPERS/showid" "$TOP/tests/helpers/showid.c" || return 1
cc -shared -fPIC -o "$HELPERS/evil.so" "$TOP/tests/helpers/evil.c" || return 1
# sysprobe also runs inside the busybox images: static.
cc -static -O1 -Wall -Wextra -Werror -o "$HELPERS/sysprobe" "$TOP/tests/helpers/sysprobe.c" || return 1
cc -static -O1 -Wall -Wextra -Werror -o "$HELPERS/securebits" "$TOP/tests/helpers/securebits.c" || return 1
for h in nosys swap memfd catchptrace swapin; do
    cc -O1 -Wall -Wextra -Werror -o "$HELPERS/$h" "$TOP/tests/helpers/$h.c" || return 1
done
# A user's image server that lies (test_imageserver_attack.sh): libfuse3's low-level API.
cc -O1 -Wall -Wextra -Werror $(pkg-config --cflags fuse3) -o "$HELPERS/lyingsrv" "$TOP/tests/helpers/lyingsrv.c" \
    $(pkg-config --libs fuse3) || return 1
export HELPERS

# An image with iputils ping and no file capabilities on it: the busybox
# image plus Debian's /usr/bin/ping and the libraries it links, copied
# without extended attributes.  Cached, keyed by the binaries' hashes.
ping_image () {
    local key dir tmp lib
    key=$( (sha256sum /usr/bin/ping; echo "$IMG_DIR"; echo ping-image-v2) | sha256sum | cut -c1-16)
    dir=$CACHE/ping-$key
    if [ ! -d "$dir" ]; then
        tmp=$(mktemp -d "$CACHE/.ping.XXXXXX") || return 1
        cp -a --no-preserve=xattr "$IMG_DIR/." "$tmp/" || return 1
        mkdir -p "$tmp/usr/bin" "$tmp/lib64" "$tmp/lib/x86_64-linux-gnu"
        rm -f "$tmp/bin/ping" "$tmp/bin/ping6"
        cp --no-preserve=xattr /usr/bin/ping "$tmp/usr/bin/ping"
        for lib in $(ldd /usr/bin/ping | grep -o '/[^ ]*'); do
            cp -L --no-preserve=xattr "$lib" "$tmp$lib"
        done
        setcap -r "$tmp/usr/bin/ping" 2>/dev/null || true
        chmod 0755 "$tmp" && mv -T "$tmp" "$dir" || return 1
    fi
    echo "$dir"
}
IMG_PING=$(ping_image) || return 1
export IMG_PING
for u in pinger capsa-u3; do
    id "$u" >/dev/null 2>&1 || useradd -m -s /bin/sh "$u"
done
getent group capsa-pingers >/dev/null || groupadd capsa-pingers
usermod -a -G capsa-pingers capsa-u3
