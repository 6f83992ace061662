#!/bin/bash
# nox -s arm64-smoke: the project on Linux arm64 (aarch64), in a Debian 12 chroot under qemu-user, on
# three emulated CPUs. Linux x86-64 host, root. Opt-in; never part of .ci/run.
#
#   nox -s arm64-smoke                          every step (the chroot and uv's cache are kept in $W)
#   nox -s arm64-smoke -- --steps "3 4"         some steps on the existing chroot (BUILD=0 keeps the artifact)
#   nox -s arm64-smoke -- --fresh               a new chroot
#
# 1. arm64 Debian 12 root file system (mmdebstrap + qemu-user-static via binfmt_misc), cached in $W/root
# 2. this working tree and its locked build group in a venv inside it (uv sync --frozen, aarch64 wheels)
# 3. per emulated CPU: the runtime's CPU facts with qemu's own /proc/cpuinfo (the x86 host's: ignored
#    with a reason), then with an arm64 one; `doctor --json`; the launcher's --self-check from source;
#    the canary's int8-vs-fp32 figure
# 4. PyInstaller build from specs/launcher.spec on $BUILD_CPU, then per CPU the artifact's --self-check
#    and verify-artifact
# 5. (only when named: --steps "5") the Nuitka build on $BUILD_CPU, with make in the chroot (25-30 min)
# The table: $W/root/arm/out/table.md (exit 1 when a CPU's row is not as expected).
#
# The emulator: Debian 13's qemu-user 10.0 (QEMU=trixie, the default; fetched with apt from trixie's
# signed index into $W, never installed), because Debian 12's qemu-user 7.2 (QEMU=bookworm) computes
# onnxruntime's fused int8 kernels wrongly on `max` (I8MM): int8 then agrees with fp32 at cosine -0.006,
# the canary falls back to fp32 and verify fails closed, as they must on a CPU that computes garbage.
# Step 3 still runs the runtime's CPU facts under 7.2, which shows an arm64 process the x86 host's
# /proc/cpuinfo: the runtime must ignore it, with the reason.
# Harness workarounds: a binfmt interpreter that pins the CPU for env-stripped children (verify runs the
# self-check with only PATH and HOME, so QEMU_CPU does not reach it); under 7.2 only, a generated arm64
# /proc/cpuinfo bind-mounted over the chroot's (7.2 shows the host's, and onnxruntime segfaults on import
# reading it; 10.0 writes its own for the emulated CPU).
set -euo pipefail

PROJECT=${PROJECT:-$PWD}            # the checkout (read only: its tracked and untracked, not ignored, files)
DEMO=${DEMO:-$PWD/build/demo}       # nox -s demo's project: data/ (profile + tiktoken cache), pyproject.toml
W=${W:-$PWD/build/arm64-smoke}      # everything this writes (plus the binfmt entry, removed at exit)
CPUS=${CPUS:-"cortex-a53 neoverse-n1 max"}
BUILD_CPU=${BUILD_CPU:-neoverse-n1}
STEPS=${STEPS:-"1 2 3 4"}
QEMU=${QEMU:-trixie}                # trixie: Debian 13's qemu-user 10.0; bookworm: Debian 12's 7.2 (the host's)
HERE=$(dirname "$(readlink -f "$0")")
R=$W/root
OUT=$R/arm/out
ENTRY=qemu-aarch64-cpu
BINFMT=/proc/sys/fs/binfmt_misc

[ "$(id -u)" = 0 ] || { echo "ERROR: run as root (mmdebstrap, chroot, mounts, binfmt_misc)" >&2; exit 2; }
mkdir -p "$W"
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
log() { printf '\n### %s\n' "$*"; }
step() { [[ " $STEPS " == *" $1 "* ]]; }

# A command in the chroot with a clean environment: extra VAR=value words, then --, then the command.
IN() {
  local extra=()
  while [ "$1" != "--" ]; do extra+=("$1"); shift; done
  shift
  /usr/bin/env -i PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 TERM=dumb SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "${extra[@]}" /usr/sbin/chroot "$R" /bin/bash -c "$*"
}

