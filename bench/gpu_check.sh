#!/usr/bin/env bash
# The CUDA paths on a machine with a GPU: training (bf16 autocast), DDP over every GPU (nccl, one
# GPU per local rank), generation and int8 quantization; each prints its own figures.
#   bash bench/gpu_check.sh [CORPUS]      (default: the shipped sample:tiny-tales)
set -euo pipefail
python - <<'PY' || { echo "gpu_check: no CUDA GPU here"; exit 2; }
import torch, sys
sys.exit(0 if torch.cuda.is_available() else 1)
PY
corpus=${1:-sample:tiny-tales}
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
session() {  # name nproc precision
    cat > "$work/$1.toml" <<TOML
name = "$1"
[data]
corpus = "$corpus"
[model]
n_layer = 6
n_head = 6
n_embd = 384
context = 256
[train]
batch_size = 32
max_steps = 300
eval_interval = 300
log_interval = 50
checkpoint_interval = 0
device = "cuda"
precision = "$3"
nproc = $2
runs_dir = "$work/runs"
TOML
}
echo "== $(python -c "import torch; print(torch.cuda.get_device_name(0))") x $gpus"
for precision in fp32 bf16; do
    session "one-$precision" 1 "$precision"
    echo "== train, 1 GPU, $precision"; llmlab train "$work/one-$precision.toml" 2>&1 | tail -3
done
if [ "$gpus" -ge 2 ]; then
    session ddp "$gpus" bf16
    echo "== train, DDP over $gpus GPUs (nccl), bf16"; llmlab train "$work/ddp.toml" 2>&1 | tail -3
fi
run=$(ls -d "$work"/runs/one-bf16/* | head -1)
echo "== generate"; llmlab sample "$run" --runs-dir "$work/runs" --prompt "ROMEO:" --tokens 200 2>&1 | tail -3
echo "== quantize"; llmlab quantize "$run" --runs-dir "$work/runs" 2>&1 | tail -12
