# Images from registries (issue 8): oras:// push, pull, exec/run/inspect
# through the cache (root, setuid user, user namespace), cache reuse and
# concurrency, basic auth and login, a registry that lies about a digest
# (with bearer-token auth), docker://, oci-archive: and docker-archive:
# builds with whiteouts, and hostile layers.
#
# Starts its own Debian docker-registry instances (127.0.0.1 only: one
# open, one with htpasswd basic auth) and a small python3 registry that
# serves a blob not matching its digest; all are stopped on exit.

command -v docker-registry > /dev/null || { fail "registry setup" "docker-registry missing (scripts/deps.sh)"; return 0; }
command -v htpasswd > /dev/null || { fail "registry setup" "htpasswd missing (apache2-utils)"; return 0; }

R=$WORK/reg
mkdir -p "$R"
PIDS=()
cleanup_registries () {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup_registries EXIT

free_port () {   # PREFERRED: print it when free, else any free port
    python3 - "$1" <<'EOF'
import socket, sys
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()
print(free(int(sys.argv[1])) or free(0))
EOF
}

wait_http () {   # URL: wait until something answers
    local i
    for i in $(seq 1 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    return 1
}

start_registry () {   # NAME PORT [htpasswd file]
    local name=$1 port=$2 auth=${3:-}
    mkdir -p "$R/$name/data"
    {
        echo "version: 0.1"
        echo "log: {level: info, accesslog: {disabled: false}}"
        echo "storage: {filesystem: {rootdirectory: $R/$name/data}, delete: {enabled: true}}"
        echo "http: {addr: 127.0.0.1:$port}"
        [ -n "$auth" ] && echo "auth: {htpasswd: {realm: capsa-test, path: $auth}}"
    } > "$R/$name/config.yml"
    docker-registry serve "$R/$name/config.yml" >> "$R/$name/log" 2>&1 &
    PIDS+=($!)
    eval "${name}_PID=$!"
    wait_http "http://127.0.0.1:$port/v2/"
}

PORT=$(free_port 5000)
REG=127.0.0.1:$PORT
if start_registry open "$PORT"; then pass "registry: docker-registry listens on $REG"; else
    fail "registry: docker-registry listens on $REG" "$(tail -5 "$R/open/log")"; return 0; fi

# A capsa-built SIF when capsa build works, else the busybox fixture.
SIF=$WORK/bb.sif
if ! "$CAPSA" build "$SIF" "$IMG_DIR" > "$WORK/build.log" 2>&1; then
    cp "$FIXTURES/sif/busybox_amd64.sif" "$SIF"
fi
chmod 0644 "$SIF"
HEX=$(sha256sum "$SIF" | cut -d' ' -f1)
blob_gets () { grep -c "\"GET /v2/test/bb/blobs/sha256:$HEX " "$R/open/log"; }

# ---- push and pull -----------------------------------------------------------------
run "$CAPSA" push --no-https "$SIF" "oras://$REG/test/bb:1"
expect_eq "push: exit status" 0 "$RC"
run curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/test/bb/manifests/1"
expect_match "push: ORAS manifest, SIF layer and config media types" \
    '"config":\{"mediaType":"application/vnd.sylabs.sif.config.v1\+json".*"mediaType":"application/vnd.sylabs.sif.layer.v1.sif","digest":"sha256:'"$HEX"'"' "$OUT"
expect_match "push: title annotation" '"org.opencontainers.image.title":"bb.sif"' "$OUT"

export CAPSA_CACHEDIR=$WORK/cache-root
run "$CAPSA" pull --no-https "$WORK/copy.sif" "oras://$REG/test/bb:1"
expect_eq "pull: exit status" 0 "$RC"
if cmp -s "$SIF" "$WORK/copy.sif"; then pass "pull: identical bytes"; else fail "pull: identical bytes" "copy differs"; fi
run "$CAPSA" pull --no-https "$WORK/copy.sif" "oras://$REG/test/bb:1"
expect_eq "pull: an existing file needs --force" 255 "$RC"
run "$CAPSA" pull --force --no-https "$WORK/copy.sif" "oras://$REG/test/bb:1"
expect_eq "pull --force" 0 "$RC"
expect_eq "cache directory is mode 0700" 700 "$(stat -c %a "$CAPSA_CACHEDIR")"

# ---- exec/run/inspect oras:// ------------------------------------------------------
rm -rf "$CAPSA_CACHEDIR"
before=$(blob_gets)
run "$CAPSA" exec --no-https "oras://$REG/test/bb:1" /bin/echo hello
expect_eq "exec oras:// as root" "hello" "$(printf '%s\n' "$OUT" | grep -v '^INFO:')"
after=$(blob_gets)
expect_eq "exec oras://: one download" 1 "$((after - before))"
run "$CAPSA" exec --no-https "oras://$REG/test/bb:1" /bin/echo again
expect_eq "exec oras:// again" "again" "$OUT"
expect_eq "second run does not download (registry log)" "$after" "$(blob_gets)"
run "$CAPSA" inspect --no-https "oras://$REG/test/bb:1"
expect_eq "inspect oras://" 0 "$RC"
run "$CAPSA" exec --userns --no-https "oras://$REG/test/bb:1" /bin/echo userns
expect_eq "exec --userns oras:// as root" "userns" "$OUT"

# As the test user, through the setuid starter and in a user namespace;
# the cache is created under the user's own directory.
U1=$WORK/u1; mkdir -p "$U1"; chown "$TUSER" "$U1"
run_user "CAPSA_CACHEDIR=$U1/cache $CAPSA exec --no-https oras://$REG/test/bb:1 /bin/echo hello"
expect_eq "exec oras:// as $TUSER (setuid)" "hello" "$(printf '%s\n' "$OUT" | grep -v '^INFO:')"
expect_eq "user cache: owner and mode" "$TUSER 700" "$(stat -c '%U %a' "$U1/cache")"
run_user "CAPSA_CACHEDIR=$U1/cache $CAPSA exec --userns --no-https oras://$REG/test/bb:1 /bin/echo hello"
expect_eq "exec --userns oras:// as $TUSER" "hello" "$OUT"
run_user "$CAPSA exec --no-https oras://$REG/test/bb:1 /bin/echo default-cache"
home1=$(getent passwd "$TUSER" | cut -d: -f6)
expect_eq "default cache \$HOME/.capsa/cache, mode 0700" "default-cache 700" \
    "$(printf '%s\n' "$OUT" | grep -v '^INFO:') $(stat -c %a "$home1/.capsa/cache" 2>&1)"
rm -rf "$home1/.capsa"

# Concurrent first runs share one download.
export CAPSA_CACHEDIR=$WORK/cache-par
before=$(blob_gets)
par=()
for i in 1 2 3 4; do
    "$CAPSA" -q exec --no-https "oras://$REG/test/bb:1" /bin/echo "par$i" > "$WORK/par$i.out" 2>&1 &
    par+=($!)
done
wait "${par[@]}"
outs=$(cat "$WORK"/par[1-4].out | sort | tr '\n' ' ')
expect_eq "4 concurrent runs all work" "par1 par2 par3 par4 " "$outs"
expect_eq "4 concurrent runs: one download" 1 "$(( $(blob_gets) - before ))"
leftover=$(find "$CAPSA_CACHEDIR" -name '.*' -type f | wc -l)
expect_eq "no temporary or lock files left" 0 "$leftover"

# cache list / clean
run "$CAPSA" cache list
expect_match "cache list shows the image and its reference" "^oras +sha256:${HEX:0:12}.*$REG/test/bb:1" "$OUT"
run "$CAPSA" cache clean
expect_eq "cache clean without a terminal needs --force" 255 "$RC"
run "$CAPSA" cache clean --force
expect_eq "cache clean --force" 0 "$RC"
expect_eq "cache clean emptied the cache" 0 "$(find "$CAPSA_CACHEDIR" -type f ! -name '.*' | wc -l)"

# With the registry gone, a cached image still runs (with a warning).
export CAPSA_CACHEDIR=$WORK/cache-root
kill "$open_PID"; wait "$open_PID" 2>/dev/null
run "$CAPSA" exec --no-https "oras://$REG/test/bb:1" /bin/echo offline
expect_eq "registry stopped: the cached image runs" "offline" "$(printf '%s\n' "$OUT" | grep -v '^WARNING:')"
expect_match "registry stopped: a warning says so" "WARNING:.*using the cached image" "$OUT"
run "$CAPSA" exec --no-https "oras://$REG/test/never:1" /bin/echo x
expect_eq "registry stopped: an uncached image fails with 255" 255 "$RC"
expect_match "registry stopped: clear error" "FATAL: .*cannot reach $REG" "$OUT"
start_registry open "$PORT" || fail "registry restart" "$(tail -3 "$R/open/log")"

run "$CAPSA" push --no-https "$WORK/build.log" "oras://$REG/test/notsif:1"
expect_eq "push refuses a file that is not a SIF" 255 "$RC"
run "$CAPSA" pull --no-https "$WORK/x.sif" "oras://$REG/test/missing:1"
expect_match "pull of a missing image: clear error" "FATAL: .*not found" "$OUT"

# ---- a registry that lies (blob digest mismatch), behind bearer tokens --------------
cat > "$WORK/liar.py" <<'EOF'
import hashlib, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
portfile, sif, log = sys.argv[1], sys.argv[2], open(sys.argv[3], "a")
data = open(sif, "rb").read()
served = bytearray(data); served[len(served) // 2] ^= 0xFF
claimed = "sha256:" + hashlib.sha256(data).hexdigest()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.sylabs.sif.config.v1+json",
               "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
    "layers": [{"mediaType": "application/vnd.sylabs.sif.layer.v1.sif", "digest": claimed, "size": len(data),
                "annotations": {"org.opencontainers.image.title": "bad.sif"}}]}).encode()
TOKEN = "tok-" + hashlib.sha256(b"capsa").hexdigest()[:16]
class H(BaseHTTPRequestHandler):
    def log_message(self, fmt, *a):
        log.write("%s %s\n" % (self.command, self.path)); log.flush()
    def reply(self, code, body=b"", ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith("/token"):
            return self.reply(200, json.dumps({"token": TOKEN}).encode())
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            realm = 'Bearer realm="http://127.0.0.1:%d/token",service="liar",scope="repository:test/bad:pull"' % self.server.server_port
            return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}', extra=[("WWW-Authenticate", realm)])
        if self.path == "/v2/":
            return self.reply(200, b"{}")
        if self.path == "/v2/test/bad/manifests/1":
            return self.reply(200, manifest, "application/vnd.oci.image.manifest.v1+json")
        if self.path == "/v2/test/bad/blobs/" + claimed:
            return self.reply(200, bytes(served), "application/octet-stream")
        return self.reply(404, b'{"errors":[{"code":"NOT_FOUND","message":"no"}]}')
    do_HEAD = do_GET
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
open(portfile, "w").write(str(srv.server_port))
srv.serve_forever()
EOF
python3 "$WORK/liar.py" "$WORK/liar.port" "$SIF" "$WORK/liar.log" 2>/dev/null &
PIDS+=($!)
for i in $(seq 1 50); do [ -s "$WORK/liar.port" ] && break; sleep 0.1; done
LIAR=127.0.0.1:$(cat "$WORK/liar.port")
export CAPSA_CACHEDIR=$WORK/cache-liar
run "$CAPSA" pull --no-https "$WORK/bad.sif" "oras://$LIAR/test/bad:1"
expect_eq "wrong digest: exit 255" 255 "$RC"
expect_match "wrong digest: clear error" "FATAL: .*does not match its digest" "$OUT"
if [ -e "$WORK/bad.sif" ] || ls "$WORK"/bad.sif.* > /dev/null 2>&1; then fail "wrong digest: no output file" "$(ls "$WORK")"; else pass "wrong digest: no output file"; fi
expect_eq "wrong digest: nothing cached" 0 "$(find "$CAPSA_CACHEDIR" -type f | wc -l)"
expect_match "bearer token fetched from the realm" "GET /token\?service=liar&scope=repository%3Atest%2Fbad%3Apull" "$(cat "$WORK/liar.log")"
run "$CAPSA" exec --no-https "oras://$LIAR/test/bad:1" /bin/echo no
expect_eq "wrong digest: exec fails with 255" 255 "$RC"
expect_eq "wrong digest: still nothing cached" 0 "$(find "$CAPSA_CACHEDIR" -type f | wc -l)"

# ---- basic auth and registry login ---------------------------------------------------
APORT=$(free_port 5001)
AREG=127.0.0.1:$APORT
PASSWORD="pw-$RANDOM-secret"
htpasswd -Bbn tester "$PASSWORD" > "$R/htpasswd" 2>/dev/null
if start_registry auth "$APORT" "$R/htpasswd"; then pass "registry with basic auth on $AREG"; else
    fail "registry with basic auth on $AREG" "$(tail -5 "$R/auth/log")"; fi
export HOME=$WORK/home CAPSA_CACHEDIR=$WORK/cache-auth
mkdir -p "$HOME"
run "$CAPSA" push --no-https "$SIF" "oras://$AREG/test/bb:1"
expect_eq "basic auth: push without login fails" 255 "$RC"
expect_match "basic auth: says to log in" "capsa registry login" "$OUT"
OUT=$(printf 'wrong\n' | "$CAPSA" registry login --no-https --username tester --password-stdin "$AREG" 2>&1); RC=$?
expect_eq "login with a wrong password fails" 255 "$RC"
if [ -e "$HOME/.capsa/registry.json" ]; then fail "failed login stores nothing" "file exists"; else pass "failed login stores nothing"; fi
OUT=$(printf '%s\n' "$PASSWORD" | "$CAPSA" registry login --no-https --username tester --password-stdin "oras://$AREG" 2>&1); RC=$?
expect_eq "registry login" 0 "$RC"
expect_eq "credentials file is mode 0600" 600 "$(stat -c %a "$HOME/.capsa/registry.json" 2>&1)"
ALL=$OUT
run "$CAPSA" push --no-https "$SIF" "oras://$AREG/test/bb:1"
expect_eq "basic auth: push after login" 0 "$RC"; ALL+=$OUT
run "$CAPSA" pull --no-https "$WORK/auth.sif" "oras://$AREG/test/bb:1"
expect_eq "basic auth: pull after login" 0 "$RC"; ALL+=$OUT
if cmp -s "$SIF" "$WORK/auth.sif"; then pass "basic auth: identical bytes"; else fail "basic auth: identical bytes" "differs"; fi
run "$CAPSA" registry list
expect_match "registry list shows host and user" "$AREG +tester" "$OUT"; ALL+=$OUT
run "$CAPSA" -d exec --no-https "oras://$AREG/test/bb:1" /bin/echo authed
expect_match "basic auth: exec after login" "^authed$" "$OUT"; ALL+=$OUT
expect_nomatch "the password is never printed" "$PASSWORD" "$ALL"
run "$CAPSA" registry logout "$AREG"
expect_eq "registry logout" 0 "$RC"
rm -rf "$CAPSA_CACHEDIR"
run "$CAPSA" pull --no-https "$WORK/auth2.sif" "oras://$AREG/test/bb:1"
expect_eq "basic auth: pull after logout fails" 255 "$RC"
chmod 0644 "$HOME/.capsa/registry.json"
run "$CAPSA" registry list
expect_match "a credentials file readable by others is refused" "FATAL: .*accessible by others" "$OUT"
export HOME=/root
unset CAPSA_CACHEDIR

# ---- docker:// builds --------------------------------------------------------------
# OCI images written by hand (python tarfile: names GNU tar would not
# write), pushed with skopeo.
cat > "$WORK/mkoci.py" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
out, recipe, token, bbdir = sys.argv[1:5]
os.makedirs(out + "/blobs/sha256", exist_ok=True)
def blob(data):
    h = hashlib.sha256(data).hexdigest()
    open("%s/blobs/sha256/%s" % (out, h), "wb").write(data)
    return "sha256:" + h, len(data)
def entry(tf, name, kind="file", data=b"", target="", mode=0o644):
    ti = tarfile.TarInfo(name); ti.mode = mode; ti.mtime = 1700000000
    if kind == "file":
        ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
    elif kind == "dir":
        ti.type = tarfile.DIRTYPE; ti.mode = 0o755; tf.addfile(ti)
    elif kind == "symlink":
        ti.type = tarfile.SYMTYPE; ti.linkname = target; tf.addfile(ti)
    elif kind == "hardlink":
        ti.type = tarfile.LNKTYPE; ti.linkname = target; tf.addfile(ti)
def layer(fill, gz):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        fill(tf)
    raw = buf.getvalue()
    d, n = blob(gzip.compress(raw, mtime=0) if gz else raw)
    mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
    return {"mediaType": mt, "digest": d, "size": n}, "sha256:" + hashlib.sha256(raw).hexdigest()
def base(tf):
    tf.add(bbdir, arcname=".")
    entry(tf, "etc/removed.txt", data=b"lower\n")
    entry(tf, "data", "dir"); entry(tf, "data/old", "dir"); entry(tf, "data/old/a.txt", data=b"a\n")
    entry(tf, "opt", "dir"); entry(tf, "opt/keep.txt", data=b"keep\n")
    entry(tf, "usr/local/bin", "dir")
    entry(tf, "usr/local/bin/hello", data=b'#!/bin/sh\necho "hello:$GREETING:$(pwd):$*"\n', mode=0o755)
def upper(tf):
    entry(tf, "etc/.wh.removed.txt")
    entry(tf, "data/.wh..wh..opq"); entry(tf, "data/new.txt", data=b"new\n")
    entry(tf, "opt/added.txt", data=b"added\n")
def hostile(tf):
    if recipe == "dotdot":
        entry(tf, "../../etc/capsa-evil-" + token, data=b"evil\n")
    elif recipe == "absolute":
        entry(tf, "/tmp/capsa-evil-" + token, data=b"evil\n")
    elif recipe == "symlink":
        entry(tf, "esc", "symlink", target="/tmp/capsa-evildir-" + token)
        entry(tf, "esc/evil", data=b"evil\n")
    elif recipe == "symlink-rel":
        entry(tf, "esc", "symlink", target="../../../../../../../../tmp/capsa-evildir-" + token)
        entry(tf, "esc/evil", data=b"evil\n")
    elif recipe == "hardlink":
        entry(tf, "hl", "hardlink", target="../../../etc/passwd")
layers, diffs = [], []
for fill, gz in ([(base, True), (upper, False)] if recipe in ("whiteout", "entry") else [(base, True), (hostile, False)]):
    l, d = layer(fill, gz); layers.append(l); diffs.append(d)
cfg = {"Env": ["PATH=/usr/local/bin:/bin:/usr/bin", "GREETING=hi there"], "WorkingDir": "/opt"}
if recipe == "entry":
    cfg.update(Entrypoint=["/usr/local/bin/hello", "ep"], Cmd=["default"])
else:
    cfg.update(Cmd=["/usr/local/bin/hello", "from-cmd"])
config = json.dumps({"architecture": "amd64", "os": "linux", "config": cfg,
                     "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
cd, cn = blob(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                       "layers": layers}).encode()
md, mn = blob(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "1"},
           "platform": {"architecture": "amd64", "os": "linux"}}]}, open(out + "/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(out + "/oci-layout", "w"))
EOF
TOKEN=$RANDOM$RANDOM
mkoci () {   # RECIPE: OCI layout $WORK/oci-RECIPE, pushed as test/RECIPE:1
    python3 "$WORK/mkoci.py" "$WORK/oci-$1" "$1" "$TOKEN" "$IMG_DIR" \
        && skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$WORK/oci-$1:1" "docker://$REG/test/$1:1" > "$WORK/skopeo.log" 2>&1
}
if mkoci whiteout && mkoci entry; then pass "OCI images pushed with skopeo"; else fail "OCI images pushed with skopeo" "$(tail -3 "$WORK/skopeo.log")"; fi

export CAPSA_CACHEDIR=$WORK/cache-build
run "$CAPSA" build "$WORK/img.sif" "docker://$REG/test/whiteout:1" --no-https
expect_eq "build from docker://" 0 "$RC"
run "$CAPSA" exec "$WORK/img.sif" cat /etc/removed.txt
expect_eq "whiteout: the file is gone" 1 "$RC"
run "$CAPSA" exec "$WORK/img.sif" ls /data
expect_eq "opaque directory: only the upper layer's content" "new.txt" "$OUT"
run "$CAPSA" exec "$WORK/img.sif" cat /opt/keep.txt /opt/added.txt
expect_eq "both layers applied" "keep added" "$(echo $OUT)"
run "$CAPSA" exec "$WORK/img.sif" sh -c 'echo "$GREETING"'
expect_eq "Env from the image config" "hi there" "$OUT"
run "$CAPSA" run "$WORK/img.sif"
expect_eq "run runs the Cmd (in WorkingDir)" "hello:hi there:/opt:from-cmd" "$OUT"
run "$CAPSA" run "$WORK/img.sif" /usr/local/bin/hello a b
expect_eq "run ARGS replace the Cmd (Docker's rule)" "hello:hi there:/opt:a b" "$OUT"
run_user "$CAPSA run $WORK/img.sif"
expect_eq "the built image runs as $TUSER" "hello:hi there:/opt:from-cmd" "$OUT"
layer_gets () {   # GETs of the whiteout image's layer blobs
    local d n=0
    for d in $(python3 -c 'import json,sys; i=json.load(open(sys.argv[1]+"/index.json")); m=json.load(open(sys.argv[1]+"/blobs/sha256/"+i["manifests"][0]["digest"][7:])); print(" ".join(l["digest"] for l in m["layers"]))' "$WORK/oci-whiteout"); do
        n=$((n + $(grep -c "\"GET /v2/test/whiteout/blobs/$d " "$R/open/log")))
    done
    echo "$n"
}
before=$(layer_gets)
run "$CAPSA" build --force "$WORK/img.sif" "docker://$REG/test/whiteout:1" --no-https
expect_eq "second build reuses the cached layers" "0 $before" "$RC $(layer_gets)"
run "$CAPSA" build "$WORK/entry.sif" "docker://$REG/test/entry:1" --no-https
run "$CAPSA" run "$WORK/entry.sif"
expect_eq "Entrypoint + Cmd" "hello:hi there:/opt:ep default" "$OUT"
run "$CAPSA" run "$WORK/entry.sif" x
expect_eq "Entrypoint + run ARGS" "hello:hi there:/opt:ep x" "$OUT"

(cd "$WORK/oci-whiteout" && tar -cf "$WORK/img-oci.tar" .)
run "$CAPSA" build "$WORK/img2.sif" "oci-archive:$WORK/img-oci.tar"
expect_eq "build from oci-archive:" 0 "$RC"
run "$CAPSA" run "$WORK/img2.sif"
expect_eq "oci-archive: image runs its Cmd" "hello:hi there:/opt:from-cmd" "$OUT"
skopeo --insecure-policy copy -q "oci:$WORK/oci-whiteout:1" "docker-archive:$WORK/img-docker.tar:test/whiteout:1" > "$WORK/skopeo.log" 2>&1
run "$CAPSA" build "$WORK/img3.sif" "docker-archive:$WORK/img-docker.tar"
expect_eq "build from docker-archive:" 0 "$RC"
run "$CAPSA" exec "$WORK/img3.sif" ls /data
expect_eq "docker-archive: whiteouts applied" "new.txt" "$OUT"

run "$CAPSA" inspect --deffile "$WORK/img.sif"
expect_match "inspect: the recipe says Bootstrap: docker" "^bootstrap: docker$" "$OUT"

# A definition file with "Bootstrap: docker": %post runs in the fetched
# root, %runscript replaces the image's Cmd, the image's Env stays.
cat > "$WORK/docker.def" <<EOF
Bootstrap: docker
From: $REG/test/whiteout:1

%post
    echo "post" > /post.txt

%runscript
    echo "def-runscript:\$GREETING:\$(cat /post.txt)"
EOF
run "$CAPSA" build --no-https "$WORK/def.sif" "$WORK/docker.def"
expect_eq "build from a definition file with Bootstrap: docker" 0 "$RC"
run "$CAPSA" run "$WORK/def.sif"
expect_eq "Bootstrap: docker: %post ran, %runscript wins, Env kept" "def-runscript:hi there:post" "$OUT"

# Without root: the layers are extracted as the user.
run_user "CAPSA_CACHEDIR=$U1/cache $CAPSA build --no-https $U1/user.sif docker://$REG/test/whiteout:1"
expect_eq "build from docker:// as $TUSER" 0 "$RC"
run_user "$CAPSA run $U1/user.sif"
expect_eq "image built by $TUSER runs the Cmd" "hello:hi there:/opt:from-cmd" "$OUT"

# Hostile layers: the build fails, nothing is written outside its directory.
mkdir -p "/tmp/capsa-evildir-$TOKEN"
for recipe in dotdot absolute symlink symlink-rel hardlink; do
    mkoci "$recipe" || fail "hostile image $recipe" "$(tail -3 "$WORK/skopeo.log")"
    run "$CAPSA" build "$WORK/evil-$recipe.sif" "docker://$REG/test/$recipe:1" --no-https
    expect_eq "hostile layer ($recipe): build fails with 255" 255 "$RC"
    expect_match "hostile layer ($recipe): clear error" "FATAL: .*layer 2/2.*entry '[^']*'" "$OUT"
done
leaks=$(ls -d "/etc/capsa-evil-$TOKEN" "/tmp/capsa-evil-$TOKEN" "/tmp/capsa-evildir-$TOKEN/evil" 2>/dev/null)
expect_eq "hostile layers wrote nothing outside" "" "$leaks"
expect_eq "no failed build left files" "" "$(ls "$WORK" | grep -E '^evil-|capsa-build' || true)"
rmdir "/tmp/capsa-evildir-$TOKEN"
unset CAPSA_CACHEDIR

cleanup_registries
trap - EXIT
