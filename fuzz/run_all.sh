#!/usr/bin/env bash
# Run every atheris harness in turn, each for SECONDS (default 60), one at a time.
#
#   fuzz/run_all.sh SECONDS [stage ...]        stages: detect zip torch formats vm rebuild scan containers
#
# SAFELOAD_FUZZ_COLLECT=1 keeps a harness running after a contract violation and writes it to
# fuzz/findings/<stage>/ (long runs); without it the first violation stops the harness and fails this script
# (the CI smoke). FUZZ_SEED=N fixes libFuzzer's random seed, so a CI smoke explores the same inputs on every run.
# Coverage-increasing inputs accumulate in fuzz/.corpus/<stage>/; the executions and time of
# each run are appended to fuzz/logs/summary.tsv.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x $PY ]] || PY=python3
SECONDS_EACH=${1:-60}
shift || true
STAGES=("$@")
[[ ${#STAGES[@]} -gt 0 ]] || STAGES=(detect zip torch formats vm rebuild scan containers)
mkdir -p fuzz/logs fuzz/.crashes
"$PY" fuzz/make_seeds.py 2>/dev/null || { echo "make_seeds failed" >&2; exit 1; }
status=0
for stage in "${STAGES[@]}"; do
    mkdir -p "fuzz/.corpus/$stage" "fuzz/.seeds/$stage"
    timeout=30
    [[ $stage == containers ]] && timeout=300  # an input safeload accepts runs up to 9 native loaders in children
    case $stage in
        containers) maxlen=4096 ;;  # a stream of choices, not a file (fuzz_containers.py builds the file)
        vm|detect|scan) maxlen=65536 ;;
        *) maxlen=300000 ;;
    esac
    log="fuzz/logs/$stage.log"
    start=$(date +%s)
    "$PY" "fuzz/fuzz_$stage.py" "fuzz/.corpus/$stage" "fuzz/.seeds/$stage" \
        -max_total_time="$SECONDS_EACH" -max_len="$maxlen" -timeout="$timeout" -rss_limit_mb=4096 ${FUZZ_SEED:+-seed=$FUZZ_SEED} \
        -artifact_prefix="fuzz/.crashes/$stage-" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    found=$(grep -c '^\[finding\]' "$log")
    printf '%s\t%s\t%ss\t%s execs\t%s findings\trc=%s\n' "$(date -u +%FT%TZ)" "$stage" "$took" "${runs:-?}" \
        "$found" "$rc" | tee -a fuzz/logs/summary.tsv
    if [[ $rc -ne 0 ]]; then
        status=1
        tail -n 40 "$log" >&2
    fi
done
exit $status
