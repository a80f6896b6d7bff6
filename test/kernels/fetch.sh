#!/usr/bin/env bash
# Fetches the Debian kernels of the QEMU test matrix and makes each one bootable here:
# `test/kernels/fetch.sh 5.10 6.1 6.12` leaves in build/kernels/NAME/ the kernel (vmlinuz), its
# uname -r (version), the package it came from (package) and a small initramfs (initramfs.cpio.gz:
# busybox-static, the virtio/9p modules in load order, and test/kernels/init as /init). 6.1 and 6.12
# come from bookworm through apt-get download; 5.10 from bullseye (its last point release), whose indexes are read over HTTP
# (signature checked with gpgv, then every SHA256 down to the .deb) since apt here knows only bookworm.
# Idempotent: a kernel is downloaded once (stamp: build/kernels/NAME/.fetched; delete the folder to
# pick a newer one), and the initramfs is rebuilt only when init, busybox or this script changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
script=$repo/test/kernels/fetch.sh
init=$repo/test/kernels/init
busybox=/bin/busybox
# What the guest needs to mount the host root over virtio 9p. Built-in ones are skipped.
needed_modules=(virtio_pci 9pnet_virtio 9p)

say() { echo "fetch-kernels: $*" >&2; }
die() { say "$*"; exit 1; }

# Prints "PACKAGE VERSION" for the highest candidate version among apt packages matching REGEX.
newest_apt() {
  local regex=$1 names name version best='' best_version=''
  names=$(apt-cache search --names-only "$regex" | cut -d' ' -f1)
  if [ -z "$names" ]; then
    say "apt does not know $regex; running apt-get update"
    apt-get update -q >&2
    names=$(apt-cache search --names-only "$regex" | cut -d' ' -f1)
  fi
  for name in $names; do
    version=$(apt-cache policy "$name" | awk '/Candidate:/ { print $2 }')
    [ -n "$version" ] && [ "$version" != '(none)' ] || continue
    if [ -z "$best" ] || dpkg --compare-versions "$version" gt "$best_version"; then
      best=$name best_version=$version
    fi
  done
  [ -n "$best" ] || die "no package matches $regex"
  echo "$best $best_version"
}

# apt-get download of PACKAGE=VERSION into DIR (apt checks the hashes against the signed indexes).
download_apt() {
  local package=$1 version=$2 dir=$3
  # apt drops to the _apt user for downloads when it can write the folder; it only warns otherwise.
  chown _apt "$dir" 2>/dev/null || true
  (cd "$dir" && apt-get download -q "$package=$version" >&2)
  ls "$dir"/*.deb
}

# Downloads URL to FILE; fails without leaving a partial file.
get() { curl -fsSL --retry 3 --max-time 600 -o "$2.part" "$1" && mv "$2.part" "$2"; }

sha256_is() { [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ] || die "SHA256 mismatch for $1"; }

# Prints "VERSION PACKAGE BASE FILENAME SHA256" for every package matching REGEX in one suite's
# main/binary-amd64 index, after checking the suite's InRelease signature and the index's hash.
# Tries each BASE URL in turn (archive.debian.org once deb.debian.org has dropped the suite).
suite_candidates() {
  local suite=$1 regex=$2 tmp=$3 base index=main/binary-amd64/Packages.xz sum; shift 3
  for base in "$@"; do
    rm -f "$tmp/InRelease" "$tmp/Packages.xz"
    get "$base/dists/$suite/InRelease" "$tmp/InRelease" 2>/dev/null || continue
    gpgv --keyring /usr/share/keyrings/debian-archive-keyring.gpg \
      --keyring /usr/share/keyrings/debian-archive-removed-keys.gpg "$tmp/InRelease" 2>/dev/null ||
      die "bad signature on $base/dists/$suite/InRelease"
    # the SHA256 section comes after MD5Sum: the last matching line is the SHA256 one
    sum=$(awk -v f="$index" '$3 == f { s = $1 } END { print s }' "$tmp/InRelease")
    [ -n "$sum" ] || die "$suite InRelease lists no $index"
    get "$base/dists/$suite/$index" "$tmp/Packages.xz" || die "cannot download $base/dists/$suite/$index"
    sha256_is "$tmp/Packages.xz" "$sum"
    xz -dc "$tmp/Packages.xz" | awk -v re="$regex" -v base="$base" '
      /^Package: / { p = $2 } /^Version: / { v = $2 } /^Filename: / { f = $2 } /^SHA256: / { s = $2 }
      /^$/ { if (p ~ re) print v, p, base, f, s; p = v = f = s = "" }'
    return 0
  done
  say "no mirror has $suite (tried $*)"
}

# Picks the newest package matching REGEX in bullseye's last point release (not bullseye-security:
# its 5.10.262 has oom:mark_victim's task argument backported, and the matrix needs one kernel with
# the pid-only tracepoint that 5.10 and 5.15 nodes still run; 5.10.223 has it), downloads it into
# DIR, checks its SHA256 and prints the .deb's path.
download_bullseye() {
  local regex=$1 dir=$2 version package base file sum best=''
  suite_candidates bullseye "$regex" "$dir" http://deb.debian.org/debian http://archive.debian.org/debian >"$dir/candidates"
  while read -r version package base file sum; do
    if [ -z "$best" ] || dpkg --compare-versions "$version" gt "${best%% *}"; then
      best="$version $package $base $file $sum"
    fi
  done <"$dir/candidates"
  [ -n "$best" ] || die "no bullseye package matches $regex"
  read -r version package base file sum <<<"$best"
  say "downloading $package $version from $base"
  get "$base/$file" "$dir/${file##*/}" || die "cannot download $base/$file"
  sha256_is "$dir/${file##*/}" "$sum"
  echo "$dir/${file##*/}"
}