mounted() { mountpoint -q "$1" 2>/dev/null; }
mount_chroot() {
  mounted "$R/proc" || mount -t proc proc "$R/proc"
  mounted "$R/sys" || mount -t sysfs sys "$R/sys"
  mounted "$R/dev" || mount --bind /dev "$R/dev"
  mounted "$R/dev/pts" || mount --bind /dev/pts "$R/dev/pts"
}
cleanup() {
  set +e
  for m in "$R/proc/cpuinfo" "$R/dev/pts" "$R/dev" "$R/sys" "$R/proc"; do mounted "$m" && umount "$m"; done
  [ -e "$BINFMT/$ENTRY" ] && echo -1 > "$BINFMT/$ENTRY"   # back to Debian's qemu-aarch64 entry
}
trap cleanup EXIT

# The qemu the wrapper runs in the chroot (/usr/bin/qemu-aarch64-static there): Debian 12's (7.2) or
# Debian 13's (10.0, fetched once into $W/qemu-trixie by apt from trixie's signed index).
fetch_trixie_qemu() {
  local d=$W/qemu-trixie
  [ -x "$d/qemu-aarch64" ] && return 0
  rm -rf "$d"; mkdir -p "$d/lists/partial" "$d/archives/partial"
  echo "deb http://deb.debian.org/debian trixie main" > "$d/sources.list"
  local apt=(-q -o "Dir::Etc::sourcelist=$d/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$d/lists"
             -o "Dir::Cache::archives=$d/archives" -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update > "$d/apt.log" 2>&1
  (cd "$d" && apt-get "${apt[@]}" download qemu-user/trixie >> "$d/apt.log" 2>&1)
  dpkg-deb -x "$d"/qemu-user_*_amd64.deb "$d/x"
  install -m755 "$d/x/usr/bin/qemu-aarch64" "$d/qemu-aarch64"
}
use_qemu() {
  case $1 in
    bookworm) install -m755 /usr/bin/qemu-aarch64-static "$R/usr/bin/qemu-aarch64-static" ;;
    trixie) install -m755 "$W/qemu-trixie/qemu-aarch64" "$R/usr/bin/qemu-aarch64-static" ;;
    *) echo "ERROR: QEMU=$1: use trixie or bookworm" >&2; exit 2 ;;
  esac
}

# Pin the emulated CPU for every process in the chroot: /etc/qemu-aarch64-cpu (read by the binfmt
# wrapper, so children with an emptied environment get it too), QEMU_CPU for the commands we start,
# and (for qemu 7.2) an arm64 /proc/cpuinfo describing that CPU.
use_cpu() {
  local cpu=$1
  echo "$cpu" > "$R/etc/qemu-aarch64-cpu"
  mounted "$R/proc/cpuinfo" && umount "$R/proc/cpuinfo"
  IN QEMU_CPU="$cpu" -- 'python /arm/harness/gen_cpuinfo.py' > "$W/cpuinfo.$cpu"
  mount --bind "$W/cpuinfo.$cpu" "$R/proc/cpuinfo"
}

# The demo built by one freezer on $BUILD_CPU, from nothing: its log in $OUT/build-<freezer>.log, its
# exit status in $rc, one line in $OUT/build-<freezer>.txt and on stdout.
freeze() {
  local freezer=$1 t0 t1
  use_cpu "$BUILD_CPU"
  t0=$(now)
  IN QEMU_CPU="$BUILD_CPU" -- "cd /arm/demo && rm -rf build/$freezer dist/$freezer && python -m build_hooks.cli build-$freezer" \
    > "$OUT/build-$freezer.log" 2>&1 && rc=0 || rc=$?
  t1=$(now)
  echo "build-$freezer rc=$rc $(secs "$t0" "$t1") s" | tee "$OUT/build-$freezer.txt"
}

