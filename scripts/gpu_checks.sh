#!/usr/bin/env bash
# The GPU checks in one go, for a lent GPU machine; results under $OUT (default gpu_out/).
#   bash scripts/gpu_checks.sh
# Needs Hydra's wheels in .whl/ where Hydra is not installed, and, for the Fashion-MNIST run where
# /usr/share/datasets/fashion-mnist is absent, its four .gz files in .fmnist/.
set -uo pipefail
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ! python3 -c "import hydra" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target .site .whl/*.whl || exit 1
  export PYTHONPATH=$PWD/.site:$PWD/src
fi
if [ -d .fmnist ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  mkdir -p data/FashionMNIST/raw
  for f in .fmnist/*.gz; do gunzip -c "$f" > "data/FashionMNIST/raw/$(basename "$f" .gz)"; done
fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, torchvision, pytorch_lightning as pl, hydra; print('torch', torch.__version__, '| torchvision', torchvision.__version__, '| lightning', pl.__version__, '| hydra', hydra.__version__)"
} 2>&1 | tee "$out/env.txt"

echo "== CUDA tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/norms/test_cuda.py \
  tests/norms/test_numerics.py 2>&1 | tail -n 40 | tee "$out/cuda_tests.txt"

echo "== bench_norms"
timeout 150 python3 scripts/bench_norms.py --device cuda 2>&1 | tee "$out/bench_norms.md"

echo "== bench_train"
timeout 300 python3 scripts/bench_train.py --table all --device cuda 2>&1 | tee "$out/bench_train.md"

echo "== quick start on the GPU (precision auto = bf16-mixed)"
start=$(date +%s)
timeout 240 python3 train.py data=fashion_mnist model=cnn norm=group trainer.max_epochs=2 \
  trainer.enable_progress_bar=false paths.root=gpu_runs > "$out/quickstart.log" 2>&1
echo "exit $? after $(( $(date +%s) - start )) s" | tee -a "$out/quickstart.log"
cp gpu_runs/runs/*/metrics.json "$out/quickstart_metrics.json" 2>/dev/null
tail -n 25 "$out/quickstart.log"