# Module name as the kernel knows it, from a path in modules.dep.
modname() { local n=${1##*/}; n=${n%%.ko*}; echo "${n//-/_}"; }

# Extracts vmlinuz, version and the needed modules (in load order, decompressed) from DEB into OUT.
extract() {
  local deb=$1 out=$2 tmp=$2/tmp/x moddir dep mod rest name i=0
  rm -rf "$tmp" "$out/modules" && mkdir -p "$tmp" "$out/modules"
  dpkg-deb -x "$deb" "$tmp"
  moddir=$(find "$tmp" -path '*/lib/modules/*/modules.builtin' -printf '%h\n' | head -n1)
  [ -n "$moddir" ] || die "$deb has no lib/modules/*/modules.builtin"
  echo "${moddir##*/}" >"$out/version"
  # modules.dep is made at install time, not shipped: make it the same way
  "$busybox" depmod -b "${moddir%/lib/modules/*}" "${moddir##*/}"
  dep=$moddir/modules.dep
  cp "$tmp/boot/vmlinuz-${moddir##*/}" "$out/vmlinuz"

  declare -A deps=() paths=() seen=()
  local order=()
  while IFS= read -r line; do
    mod=${line%%:*} rest=${line#*:}
    name=${mod##*/} name=${name%%.ko*} name=${name//-/_}
    paths[$name]=$mod deps[$name]=$rest
  done <"$dep"
  visit() { # depth first: every module after the modules it needs
    local m=$1 d
    [ -z "${seen[$m]:-}" ] || return 0
    seen[$m]=1
    for d in ${deps[$m]}; do visit "$(modname "$d")"; done
    order+=("$m")
  }
  for name in "${needed_modules[@]}"; do
    if [ -n "${paths[$name]:-}" ]; then
      visit "$name"
    elif ! grep -q "/$name.ko" "$moddir/modules.builtin"; then
      die "$name is neither a module nor built into $(cat "$out/version")"
    fi
  done
  for name in "${order[@]}"; do
    i=$((i + 1))
    mod=$moddir/${paths[$name]}
    case $mod in
      *.ko) cp "$mod" "$out/modules/$(printf %02d "$i")-$name.ko" ;;
      *.ko.xz) xz -dc "$mod" >"$out/modules/$(printf %02d "$i")-$name.ko" ;;
      *.ko.zst) zstd -qdc "$mod" >"$out/modules/$(printf %02d "$i")-$name.ko" ;;
      *) die "unknown module format: $mod" ;;
    esac
  done
  rm -rf "$out/tmp"
}

fetch() {
  local name=$1 out=$repo/build/kernels/$1 package version deb
  [ -f "$out/.fetched" ] && return 0
  rm -rf "$out" && mkdir -p "$out/tmp"
  case $name in
    5.10) deb=$(download_bullseye '^linux-image-5\.10\.0-[0-9]+-amd64-unsigned$' "$out/tmp") ;;
    6.1 | 6.12)
      local pv
      if [ "$name" = 6.1 ]; then
        pv=$(newest_apt '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$')
      else
        pv=$(newest_apt '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$')
      fi
      read -r package version <<<"$pv"
      say "downloading $package $version with apt-get"
      deb=$(download_apt "$package" "$version" "$out/tmp")
      ;;
    *) die "unknown kernel '$name' (known: 5.10 6.1 6.12)" ;;
  esac
  dpkg-deb -f "$deb" Package Version | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $2 } END { print "" }' >"$out/package"
  extract "$deb" "$out"
  touch "$out/.fetched"
  say "$name: $(cat "$out/package"), uname -r $(cat "$out/version"), modules: $(ls "$out/modules" | tr '\n' ' ')"
}

# The initramfs: /init, busybox (its applets are linked by init at boot) and the modules.
initramfs() {
  local out=$repo/build/kernels/$1 img=$repo/build/kernels/$1/initramfs.cpio.gz root
  if [ -f "$img" ] && [ "$img" -nt "$init" ] && [ "$img" -nt "$script" ] && [ "$img" -nt "$busybox" ] &&
    [ "$img" -nt "$out/.fetched" ]; then
    return 0
  fi
  [ -x "$busybox" ] || die "$busybox missing (apt-get install busybox-static)"
  root=$out/initramfs
  rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,host,lib/modules}
  cp "$busybox" "$root/bin/busybox"
  cp "$init" "$root/init" && chmod 755 "$root/init"
  cp "$out"/modules/*.ko "$root/lib/modules/" 2>/dev/null || true
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -9n >"$img.tmp"
  mv "$img.tmp" "$img"
  rm -rf "$root"
  say "$1: initramfs $(du -k "$img" | cut -f1) KiB"
}

[ $# -gt 0 ] || die "usage: test/kernels/fetch.sh NAME... (5.10 6.1 6.12)"
for name in "$@"; do
  fetch "$name"
  initramfs "$name"
done
