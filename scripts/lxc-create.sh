#!/usr/bin/env bash
# On an LXC host, as root: creates a Debian 12 (bookworm) container for disk2iso, passes the optical
# drives and the output folder through, sets the resource limits, and installs the disk2iso package
# inside (docs/operations.md, "In an LXC container"). --dry-run prints every step and changes nothing.
#
#   scripts/lxc-create.sh --deb disk2iso_2.0.0_amd64.deb --output /storage/isos [--drive /dev/sr0]...
#                         [--name disk2iso] [--memory 2G] [--cpus 2] [--nginx] [--dry-run]
set -euo pipefail

name=disk2iso
deb=
output=
memory=2G
cpus=2
nginx=0
dry_run=0
drives=()

usage() {
  sed -n '6,7s/^# \{0,3\}//p' "$0" >&2
  exit 2
}
fail() {
  echo "lxc-create.sh: $*" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --name) [ $# -ge 2 ] || usage; name=$2; shift 2 ;;
    --deb) [ $# -ge 2 ] || usage; deb=$2; shift 2 ;;
    --output) [ $# -ge 2 ] || usage; output=$2; shift 2 ;;
    --drive) [ $# -ge 2 ] || usage; drives+=("$2"); shift 2 ;;
    --memory) [ $# -ge 2 ] || usage; memory=$2; shift 2 ;;
    --cpus) [ $# -ge 2 ] || usage; cpus=$2; shift 2 ;;
    --nginx) nginx=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage ;;
    *) fail "unknown argument: $1" ;;
  esac
done

# Everything below ends up in the container's configuration or on a command line: check it first.
[[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ ]] || fail "invalid --name: $name"
[ -n "$deb" ] || fail "--deb FILE is required (build it with npm run package:deb)"
[ -f "$deb" ] || fail "no such package: $deb"
[[ $output =~ ^/[A-Za-z0-9_./-]+$ && ! $output =~ (^|/)\.\.(/|$) ]] || fail "--output must be an absolute path of plain characters, got: ${output:-nothing}"
[ -d "$output" ] || fail "the output folder does not exist: $output"
[[ $memory =~ ^[0-9]+[KMG]$ ]] || fail "invalid --memory (e.g. 2G): $memory"
[[ $cpus =~ ^[1-9][0-9]?$ ]] || fail "invalid --cpus (whole cores): $cpus"
[ ${#drives[@]} -gt 0 ] || drives=(/dev/sr0)
for drive in "${drives[@]}"; do
  [[ $drive =~ ^/dev/sr[0-9]+$ ]] || fail "--drive must be an optical drive such as /dev/sr0, got: $drive"
done
if [ "$dry_run" -eq 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "run as root (or with --dry-run)"
  command -v lxc-create >/dev/null || fail "LXC is not installed: apt-get install lxc"
fi

run() {
  if [ "$dry_run" -eq 1 ]; then
    printf '%q ' "$@"
    echo
  else
    "$@"
  fi
}
# Like run, with standard input from a file.
run_from() {
  local input=$1
  shift
  if [ "$dry_run" -eq 1 ]; then
    printf '%q ' "$@"
    printf '< %q\n' "$input"
  else
    "$@" <"$input"
  fi
}

arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
lxcpath=$(lxc-config lxc.lxcpath 2>/dev/null || echo /var/lib/lxc)
config="$lxcpath/$name/config"

run lxc-create -n "$name" -t download -- -d debian -r bookworm -a "$arch"

# The specification's limits, the drives (block major 11, read only: reading and the eject ioctl
# need no more) and the output folder where disk2iso writes its images.
settings="lxc.cgroup2.memory.max = $memory
lxc.cgroup2.cpu.max = $((cpus * 100000)) 100000
lxc.cgroup2.devices.allow = b 11:* r"
for drive in "${drives[@]}"; do
  settings+="
lxc.mount.entry = $drive ${drive#/} none bind,optional,create=file"
done
settings+="
lxc.mount.entry = $output var/lib/disk2iso/output none bind,create=dir"
if [ "$dry_run" -eq 1 ]; then
  echo "# appended to $config:"
  printf '%s\n' "$settings"
else
  printf '# disk2iso (scripts/lxc-create.sh)\n%s\n' "$settings" >>"$config"
fi

run lxc-start -n "$name"
run lxc-wait -n "$name" -s RUNNING
# Until the container's network is up, apt-get cannot fetch anything.
run lxc-attach -n "$name" -- systemctl is-system-running --wait || true
run_from "$deb" lxc-attach -n "$name" -- sh -c 'cat >/root/disk2iso.deb'
run lxc-attach -n "$name" -- apt-get update
run lxc-attach -n "$name" -- env DEBIAN_FRONTEND=noninteractive apt-get install -y /root/disk2iso.deb
if [ "$nginx" -eq 1 ]; then
  run lxc-attach -n "$name" -- env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx ssl-cert
  run lxc-attach -n "$name" -- disk2iso-nginx enable
fi
run lxc-attach -n "$name" -- rm /root/disk2iso.deb

if [ "$dry_run" -eq 0 ]; then
  address=$(lxc-info -n "$name" -iH | head -n 1)
  if [ "$nginx" -eq 1 ]; then
    echo "disk2iso runs in container $name: https://$address/ (first admin: lxc-attach -n $name -- journalctl -u disk2iso | grep setup)"
  else
    echo "disk2iso runs in container $name on 127.0.0.1:8080 inside it; for the network, rerun with --nginx or see docs/operations.md"
  fi
fi
