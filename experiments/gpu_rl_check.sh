#!/usr/bin/env bash
# GPU checks of the RL path on one H100/H200 (what CI cannot run): the `gpu`-marked tests (rollout workers on
# CUDA, CUDA-IPC weight sync, GRPO on CUDA with the local and the Ray + CUDA-IPC rollout), then `python -m experiments.bench rl` at
# BAGEL-7B-MoT dims (4 of 28 layers, 512^2, LoRA r16 on the generation expert) with the local rollout and with a
# colocated Ray worker fed over CUDA-IPC. Results go to $OUT (default runs/gpu_rl_check); ~6 min on an H200.
#   OUT=runs/gpu_rl_check bash experiments/gpu_rl_check.sh
set -u
OUT=${OUT:-runs/gpu_rl_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
. "$(dirname "$0")/ensure_plugins.sh"
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
timeout 300 $PY -m pytest -q -m gpu tests/test_gpu_rl.py -p no:cacheprovider > "$OUT/pytest_gpu.txt" 2>&1
echo "pytest -m gpu rc $?"
tail -n 25 "$OUT/pytest_gpu.txt"
bench="$PY -m experiments.bench rl --preset bagel-7b-mot --layers 4 --resolution 512 --lora --group 4"
timeout 200 $bench --prompts 2 --steps 2 --think-tokens 64 128 --json "$OUT/bench_rl_local.json" \
  > "$OUT/bench_rl_local.txt" 2>&1
echo "bench rl local rc $?"
tail -n 6 "$OUT/bench_rl_local.txt"
# 1 x 4: at 2 x 4 the trainer (micro_batch 0) and the colocated worker together exceeded an H200's memory
timeout 200 $bench --prompts 1 --steps 1 --think-tokens 64 128 --engine ray --weight-sync cuda_ipc \
  --json "$OUT/bench_rl_ray_ipc.json" > "$OUT/bench_rl_ray_ipc.txt" 2>&1
echo "bench rl ray cuda_ipc rc $?"
tail -n 6 "$OUT/bench_rl_ray_ipc.txt"
