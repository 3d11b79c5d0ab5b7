#!/usr/bin/env bash
# make deb: builds capsa_VERSION_ARCH.deb with debhelper from a copy of this
# source tree (packaging/debian becomes its debian/), and moves it into
# OUTDIR.  Usage: packaging/build-deb.sh VERSION OUTDIR
# Needs dpkg-dev and debhelper (scripts/deps.sh installs them); no root.
set -euo pipefail

version=${1:?usage: build-deb.sh VERSION OUTDIR}
outdir=${2:?usage: build-deb.sh VERSION OUTDIR}
top=$(cd "$(dirname "$0")/.." && pwd)
arch=$(dpkg --print-architecture)
maint=$(sed -n 's/^Maintainer: //p' "$top/packaging/debian/control")

for c in dpkg-buildpackage dh; do
    command -v "$c" > /dev/null || { echo "build-deb.sh: $c missing (bash scripts/deps.sh)" >&2; exit 1; }
done
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/capsa-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/capsa-$version
mkdir "$src"

# What the package is built from: the build's inputs, no build directories.
tar -C "$top" --exclude-vcs -cf - Makefile README.md SECURITY.md HACKING.md src etc docs \
    | tar -C "$src" -xf -
cp -a "$top/packaging/debian" "$src/debian"

# The version is the Makefile's; the date that of the last commit when there
# is one (so that two builds of one commit are the same).
date=$(git -C "$top" log -1 --format=%cD 2> /dev/null || true)
[ -n "$date" ] || date=$(date -R)
cat > "$src/debian/changelog" <<CHANGELOG
capsa ($version) unstable; urgency=medium

  * capsa $version, built from the capsa repository by "make deb".

 -- $maint  $date
CHANGELOG

DEB_BUILD_OPTIONS="noddebs parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}"
export DEB_BUILD_OPTIONS
(cd "$src" && dpkg-buildpackage --build=binary --no-sign)

deb=capsa_${version}_${arch}.deb
mv "$work/$deb" "$outdir/$deb"
echo "built $outdir/$deb"
