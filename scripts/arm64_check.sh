#!/usr/bin/env bash
# The same answers on an ARM CPU: run a bundle under ARM64 emulation and compare with this machine's.
#
#   scripts/arm64_check.sh BUNDLE [TEXTS_OR_DATA] [REPORT_JSON]
#
# TEXTS_OR_DATA: a .txt file (one text a line; text<TAB>text_pair for a pair bundle), or a labelled
# TSV/CSV/JSONL file (its first $ARM64_ROWS rows, default 300; the main metric is then reported at speed 0
# and at the bundle's default speed on both machines). Default: the JS fixture texts.
#
# Once, cached in $EDGEKD_ARM64_ROOT (default ~/.cache/edgekd/arm64-root): an ARM64 Debian root made by
# `debootstrap --foreign` (its packages extracted, nothing run: no binfmt_misc, no chroot), with the
# aarch64 wheels of this machine's numpy, onnxruntime and tokenizers from PyPI; Debian's qemu-user-static
# runs its python3 (`qemu-aarch64-static -L ROOT ROOT/usr/bin/python3`). onnxruntime's cpuinfo reads
# /proc/cpuinfo and /sys/devices/system/cpu, which under qemu-user are this x86 host's; the root holds an
# ARM64 (Neoverse-N1: asimd, dot product) version of both, which qemu finds first under -L.
#
# Runs the runtime's graph and staged engines and plain onnxruntime on model.onnx on both machines
# (scripts/arm64_answers.py) and compares (scripts/arm64_compare.py): fp32 identical answers and exit
# layers, probabilities within 1e-4; int8 >= 99% of answers and >= 98% of exit layers. Each CPU model of
# $ARM64_CPUS is emulated in turn (default "neoverse-n1 cortex-a76": Graviton2 / Ampere Altra servers, and
# the core of recent phones and the Raspberry Pi 5; both have the dot-product int8 instructions). qemu's
# synthetic "max" CPU (every extension, I8MM and SVE included) is not a default: under qemu 7.2 its int8
# answers stray from fp32 where both real models agree (see README, "ARM64"). Exit 0 when the targets hold
# on every model, 1 when not, 3 when the emulator cannot be installed here. No timings: emulation says
# nothing about speed.
set -euo pipefail

usage() { sed -n 2,8p "$0" | sed 's/^# \{0,1\}//'; }
if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then usage; exit 2; fi
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=$(cd "$1" && pwd)
INPUT=${2:-}
REPORT=${3:-}
ARM=${EDGEKD_ARM64_ROOT:-$HOME/.cache/edgekd/arm64-root}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PY=${PYTHON:-$ROOT_DIR/.venv/bin/python}
[[ -x $PY ]] || PY=python3
ROWS=${ARM64_ROWS:-300}
CPUS=${ARM64_CPUS:-neoverse-n1 cortex-a76}

say() { echo "arm64_check: $*" >&2; }

# 1. the emulator
if ! command -v qemu-aarch64-static > /dev/null || ! command -v debootstrap > /dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get > /dev/null; then
    say "installing qemu-user-static and debootstrap (Debian)"
    if ! (apt-get install -y -qq qemu-user-static debootstrap > /dev/null 2>&1 ||
          (apt-get update -qq > /dev/null 2>&1 && apt-get install -y -qq qemu-user-static debootstrap > /dev/null 2>&1)); then
      say "cannot install qemu-user-static / debootstrap with apt-get here"; exit 3
    fi
  else
    say "needs qemu-user-static and debootstrap: sudo apt-get install qemu-user-static debootstrap"; exit 3
  fi
fi

# 2. the ARM64 root (once)
if [[ ! -x $ARM/usr/bin/python3 ]]; then
  say "building an ARM64 Debian root in $ARM (once; ~230 MB)"
  rm -rf "$ARM.tmp"
  mkdir -p "$(dirname "$ARM")"
  debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm "$ARM.tmp" "$MIRROR" > "$ARM.log" 2>&1 ||
    { say "debootstrap failed (see $ARM.log)"; exit 3; }
  for deb in "$ARM.tmp"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ARM.tmp"; done
  "$PY" - "$ARM.tmp" <<'EOF'
import sys
from pathlib import Path
root, cores = Path(sys.argv[1]), 2
block = ("processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp "
         "asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
         "CPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n")