# ---------------------------------------------------------------------------------------------------
if step 1; then
  log "step 1: host packages, binfmt_misc, arm64 root file system"
  t0=$(now)
  HOST_PACKAGES="qemu-user-static binfmt-support mmdebstrap arch-test gcc libc6-dev bc"
  # shellcheck disable=SC2086
  if ! dpkg -s $HOST_PACKAGES > /dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $HOST_PACKAGES > /dev/null
  fi
  [ "${FRESH:-0}" = 1 ] && rm -rf "$R"
  mounted $BINFMT || mount -t binfmt_misc binfmt_misc $BINFMT
  update-binfmts --enable qemu-aarch64 || true   # Debian's entry (flags PF); policy-rc.d kept the service from starting it
  if [ ! -x "$R/usr/bin/python3.11" ]; then
    # Debian's own entry for the bootstrap: the CPU-pinning wrapper needs qemu inside the chroot.
    [ -e "$BINFMT/$ENTRY" ] && echo -1 > "$BINFMT/$ENTRY"
    rm -rf "$R"
    mmdebstrap --variant=minbase --arch=arm64 \
      --include=python3.11,python3.11-venv,python3.11-dev,gcc,libc6-dev,ca-certificates,binutils,make \
      bookworm "$R" http://deb.debian.org/debian
  fi
  t1=$(now)
  echo "step 1 (apt + mmdebstrap): $(secs "$t0" "$t1") s" | tee "$W/times-step1.txt"
fi

# Every step: the wrapper registered, the chroot's mounts, the harness and the CA certificates.
mounted $BINFMT || mount -t binfmt_misc binfmt_misc $BINFMT
gcc -O2 -static -o "$W/qemu-cpu-wrapper" "$HERE/qemu-cpu-wrapper.c"
install -D -m755 "$W/qemu-cpu-wrapper" /usr/local/libexec/qemu-aarch64-cpu-wrapper
[ "$QEMU" = trixie ] && fetch_trixie_qemu
use_qemu "$QEMU"   # the wrapper execs it inside the chroot
[ -e "$BINFMT/$ENTRY" ] || printf '%s' ":$ENTRY:M::"'\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/local/libexec/qemu-aarch64-cpu-wrapper:PF' > $BINFMT/register
echo 1 > "$BINFMT/$ENTRY"
mount_chroot
# Where PyPI is reached through a TLS-inspecting proxy, the host trusts its CA: so must the chroot.
if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/"
  IN -- 'update-ca-certificates > /dev/null'
fi
mkdir -p "$R/arm/harness" "$OUT"
cp "$HERE"/*.py "$HERE"/midr.c "$R/arm/harness/"
[ -x "$R/arm/harness/midr" ] || IN -- 'gcc -O2 -o /arm/harness/midr /arm/harness/midr.c'
echo "binfmt: $(IN -- 'uname -m') (want aarch64)"

# ---------------------------------------------------------------------------------------------------
if step 2; then
  log "step 2: the project and its locked build group (uv sync --frozen) in /opt/venv"
  rm -rf "$R/arm/src" "$R/arm/demo"
  mkdir -p "$R/arm/src" "$R/arm/demo"
  # The working tree as it is (uncommitted changes too), without what git ignores (build/, .nox/).
  (cd "$PROJECT" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -x -C "$R/arm/src"
  # Source runs find the prepared profile and tiktoken cache under <project>/data (source_root).
  cp -a "$DEMO/data" "$R/arm/src/data"
  # The PyInstaller build needs the demo's pin (its profile is acme/tiny-embedder-768@cccc...).
  cp -a "$DEMO/data" "$R/arm/demo/data"
  cp "$DEMO/uv.lock" "$R/arm/demo/uv.lock"   # verify anchors third-party files to the lock's wheels
  sed -e "s#\"[^\"]*/app/launcher.py\"#\"/arm/src/app/launcher.py\"#" \
      -e "s#\"[^\"]*/specs/launcher.spec\"#\"/arm/src/specs/launcher.spec\"#" "$DEMO/pyproject.toml" > "$R/arm/demo/pyproject.toml"
  find "$R/arm/src/data" "$R/arm/demo/data" -name '*.lock' -delete
  use_cpu "$BUILD_CPU"
  t0=$(now)
  IN -- 'rm -rf /opt/tools /opt/venv && python3.11 -m venv /opt/tools && /opt/tools/bin/python -m pip install -q uv==0.13.8'
  t1=$(now)
  IN UV_PROJECT_ENVIRONMENT=/opt/venv UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never -- \
    'cd /arm/src && /opt/tools/bin/uv sync --frozen --no-default-groups --group build --python /usr/bin/python3.11' \
    > "$OUT/uv-sync.log" 2>&1
  t2=$(now)
  IN -- 'python -c "import numpy, onnxruntime, tokenizers, tiktoken, PyInstaller; print(\"numpy\", numpy.__version__, \"onnxruntime\", onnxruntime.__version__, \"tokenizers\", tokenizers.__version__, \"tiktoken\", tiktoken.__version__, \"pyinstaller\", PyInstaller.__version__)"'
  echo "step 2: pip install uv $(secs "$t0" "$t1") s; uv sync --frozen (build group) $(secs "$t1" "$t2") s" | tee "$W/times-step2.txt"
