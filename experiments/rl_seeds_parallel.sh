#!/usr/bin/env bash
# Seed studies as parallel processes on a many-core CPU machine: one `python -m experiments.rl_seeds` run per job line, each
# with THREADS torch threads, all from the same start checkpoint (GPUs hidden, so every run is a CPU run).
#
#   bash experiments/rl_seeds_parallel.sh JOBS OUT THREADS START HELDOUT [START_EVAL]
#
# JOBS: a file with one job per line, "NAME ALGO SEED [key=value ...]" (overrides of recipes/shapes/ALGO.yaml).
# START_EVAL: a finished eval_start folder to reuse (copied into each run) instead of evaluating the start again.
# Each job writes OUT/NAME (train_seedS, eval_seedS, summary.md) and OUT/NAME.log. Blank and '#' lines are skipped.
# Environment: PYTHON (default python3); RL_SEEDS_ARGS, extra arguments for every rl_seeds.py run.
set -euo pipefail
jobs_file=$1 out=$2 threads=$3 start=$4 heldout=$5 start_eval=${6:-}
py=${PYTHON:-python3}
mkdir -p "$out"
pids=()
while read -r name algo seed rest; do
  [[ -z "${name:-}" || $name == \#* ]] && continue
  mkdir -p "$out/$name"
  if [[ -n $start_eval && ! -d $out/$name/eval_start ]]; then cp -r "$start_eval" "$out/$name/eval_start"; fi
  sets=(--set "train.cpu_threads=$threads" --set "rollout.threads=$threads")
  for kv in $rest; do sets+=(--set "$kv"); done
  CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=$threads "$py" -m experiments.rl_seeds --algo "$algo" \
    --recipe "recipes/shapes/$algo.yaml" --start "$start" --heldout "$heldout" --seeds "$seed" \
    --out "$out/$name" --eval-set "eval.num_threads=$threads" "${sets[@]}" ${RL_SEEDS_ARGS:-} >"$out/$name.log" 2>&1 &
  pids+=($!)
done <"$jobs_file"
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
