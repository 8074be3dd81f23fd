# Sourced (not run) by scripts/main-job.sh and scripts/pr-compare.sh: the bench virtualenv,
# the asv machine entry, and the options every asv call of theirs takes.
#
# Env:  ASV_MACHINE  asv machine name the results are filed under (default: the host name,
#                    as asv's own default); letters, digits, '.', '_', '-'
#       ASV_CONFIG   asv config file in the repository root (default asv.conf.json); a CUDA
#                    machine passes its cuda13 copy (docs/benchmarks.md, "CUDA")
# Sets: bin (the virtualenv's bin directory), machine, config_opts (array), and die().
# Expects: $job (the calling script's name, for messages) and the working directory at the root.

die() { echo "$job: $*" >&2; exit 2; }

config_opts=()
if [ -n "${ASV_CONFIG:-}" ]; then
  [ -f "$ASV_CONFIG" ] && [ "$(dirname "$ASV_CONFIG")" = . ] ||
    die "ASV_CONFIG '$ASV_CONFIG' must name a config file in the repository root (asv runs from its directory)"
  config_opts=(--config "$ASV_CONFIG")
fi

bin=$(dirname "$(bash scripts/venv.sh bench | tail -n 1)")
machine=${ASV_MACHINE:-$("$bin/python" -c 'import platform; print(platform.node())')}
[[ $machine =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
  die "asv machine name '$machine' may hold only letters, digits, '.', '_' and '-': set ASV_MACHINE"
"$bin/asv" machine --yes --machine "$machine" "${config_opts[@]}" >/dev/null