fi

# ---------------------------------------------------------------------------------------------------
if step 3; then
  log "step 3: doctor, source self-check and canary figure per CPU"
  for cpu in $CPUS; do
    d=$OUT/$cpu; mkdir -p "$d"; rm -f "$d/rc3"
    mounted "$R/proc/cpuinfo" && umount "$R/proc/cpuinfo"
    echo "$cpu" > "$R/etc/qemu-aarch64-cpu"
    # What the runtime reads with qemu 7.2's own /proc/cpuinfo (the x86 host's), before the workaround.
    use_qemu bookworm
    IN QEMU_CPU="$cpu" -- 'cd /arm/src && python /arm/harness/runtime_facts.py' > "$d/facts-host-cpuinfo.json" 2> "$d/facts-host-cpuinfo.err" || true
    IN QEMU_CPU="$cpu" -- 'python -c "import onnxruntime"' > "$d/ort-import-host-cpuinfo.txt" 2>&1 \
      && echo "import onnxruntime: ok" >> "$d/ort-import-host-cpuinfo.txt" || echo "import onnxruntime: rc=$?" >> "$d/ort-import-host-cpuinfo.txt"
    use_qemu "$QEMU"
    use_cpu "$cpu"
    IN QEMU_CPU="$cpu" -- 'python3.11 /arm/harness/hwcap.py' > "$d/hwcap.json"
    IN QEMU_CPU="$cpu" -- 'cd /arm/src && python /arm/harness/runtime_facts.py' > "$d/facts.json"
    home=/tmp/home-$cpu; rm -rf "$R$home"; mkdir -p "$R$home"
    t0=$(now)
    IN QEMU_CPU="$cpu" HOME=$home EMBEDDING_RUNTIME_MODELS_DIR=/arm/src/data/embedding_models -- \
      'cd /arm/src && python -m embedding_runtime doctor --json' > "$d/doctor.json" 2> "$d/doctor.err" \
      && echo "doctor 0" >> "$d/rc3" || echo "doctor $?" >> "$d/rc3"
    t1=$(now)
    IN QEMU_CPU="$cpu" HOME=$home -- 'cd /arm/src && python app/launcher.py --self-check' \
      > "$d/selfcheck-source.json" 2> "$d/selfcheck-source.err" && echo "selfcheck 0" >> "$d/rc3" || echo "selfcheck $?" >> "$d/rc3"
    t2=$(now)
    IN QEMU_CPU="$cpu" HOME=$home -- 'cd /arm/src && python /arm/harness/canary_figure.py /arm/src/data/embedding_models' \
      > "$d/canary.json" 2> "$d/canary.err" && echo "canary 0" >> "$d/rc3" || echo "canary $?" >> "$d/rc3"
    t3=$(now)
    printf '{"doctor_s": %.1f, "selfcheck_source_s": %.1f, "canary_s": %.1f}\n' \
      "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$(secs "$t2" "$t3")" > "$d/times3.json"
    echo "$cpu: $(tr '\n' ' ' < "$d/rc3") $(cat "$d/times3.json")"
  done
