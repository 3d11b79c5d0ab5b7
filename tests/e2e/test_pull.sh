# pull and images by URI (issue 14): pull --name/--dir/--force/--no-https of
# docker:// (converted once into the cache), oras:// and http(s):// (a SIF
# by URL), and exec/run/inspect of docker:// and http(s):// images through
# the cache, as root, through the setuid starter and with --userns.
#
# Starts Debian's docker-registry and python3's http.server on 127.0.0.1;
# the image is an OCI layout written with python's tarfile and pushed with
# skopeo (tools other than capsa).

command -v docker-registry > /dev/null || { fail "pull setup" "docker-registry missing (scripts/deps.sh)"; return 0; }
command -v skopeo > /dev/null || { fail "pull setup" "skopeo missing (scripts/deps.sh)"; return 0; }

BIN=$CAPSA_PREFIX/bin
R=$WORK/reg
mkdir -p "$R/data" "$WORK/www"
PIDS=()
cleanup_servers () {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup_servers EXIT

free_port () {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http () {
    local i
    for i in $(seq 1 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    return 1
}

PORT=$(free_port)
REG=127.0.0.1:$PORT
cat > "$R/config.yml" <<EOF
version: 0.1
log: {level: info, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $R/data}, delete: {enabled: true}}
http: {addr: $REG}
EOF
start_registry () {
    docker-registry serve "$R/config.yml" >> "$R/log" 2>&1 &
    REG_PID=$!
    PIDS+=("$REG_PID")
    wait_http "http://$REG/v2/"
}
if start_registry; then pass "pull: docker-registry on $REG"; else fail "pull: docker-registry on $REG" "$(tail -3 "$R/log")"; return 0; fi

# An OCI image: the busybox tree plus /usr/local/bin/hello, Env and Cmd.
cat > "$WORK/mkoci.py" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
out, bbdir, label = sys.argv[1:4]
os.makedirs(out + "/blobs/sha256", exist_ok=True)
def blob(data):
    h = hashlib.sha256(data).hexdigest()
    open("%s/blobs/sha256/%s" % (out, h), "wb").write(data)
    return "sha256:" + h, len(data)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
    tf.add(bbdir, arcname=".")
    data = ("#!/bin/sh\necho \"hello:%s:$GREETING:$*\"\n" % label).encode()
    ti = tarfile.TarInfo("usr/local/bin/hello"); ti.mode = 0o755; ti.size = len(data); ti.mtime = 1700000000
    tf.addfile(ti, io.BytesIO(data))
raw = buf.getvalue()
ld, ln = blob(gzip.compress(raw, mtime=0))
cfg = {"Env": ["GREETING=hi"], "Cmd": ["/usr/local/bin/hello", "cmd"]}
config = json.dumps({"architecture": "amd64", "os": "linux", "config": cfg,
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode()
cd, cn = blob(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ln}]}).encode()
md, mn = blob(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "1"},
           "platform": {"architecture": "amd64", "os": "linux"}}]}, open(out + "/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(out + "/oci-layout", "w"))
print(ld)
EOF
push_image () {   # LABEL TAG: prints the layer digest
    python3 "$WORK/mkoci.py" "$WORK/oci-$1" "$IMG_DIR" "$1" \
        && skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$WORK/oci-$1:1" "docker://$REG/test/hello:$2" \
            > "$WORK/skopeo.log" 2>&1
}
LAYER=$(push_image v1 1 | tail -1)
if [ -n "$LAYER" ]; then pass "pull: image pushed with skopeo"; else fail "pull: image pushed with skopeo" "$(cat "$WORK/skopeo.log")"; fi
layer_gets () { grep -c "\"GET /v2/test/hello/blobs/$LAYER " "$R/log"; }

# ---- pull docker:// as root ------------------------------------------------------------
export CAPSA_CACHEDIR=$WORK/cache
cd "$WORK"
run "$BIN/apptainer" pull --name hello.sif docker://$REG/test/hello:1 --no-https
expect_eq "apptainer pull --name F docker://... --no-https (options after the URI too)" 0 "$RC"
expect_match "pull says what it made" "INFO: +Pulled docker://$REG/test/hello:1 to hello.sif" "$OUT"
run "$CAPSA" run "$WORK/hello.sif"
expect_eq "the pulled image runs its Cmd with its Env" "hello:v1:hi:cmd" "$OUT"
expect_eq "the pulled SIF is executable (the run-singularity line)" "#!/usr/bin/env run-singularity x" \
    "$(head -c 31 "$WORK/hello.sif") $( [ -x "$WORK/hello.sif" ] && echo x)"
before=$(layer_gets)
run "$CAPSA" pull --force --no-https --name hello.sif "docker://$REG/test/hello:1"
expect_eq "pull --force again" 0 "$RC"
expect_eq "a second pull downloads no layer and converts nothing" "$before no-conversion" \
    "$(layer_gets) $(printf '%s' "$OUT" | grep -q Converting && echo converted || echo no-conversion)"
echo keep > "$WORK/exists.sif"
run "$CAPSA" pull --no-https --name exists.sif "docker://$REG/test/hello:1"
expect_eq "pull over an existing file without --force: 255, file untouched" "255 keep" "$RC $(cat "$WORK/exists.sif")"
run "$CAPSA" pull --no-https "docker://$REG/test/hello:1"
expect_eq "pull without a name: Apptainer's NAME_TAG.sif" "0 yes" "$RC $([ -f "$WORK/hello_1.sif" ] && echo yes)"
mkdir "$WORK/dir"
run "$CAPSA" pull --no-https --dir "$WORK/dir" "docker://$REG/test/hello:1"
expect_eq "pull --dir DIR" "0 yes" "$RC $([ -f "$WORK/dir/hello_1.sif" ] && echo yes)"
run env SINGULARITY_PULLFOLDER="$WORK/dir" "$CAPSA" pull --no-https --name pf.sif "docker://$REG/test/hello:1"
expect_eq "SINGULARITY_PULLFOLDER is --dir" "0 yes" "$RC $([ -f "$WORK/dir/pf.sif" ] && echo yes)"
run env APPTAINER_NOHTTPS=1 "$CAPSA" pull --name env.sif "docker://$REG/test/hello:1"
expect_eq "APPTAINER_NOHTTPS=1 is --no-https" 0 "$RC"
run "$CAPSA" pull --name https.sif "docker://$REG/test/hello:1"
expect_eq "without --no-https a plain-HTTP registry is refused" "255 no" "$RC $([ -e "$WORK/https.sif" ] && echo yes || echo no)"
rm -rf "$WORK/nocache"
run env CAPSA_CACHEDIR="$WORK/nocache" "$CAPSA" pull --disable-cache --no-https --name nc.sif "docker://$REG/test/hello:1"
expect_eq "pull --disable-cache: the image, and nothing in a cache" "0 yes no" \
    "$RC $([ -f "$WORK/nc.sif" ] && echo yes) $(find "$WORK/nocache" -type f 2>/dev/null | grep -q . && echo yes || echo no)"
run "$CAPSA" pull --no-https --name missing.sif "docker://$REG/test/nothere:1"
expect_eq "pull of a missing image: 255 and no file" "255 no" "$RC $(ls "$WORK"/missing.sif* > /dev/null 2>&1 && echo yes || echo no)"

# ---- exec/run/inspect docker:// ------------------------------------------------------
run "$CAPSA" exec --no-https "docker://$REG/test/hello:1" /usr/local/bin/hello x
expect_eq "exec docker:// as root (cached conversion)" "hello:v1:hi:x" "$(printf '%s\n' "$OUT" | grep -v '^INFO:')"
run "$CAPSA" run --no-https "docker://$REG/test/hello:1"
expect_eq "run docker://" "hello:v1:hi:cmd" "$OUT"
run "$CAPSA" inspect --no-https --runscript "docker://$REG/test/hello:1"
expect_match "inspect docker://" "/usr/local/bin/hello" "$OUT"
run "$CAPSA" exec --userns --no-https "docker://$REG/test/hello:1" /usr/local/bin/hello ns
expect_eq "exec --userns docker:// as root" "hello:v1:hi:ns" "$OUT"
# A new image under the same tag: converted again, by its new digest.
push_image v2 1 > /dev/null
run "$CAPSA" exec --no-https "docker://$REG/test/hello:1" /usr/local/bin/hello
expect_eq "a tag that moved: the new image" "hello:v2:hi:" "$(printf '%s\n' "$OUT" | grep -v '^INFO:')"
run "$CAPSA" cache list
expect_match "cache list shows the conversion and its reference" "^oci-tmp +sha256:[0-9a-f]{12} .*$REG/test/hello:1" "$OUT"

# As the test user: its own cache, setuid starter and user namespace.
U1=$WORK/u1
mkdir -p "$U1"; chown "$TUSER" "$U1"
run_user "cd $U1 && CAPSA_CACHEDIR=$U1/cache $BIN/singularity pull --nohttps --name u.sif docker://$REG/test/hello:1"
expect_eq "singularity pull --nohttps --name as $TUSER" "0 $TUSER" "$RC $(stat -c %U "$U1/u.sif" 2>&1)"
run_user "$CAPSA run $U1/u.sif"
expect_eq "$TUSER runs the image it pulled" "hello:v2:hi:cmd" "$OUT"
run_user "CAPSA_CACHEDIR=$U1/cache $CAPSA exec --no-https docker://$REG/test/hello:1 /usr/local/bin/hello u"
expect_eq "exec docker:// as $TUSER (setuid)" "hello:v2:hi:u" "$OUT"
run_user "CAPSA_CACHEDIR=$U1/cache $CAPSA exec --userns --no-https docker://$REG/test/hello:1 /usr/local/bin/hello n"
expect_eq "exec --userns docker:// as $TUSER" "hello:v2:hi:n" "$OUT"
run_user "APPTAINER_CACHEDIR=$U1/acache $CAPSA exec --no-https docker://$REG/test/hello:1 true"
expect_eq "APPTAINER_CACHEDIR=DIR: capsa's cache in DIR/capsa, the user's, 0700" "0 $TUSER 700" \
    "$RC $(stat -c '%U %a' "$U1/acache/capsa" 2>&1)"

# The registry stopped: the conversion made before still runs, with a warning.
kill "$REG_PID"; wait "$REG_PID" 2>/dev/null
run "$CAPSA" exec --no-https "docker://$REG/test/hello:1" /usr/local/bin/hello off
expect_eq "registry stopped: the cached conversion runs" "hello:v2:hi:off" "$(printf '%s\n' "$OUT" | grep -v '^WARNING:')"
expect_match "registry stopped: a warning says so" "^WARNING: .*cached conversion" "$OUT"
run "$CAPSA" exec --no-https "docker://$REG/test/other:1" true
expect_eq "registry stopped, never pulled: 255" 255 "$RC"
start_registry || fail "registry restart" "$(tail -3 "$R/log")"

# ---- oras:// --name -------------------------------------------------------------------
run "$CAPSA" push --no-https "$WORK/hello.sif" "oras://$REG/test/orashello:1"
run "$BIN/apptainer" pull --no-https --name oras.sif "oras://$REG/test/orashello:1"
expect_eq "pull --name oras://" "0 same" "$RC $(cmp -s "$WORK/hello.sif" "$WORK/oras.sif" && echo same)"

# ---- http(s):// -------------------------------------------------------------------------
cp "$WORK/hello.sif" "$WORK/www/net.sif"
echo "not an image" > "$WORK/www/bad.sif"
HPORT=$(free_port)
python3 -m http.server "$HPORT" --bind 127.0.0.1 --directory "$WORK/www" > "$WORK/http.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$HPORT/" || fail "http server" "$(cat "$WORK/http.log")"
URL=http://127.0.0.1:$HPORT/net.sif
gets () { grep -c '"GET /net.sif ' "$WORK/http.log"; }
run "$CAPSA" pull --name fromurl.sif "$URL"
expect_eq "pull http://: the same bytes" "0 same" "$RC $(cmp -s "$WORK/hello.sif" "$WORK/fromurl.sif" && echo same)"
run "$CAPSA" pull "$URL"
expect_eq "pull http:// without a name: the URL's last part" "0 yes" "$RC $([ -f "$WORK/net.sif" ] && echo yes)"
before=$(gets)
run "$CAPSA" exec "$URL" /usr/local/bin/hello web
expect_eq "exec http://" "hello:v1:hi:web" "$OUT"
run_user "CAPSA_CACHEDIR=$U1/cache $CAPSA exec $URL /usr/local/bin/hello webuser"
expect_eq "exec http:// as $TUSER" "hello:v1:hi:webuser" "$(printf '%s\n' "$OUT" | grep -v '^INFO:')"
run "$CAPSA" exec "$URL" /usr/local/bin/hello again
expect_eq "exec http:// again: from the cache (Last-Modified unchanged), no new download" "hello:v1:hi:again $((before + 1))" \
    "$OUT $(gets)"
run "$CAPSA" pull --name bad.sif "http://127.0.0.1:$HPORT/bad.sif"
expect_eq "a URL that is no image: 255, nothing kept" "255 no" "$RC $(ls "$WORK"/bad.sif* > /dev/null 2>&1 && echo yes || echo no)"
expect_match "... with a clear error" "FATAL: .*is not a SIF or squashfs image" "$OUT"
run "$CAPSA" pull --name nf.sif "http://127.0.0.1:$HPORT/nothere.sif"
expect_match "a missing URL: HTTP 404" "FATAL: .*not found \(HTTP 404\)" "$OUT"
run "$CAPSA" pull "library://alpine"
expect_match "library:// is refused with a reason" "FATAL: .*library images are not supported" "$OUT"
run "$CAPSA" exec "shub://x/y" true
expect_eq "exec shub:// is refused" 255 "$RC"

cd /
unset CAPSA_CACHEDIR
cleanup_servers
trap - EXIT
no_leftover_mounts "pull: no mounts left"
