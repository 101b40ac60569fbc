#!/usr/bin/env bash
# Evidence at BAGEL-7B-MoT size on one GPU (random bf16 weights, all 28 decoder layers), in order of value:
#   1. rollout trajectories/s, two-round IRG at 512^2 with the three CFG branches, next to the compute bound
#   2. one GRPO step and 3. one DiffusionNFT step with LoRA r16 on the generation expert (fp32 master weights,
#      gradient checkpointing, micro-batch 2): time split and peak memory (needs the H200's 139 GiB: the fp32
#      trainer copy is 59 GB and the bf16 rollout copy 29 GB)
#   4. rollout at 1024^2
#   5. SFT tokens/s and MFU (full fine-tuning, fp32 master + AdamW, the most layers that fit one GPU)
# Each part has its own time limit and writes $OUT/<part>.txt (+ .json); a part that fails does not stop the rest.
#   OUT=runs/gpu_check bash experiments/gpu_check.sh            # on the GPU machine (~15 min on an H200: split it
#                                                            over two calls, PARTS="rollout_512 sft" etc.)
#   bash experiments/gpu_check.sh --dry-run                      # the same sequence at the tiny preset on CPU (~1 min)
set -u
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-runs/gpu_check$([ $DRY = 1 ] && echo _dry)}
PY=${PY:-python3}
CKPT=${CKPT_DIR:-$(mktemp -d)}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
. "$(dirname "$0")/ensure_plugins.sh"
trap 'rm -rf "$CKPT"' EXIT

if [ $DRY = 1 ]; then
  MODEL="--preset tiny"
  R512="--prompts 1 --samples 2 --steps 4 --think-tokens 8 --threads 1"
  R1024="$R512"
  RL="--prompts 1 --group 2 --steps 1 --think-tokens 8 8 --threads 1"
  SFT="--steps 1 --batch 4 --prompts 20 --threads 1"
  LIMIT=300
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
  MODEL="--preset bagel-7b-mot --layers 28"
  R512="--resolution 512 --prompts 2 --samples 4 --steps 24 --think-tokens 64"
  R1024="--resolution 1024 --prompts 1 --samples 2 --steps 24 --think-tokens 64"
  RL="--resolution 512 --prompts 1 --group 4 --steps 1 --think-tokens 64 128"
  SFT="--gpu --layers ${SFT_LAYERS:-10} --steps 3"
  LIMIT=0
fi

wanted() { [ -z "${PARTS:-}" ] || [[ " $PARTS " == *" $1 "* ]]; }

part() {  # part NAME SECONDS ARGS...: run one benchmark with its own limit, keep its output
  local name=$1 secs=$2
  shift 2
  wanted "$name" || return 0
  [ $LIMIT -gt 0 ] && secs=$LIMIT
  local t0=$SECONDS
  timeout "$secs" $PY -m experiments.bench "$@" --json "$OUT/$name.json" > "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "== $name: rc $rc in $((SECONDS - t0)) s"
  tail -n $([ $rc = 0 ] && echo 7 || echo 30) "$OUT/$name.txt"
}

part rollout_512 150 rollout $MODEL --skip-baseline $R512
part grpo_lora ${RL_LIMIT:-300} rl $MODEL $RL --lora --grad-checkpointing --micro-batch 2 --ckpt-dir "$CKPT"
part nft_lora ${RL_LIMIT:-300} rl --algo nft $MODEL $RL --lora --grad-checkpointing --micro-batch 2 --ckpt-dir "$CKPT"
rm -rf "${CKPT:?}"/*
part rollout_1024 130 rollout $MODEL --skip-baseline $R1024
wanted sft || exit 0
SECONDS_SFT=$SECONDS
timeout $([ $LIMIT -gt 0 ] && echo $LIMIT || echo 80) $PY -m experiments.bench sft $SFT > "$OUT/sft.txt" 2>&1
echo "== sft: rc $? in $((SECONDS - SECONDS_SFT)) s"
tail -n 8 "$OUT/sft.txt"