fi

# ---------------------------------------------------------------------------------------------------
if step 4; then
  log "step 4: PyInstaller build on $BUILD_CPU, then the artifact's self-check and verify per CPU"
  if [ "${BUILD:-1}" = 1 ] || [ ! -x "$R/arm/demo/dist/pyinstaller/local-notes/local-notes" ]; then
    freeze pyinstaller
    [ "$rc" = 0 ] || { tail -20 "$OUT/build-pyinstaller.log"; exit 1; }
  fi
  # As `nox -s verify-artifact` does first: the lock's files (aarch64 wheels) that verify anchors to.
  IN -- 'cd /arm/demo && python -m build_hooks.cli wheelhouse' > "$OUT/wheelhouse.log" 2>&1 \
    || { tail -5 "$OUT/wheelhouse.log"; exit 1; }
  for cpu in $CPUS; do
    d=$OUT/$cpu; mkdir -p "$d"; rm -f "$d/rc4"
    use_cpu "$cpu"
    home=/tmp/home-art-$cpu; rm -rf "$R$home"; mkdir -p "$R$home"
    t0=$(now)
    IN QEMU_CPU="$cpu" HOME=$home -- 'cd /tmp && /arm/demo/dist/pyinstaller/local-notes/local-notes --self-check' \
      > "$d/selfcheck-artifact.json" 2> "$d/selfcheck-artifact.err" && echo "artifact-selfcheck 0" >> "$d/rc4" || echo "artifact-selfcheck $?" >> "$d/rc4"
    t1=$(now)
    # --reports: each CPU's verdict in its own folder (a pass writes SHA256SUMS there, a fail none)
    IN QEMU_CPU="$cpu" -- "cd /arm/demo && python -m build_hooks.cli verify-artifact --reports /arm/out/$cpu/verify dist/pyinstaller/local-notes" \
      > "$d/verify.log" 2>&1 && echo "verify 0" >> "$d/rc4" || echo "verify $?" >> "$d/rc4"
    t2=$(now)
    printf '{"selfcheck_artifact_s": %.1f, "verify_s": %.1f}\n' "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" > "$d/times4.json"
    echo "$cpu: $(tr '\n' ' ' < "$d/rc4") $(cat "$d/times4.json") $(grep -h '^ERROR' "$d/verify.log" || true)"
  done
fi

# ---------------------------------------------------------------------------------------------------
if step 5; then
  log "step 5: Nuitka build on $BUILD_CPU (make in the chroot for the parallel LTO link)"
  IN -- 'command -v make > /dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make > /dev/null)'
  freeze nuitka
  cp "$OUT/build-nuitka.txt" "$OUT/nuitka.txt"
  if [ "$rc" = 0 ]; then
    IN QEMU_CPU="$BUILD_CPU" -- 'cd /tmp && /arm/demo/dist/nuitka/local-notes.dist/local-notes --self-check' \
      > "$OUT/selfcheck-nuitka.json" 2>&1 && echo "nuitka self-check 0" | tee -a "$OUT/nuitka.txt" \
      || echo "nuitka self-check $?" | tee -a "$OUT/nuitka.txt"
  fi
fi

IN -- 'qemu-aarch64-static --version | head -1' > "$OUT/qemu.txt" 2>&1 || true
log "per-CPU table"
IN -- "python /arm/harness/summarize.py /arm/out $CPUS" > "$OUT/table.md" && rc=0 || rc=$?
cat "$OUT/table.md"
exit "$rc"
