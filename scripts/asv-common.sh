# Sourced (not run) by scripts/main-job.sh and scripts/pr-compare.sh: the bench virtualenv,
# the asv machine entry, and the options every asv call of theirs takes.
#
# Env:  ASV_MACHINE  asv machine name the results are filed under (default: the host name,
#                    as asv's own default); letters, digits, '.', '_', '-'
#       ASV_CONFIG   asv config file in the repository root (default asv.conf.json); a CUDA
#                    machine passes its cuda13 copy (docs/benchmarks.md, "CUDA")
# Sets: bin (the virtualenv's bin directory), machine, config_opts (array), and die().
#       Expand config_opts as ${config_opts[@]+"${config_opts[@]}"}: it is empty unless
#       ASV_CONFIG is set, and macOS's bash 3.2 calls an empty array unbound under set -u.
# Expects: $job (the calling script's name, for messages) and the working directory at the root.

: "${job:?set job to the calling script name before sourcing scripts/asv-common.sh}"
die() { echo "$job: $*" >&2; exit 2; }

config_opts=()
if [ -n "${ASV_CONFIG:-}" ]; then
  [ -f "$ASV_CONFIG" ] && [ "$(dirname "$ASV_CONFIG")" = . ] ||
    die "ASV_CONFIG '$ASV_CONFIG' must name a config file in the repository root (asv runs from its directory)"
  config_opts=(--config "$ASV_CONFIG")
fi

# Two steps, so that a failure of venv.sh stops here with its own message (a failing command
# substitution inside dirname's argument would leave bin=. and fail later, elsewhere).
venv_python=$(bash scripts/venv.sh bench | tail -n 1) ||
  die "scripts/venv.sh bench failed (its message is above): no virtualenv to run asv from"
[ -x "$venv_python" ] || die "scripts/venv.sh bench printed '$venv_python', which is not an executable python"
bin=$(dirname "$venv_python")
machine=${ASV_MACHINE:-$("$bin/python" -c 'import platform; print(platform.node())')}
[[ $machine =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
  die "asv machine name '$machine' may hold only letters, digits, '.', '_' and '-': set ASV_MACHINE"
"$bin/asv" machine --yes --machine "$machine" ${config_opts[@]+"${config_opts[@]}"} >/dev/null ||
  die "asv machine --machine $machine failed (its message is above)"
