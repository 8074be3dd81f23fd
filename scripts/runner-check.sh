#!/usr/bin/env bash
# Check the benchmark runner before it measures (docs/runner.md, "Register the runner"): run it
# on the Mac by hand before the first run; the benchmark workflows run it as their first step.
# Reports macOS, bash, python3 and MLX versions, whether MLX has Metal (mx.metal.is_available()
# and one computation on the GPU), npm, the power source, Low Power Mode, thermal pressure and free
# disk. Prints one line per fact, then one "runner-check: PROBLEM: ..." line per problem.
# Runs with macOS's own tools and /bin/bash 3.2.
#
# Env: PYTHON        the python that has MLX (default: .venv's, made by scripts/venv.sh bench)
#      MIN_FREE_GB   free disk below which the workspace's volume is a problem (default 15)
# Exit: 0 no problem; 1 one or more problems (each on its own line); 2 bad input.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

problems=0
say() { echo "runner-check: $*"; }
problem() { echo "runner-check: PROBLEM: $*"; problems=$((problems + 1)); }

min_free_gb=${MIN_FREE_GB:-15}
[[ $min_free_gb =~ ^[0-9]+$ ]] || { echo "runner-check: MIN_FREE_GB must be a whole number of GB, got '$min_free_gb'" >&2; exit 2; }

# The machine and its system.
kernel=$(uname -s)
arch=$(uname -m)
if [ "$kernel" = Darwin ]; then
  macos=$(sw_vers -productVersion 2>/dev/null || echo unknown)
  say "macOS $macos on $arch"
  major=${macos%%.*}
  if [[ $major =~ ^[0-9]+$ ]] && [ "$major" -lt 14 ]; then problem "macOS $macos is older than 14"; fi
  if [ "$(sysctl -n sysctl.proc_translated 2>/dev/null || echo 0)" = 1 ]; then
    problem "this shell runs under Rosetta (x86_64 on arm64): install the arm64 runner"
  elif [ "$arch" != arm64 ]; then
    problem "the CPU is $arch, not Apple Silicon (arm64)"
  fi
else
  say "$kernel on $arch"
  problem "not macOS ($kernel): this is not an Apple Silicon benchmark runner"
fi
say "bash $BASH_VERSION ($BASH)"

# Python, and MLX in the virtualenv the benchmarks use.
if command -v python3 >/dev/null; then
  py3=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo broken)
  say "python3 $py3 ($(command -v python3))"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null ||
    problem "python3 $py3 is older than 3.10 (setup.cfg's python_requires)"
else
  problem "no python3 on PATH"
fi
python=${PYTHON:-}
if [ -z "$python" ] && command -v python3 >/dev/null; then
  python=$(bash scripts/venv.sh bench | tail -n 1) || { problem "scripts/venv.sh bench failed (its message is above)"; python=; }
fi
if [ -n "$python" ]; then
  mlx_status=0
  mlx=$("$python" -c '
import mlx.core as mx
metal = mx.metal.is_available()
gpu = "not tried"
if metal:
    try:
        mx.eval(mx.sum(mx.ones((256, 256)) @ mx.ones((256, 256)), stream=mx.gpu))
        gpu = "ok"
    except Exception as error:  # reported, not raised: one line per problem
        gpu = f"failed: {error}"
print(f"{mx.__version__}|{metal}|{gpu}")' 2>&1) || mlx_status=$?
  mlx=${mlx##*$'\n'}
  if [ "$mlx_status" -ne 0 ]; then
    problem "MLX does not import in $python (exit $mlx_status): $mlx"
  else
    IFS='|' read -r mlx_version metal gpu <<<"$mlx"
    say "MLX $mlx_version; mx.metal.is_available(): $metal; a computation on the GPU: $gpu"
    [ "$metal" = True ] || problem "MLX has no Metal device (mx.metal.is_available() is False)"
    [ "$metal" != True ] || [ "$gpu" = ok ] || problem "MLX's GPU computation $gpu"
  fi
fi

# npm: kvcache-tracker vendor-html installs the dashboard's scripts with it (npm's cache serves
# them offline after the first run).
if command -v npm >/dev/null; then
  say "npm $(npm --version 2>/dev/null || echo broken) ($(command -v npm))"
else
  problem "no npm: the published dashboard needs it for its scripts (brew install node)"
fi

# Power, Low Power Mode, thermal pressure (pmset is macOS's).
if command -v pmset >/dev/null; then
  source_line=$(pmset -g batt 2>/dev/null | head -n 1 || true)
  case $source_line in
    *"'AC Power'"*) say "power: AC" ;;
    *"'Battery Power'"*) problem "running on battery: connect the power adapter" ;;
    *) problem "power source unknown (pmset -g batt said: '${source_line:-nothing}')" ;;
  esac
  low_power=$(pmset -g 2>/dev/null | awk '$1 == "lowpowermode" { print $2 }' | head -n 1 || true)
  case $low_power in
    0) say "Low Power Mode: off" ;;
    1) problem "Low Power Mode is on: turn it off (System Settings, Battery or Energy)" ;;
    *) say "Low Power Mode: not reported by pmset -g (off on Macs without the setting)" ;;
  esac
  therm=$(pmset -g therm 2>/dev/null || true)
  speed_limit=$(echo "$therm" | awk -F= '/CPU_Speed_Limit/ { gsub(/ /, "", $2); print $2 }' | head -n 1)
  warning=$(echo "$therm" | grep -i 'warning level' | grep -vi 'no .*warning level has been recorded' | head -n 1 || true)
  if [ -n "$speed_limit" ] && [ "$speed_limit" != 100 ]; then
    problem "thermal pressure: the CPU is limited to $speed_limit% (pmset -g therm)"
  elif [ -n "$warning" ]; then
    problem "thermal pressure: $warning (pmset -g therm)"
  else
    say "thermal pressure: none recorded (pmset -g therm)"
  fi
else
  problem "no pmset: cannot read the power source, Low Power Mode or thermal pressure"
fi

# Free disk on the workspace's volume (POSIX df: the 4th column is the free space in KiB).
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [[ ${free_kb:-} =~ ^[0-9]+$ ]]; then
  free_gb=$((free_kb / 1024 / 1024))
  say "free disk: $free_gb GB on the workspace's volume"
  [ "$free_gb" -ge "$min_free_gb" ] || problem "only $free_gb GB free on the workspace's volume: asv needs about $min_free_gb GB"
else
  problem "cannot read the free disk space (df -Pk .)"
fi

if [ "$problems" -gt 0 ]; then
  echo "runner-check: $problems problem(s): fix them before benchmarking on this machine" >&2
  exit 1
fi
say "ok"
