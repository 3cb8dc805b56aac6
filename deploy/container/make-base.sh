#!/usr/bin/env bash
# Makes a minimal Node base image from this machine's own files, for builds where no registry is reachable:
# the host's node binary and its libraries, npm, busybox (static; /bin/sh and a few tools), openssl and its
# libraries, the CA bundle, a passwd with uid 10001. FROM scratch, so nothing is pulled.
# Usage: make-base.sh IMAGE_NAME   (e.g. localhost/spotlift-node-base:20)
set -euo pipefail
image=${1:?image name}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/rootfs
mkdir -p "$root"/{bin,usr/bin,usr/lib,etc/ssl/certs,tmp,app,var/lib/spotlift/state,var/lib/spotlift/ca}
chmod 1777 "$root/tmp"
copy_with_libs() {
  install -D -m 755 "$1" "$root$1"
  ldd "$1" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
    [ -n "$lib" ] && [ -e "$lib" ] && install -D -m 755 "$(readlink -f "$lib")" "$root$lib"
  done
}
copy_with_libs "$(readlink -f "$(command -v node)")"
[ -e "$root/usr/bin/node" ] || ln -s "$(readlink -f "$(command -v node)")" "$root/usr/bin/node"
copy_with_libs "$(command -v openssl)"
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
mkdir -p "$root/usr/lib/node_modules"
cp -a "$npm_dir" "$root/usr/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/bin/npm"
install -m 755 "$(command -v busybox)" "$root/bin/busybox"
for tool in sh ls cat id env mkdir rm; do ln -s busybox "$root/bin/$tool"; done
ln -s ../../bin/busybox "$root/usr/bin/env" # scripts start with #!/usr/bin/env node
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/bin/sh\nspotlift:x:10001:10001:spotlift:/app:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\nspotlift:x:10001:\n' > "$root/etc/group"
chown -R 10001:10001 "$root/var/lib/spotlift"
chmod 700 "$root/var/lib/spotlift/state" "$root/var/lib/spotlift/ca"
tar -C "$root" -cf "$stage/rootfs.tar" .
printf 'FROM scratch\nADD rootfs.tar /\nENV PATH=/usr/local/bin:/usr/bin:/bin\n' > "$stage/Containerfile"
buildah bud --quiet -f "$stage/Containerfile" -t "$image" "$stage" >/dev/null
