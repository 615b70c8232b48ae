#!/usr/bin/env bash
# Builds the Debian package (`npm run package:deb`): disk2iso_VERSION_ARCH.deb in the output folder.
#   --out DIR          where the package goes (default: the repository's root)
#   --version VERSION  the package's version (default: package.json's)
#   --no-build         package dist/ as it is (the tests, which run from it); default: npm run build first
#   --fast             gzip -1 instead of xz (tests); the package is larger, its content the same
# The package carries the Node.js it was built with, so the native modules (better-sqlite3, bcrypt)
# always match the runtime, and it installs on a plain Debian 12, whose own nodejs is 18.
set -euo pipefail
cd "$(dirname "$0")/.."

out=$PWD
version=$(node -p 'require("./package.json").version')
build=1
compression=(-Zxz)
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --fast) compression=(-Zgzip -z1); shift ;;
    *) echo "usage: build-deb.sh [--out DIR] [--version VERSION] [--no-build] [--fast]" >&2; exit 2 ;;
  esac
done
if ! [[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]]; then
  echo "build-deb.sh: not a Debian version: $version" >&2
  exit 2
fi
for tool in dpkg-deb systemd-analyze; do
  command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool is missing (apt-get install dpkg systemd)" >&2; exit 2; }
done

[ "$build" -eq 1 ] && npm run --silent build
[ -f dist/src/main.js ] || { echo "build-deb.sh: dist/src/main.js is missing: npm run build" >&2; exit 2; }
[ -f node_modules/.package-lock.json ] || { echo "build-deb.sh: node_modules is missing: npm ci" >&2; exit 2; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
opt=$root/opt/disk2iso
arch=$(dpkg --print-architecture)

# The code: compiled JavaScript (no source maps, no tests), the templates, translations and assets
# it reads from src/web at run time, and the production dependencies only.
mkdir -p "$opt/bin" "$opt/node/bin" "$opt/dist" "$opt/src/web" "$opt/share/nginx"
install -m 0755 bin/disk2iso "$opt/bin/disk2iso"
install -m 0644 package.json "$opt/package.json"
tar -C dist --exclude='*.map' -cf - src | tar -C "$opt/dist" -xf -
tar -C src/web -cf - templates i18n static pwa | tar -C "$opt/src/web" -xf -
mapfile -t production < <(npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | sed "s|^$PWD/||" | sort -u)
[ ${#production[@]} -gt 0 ] || { echo "build-deb.sh: npm ls found no production dependencies" >&2; exit 1; }
# Build leftovers of the native modules (objects, the SQLite sources) are not needed to run.
tar -cf - --exclude='build/Release/obj' --exclude='build/Release/obj.target' --exclude='build/Release/.deps' \
  --exclude='better-sqlite3/deps' --exclude='better-sqlite3/src' "${production[@]}" | tar -C "$opt" -xf -
install -m 0755 "$(node -p process.execPath)" "$opt/node/bin/node"
install -m 0644 deploy/nginx/disk2iso.conf "$opt/share/nginx/disk2iso.conf"
install -m 0644 deploy/nginx/disk2iso-http.conf "$opt/share/nginx/disk2iso-http.conf"

# Integration with the system.
install -D -m 0755 deploy/disk2iso "$root/usr/bin/disk2iso"
install -D -m 0755 deploy/disk2iso-nginx "$root/usr/sbin/disk2iso-nginx"
install -D -m 0644 deploy/systemd/disk2iso.service "$root/lib/systemd/system/disk2iso.service"
install -D -m 0644 deploy/sysusers.d/disk2iso.conf "$root/usr/lib/sysusers.d/disk2iso.conf"
install -D -m 0644 deploy/tmpfiles.d/disk2iso.conf "$root/usr/lib/tmpfiles.d/disk2iso.conf"
# 0600 root here; postinst hands it to the service's user, which does not exist before.
install -D -m 0600 deploy/config.json "$root/etc/disk2iso/config.json"
install -d -m 0755 "$root/usr/share/doc/disk2iso"
install -m 0644 README.md docs/operations.md docs/security.md "$root/usr/share/doc/disk2iso/"
cat >"$root/usr/share/doc/disk2iso/copyright" <<COPYRIGHT
disk2iso is free software under the GNU General Public License, version 3 or later
(/usr/share/common-licenses/GPL-3). /opt/disk2iso/node/bin/node is Node.js $(node --version)
(MIT and bundled licenses, https://nodejs.org/en/about); /opt/disk2iso/node_modules holds npm
packages, each with its licence in its own folder.
COPYRIGHT

# The unit must pass verify and keep its exposure at 2.5 or lower before it ships. verify needs the
# system's own units (targets, slices) beside it, and checks ExecStart inside the root it is given.
verify_root=$stage/verify
mkdir -p "$verify_root/lib/systemd" "$verify_root/opt/disk2iso/bin"
cp -a /lib/systemd/system "$verify_root/lib/systemd/"
cp deploy/systemd/disk2iso.service "$verify_root/lib/systemd/system/"
cp "$opt/bin/disk2iso" "$verify_root/opt/disk2iso/bin/"
complaints=$(systemd-analyze verify --root="$verify_root" --man=no disk2iso.service 2>&1) || true
if [ -n "$complaints" ]; then
  echo "build-deb.sh: systemd-analyze verify: $complaints" >&2
  exit 1
fi
systemd-analyze security --offline=yes --threshold=25 --no-pager deploy/systemd/disk2iso.service >/dev/null

mkdir -p "$root/DEBIAN"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"
echo /etc/disk2iso/config.json >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/control" <<CONTROL
Package: disk2iso
Version: $version
Architecture: $arch
Maintainer: disk2iso developers <dev@disk2iso.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: libc6 (>= 2.28), libstdc++6 (>= 5.2), libgcc-s1, systemd, init-system-helpers (>= 1.58), util-linux, eject
Recommends: udev
Suggests: nginx, ssl-cert, gddrescue
Section: utils
Priority: optional
Description: bit-exact, verified archival images of optical discs
 disk2iso images CD, DVD and Blu-ray discs (and other block devices an
 administrator allows) into verified ISO images with ddrescue-style rescue
 maps and md5sum/sha256sum sidecars. It runs as a service with a web
 interface, a REST API and a durable job queue, and has a command line.
 .
 This package carries its own Node.js runtime under /opt/disk2iso/node.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)

mkdir -p "$out"
package="$out/disk2iso_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${compression[@]}" --build "$root" "$package" >/dev/null
echo "$package"