(root / "proc").mkdir(exist_ok=True)
(root / "proc/cpuinfo").write_text("".join(block.format(i=i) for i in range(cores)))
cpu = root / "sys/devices/system/cpu"
cpu.mkdir(parents=True, exist_ok=True)
for name in ("possible", "present", "online"):
    (cpu / name).write_text(f"0-{cores - 1}\n")
(cpu / "kernel_max").write_text("255\n")
for i in range(cores):
    topology = cpu / f"cpu{i}" / "topology"
    topology.mkdir(parents=True, exist_ok=True)
    for name, value in (("physical_package_id", "0"), ("core_id", str(i)), ("core_siblings_list", f"0-{cores - 1}"),
                        ("thread_siblings_list", str(i))):
        (topology / name).write_text(value + "\n")
EOF
  mv "$ARM.tmp" "$ARM"
fi
EMU_PY=$ARM/usr/bin/python3
qemu-aarch64-static -L "$ARM" "$EMU_PY" -c 'import platform; assert platform.machine() == "aarch64"' ||
  { say "the ARM64 python does not start under qemu-aarch64-static"; exit 3; }

# 3. this machine's versions of the runtime's wheels, for aarch64 (once per set of versions)
VERSIONS=$("$PY" -c 'import numpy, onnxruntime, tokenizers; print(f"numpy=={numpy.__version__} onnxruntime=={onnxruntime.__version__} tokenizers=={tokenizers.__version__}")')
SITE=$ARM/opt/site-$(echo "$VERSIONS" | tr ' =' '_-')
if [[ ! -d $SITE ]]; then
  say "installing aarch64 wheels: $VERSIONS"
  # shellcheck disable=SC2086
  "$PY" -m pip install --quiet --target "$SITE.tmp" --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 $VERSIONS ||
    { say "pip could not fetch the aarch64 wheels"; exit 3; }
  mv "$SITE.tmp" "$SITE"
fi

# 4. the texts
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
GOLD=()
if [[ -z $INPUT ]]; then
  "$PY" -c 'import json; print("\n".join(t for t in json.load(open("js/test/fixtures/expected.json"))["texts"] if t.strip() and "\n" not in t and "\t" not in t))' > "$WORK/texts.txt"
elif [[ $INPUT == *.txt ]]; then
  cp "$INPUT" "$WORK/texts.txt"
else
  "$PY" - "$BUNDLE" "$INPUT" "$ROWS" "$WORK" <<'EOF'
import json, sys
from pathlib import Path
sys.path.insert(0, ".")
import runtime
from edgekd.data import read_labelled
bundle, data, rows, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
model = runtime.load(bundle)
d = read_labelled(data, label_names=model.labels, label_values=model.manifest.label_values, problem=model.problem)
clean = lambda t: t.replace("\t", " ").replace("\n", " ")
items = [clean(t) if isinstance(t, str) else f"{clean(t[0])}\t{clean(t[1])}" for t in d.texts[:rows]]
(work / "texts.txt").write_text("\n".join(items) + "\n", encoding="utf-8")
(work / "gold.json").write_text(json.dumps(d.labels[:rows]))
EOF
  GOLD=(--gold "$WORK/gold.json")
fi

# 5. answers on this machine and on each emulated CPU model, then the comparisons
cd "$ROOT_DIR"
"$PY" scripts/arm64_answers.py "$BUNDLE" "$WORK/texts.txt" > "$WORK/x86.json"
status=0
reports=()
for cpu in $CPUS; do
  say "running $(wc -l < "$WORK/texts.txt") texts on an emulated $cpu (slow: emulated)"
  PYTHONPATH="$SITE:$ROOT_DIR" qemu-aarch64-static -cpu "$cpu" -L "$ARM" "$EMU_PY" scripts/arm64_answers.py \
    "$BUNDLE" "$WORK/texts.txt" > "$WORK/arm64-$cpu.json"
  "$PY" scripts/arm64_compare.py "$WORK/x86.json" "$WORK/arm64-$cpu.json" "${GOLD[@]}" --cpu "$cpu" \
    --out "$WORK/report-$cpu.json" || status=1
  reports+=("$WORK/report-$cpu.json")
done
if [[ -n $REPORT ]]; then
  "$PY" -c 'import json, sys; json.dump([json.load(open(p)) for p in sys.argv[2:]], open(sys.argv[1], "w"), indent=1)' \
    "$REPORT" "${reports[@]}"
fi
exit $status
