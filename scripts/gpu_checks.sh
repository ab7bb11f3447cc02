#!/usr/bin/env bash
# The GPU checks, for a lent GPU machine; results under $OUT (default gpu_out/).
#   bash scripts/gpu_checks.sh [STAGE ...]    STAGE: tests bench quickstart norms sweep remedies
#                                             study (default: the first five)
# Needs Hydra's wheels in .whl/ where Hydra is not installed, and, for the Fashion-MNIST runs where
# /usr/share/datasets/fashion-mnist is absent, its four .gz files in .fmnist/.
set -uo pipefail
out=${OUT:-gpu_out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
stages=${*:-tests bench quickstart norms sweep}
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
  nproc
} 2>&1 | tee "$out/env.txt"

for stage in $stages; do
  start=$(date +%s)
  case $stage in
  tests)  # the parity suites on CUDA, eager and compiled (CUDA graphs), remedies included
    timeout 300 python3 -m pytest -q -p no:cacheprovider tests/norms/test_cuda.py \
      tests/norms/test_numerics.py tests/test_compile.py -k "cuda" 2>&1 | tail -n 40 \
      | tee "$out/cuda_tests.txt" ;;
  bench)  # normlab eager / compiled (captured) against torch.nn, and the Lightning path
    timeout 150 python3 scripts/bench_train.py --device cuda --table norms --models resnet20 \
      --batches 2 32 --steps 30 --repeats 2 2>&1 | tee "$out/bench_train.md"
    timeout 100 python3 scripts/bench_train.py --device cuda --table norms --models resnet20 \
      --batches 512 --precision bf16 --steps 20 --repeats 2 2>&1 | tee -a "$out/bench_train.md"
    timeout 90 python3 scripts/bench_train.py --device cuda --table overhead --batches 2 \
      --repeats 1 2>&1 | tee -a "$out/bench_train.md" ;;
  quickstart)  # the README's quick start; compile=auto is on for CUDA
    timeout 200 python3 train.py data=fashion_mnist model=cnn norm=group trainer.max_epochs=2 \
      trainer.enable_progress_bar=false paths.root=gpu_runs > "$out/quickstart.log" 2>&1
    echo "exit $?" >> "$out/quickstart.log"
    cp gpu_runs/runs/*/metrics.json "$out/quickstart_metrics.json" 2>/dev/null
    grep -v "^\s*$" "$out/quickstart.log" | tail -n 8 ;;
  norms)  # per layer, bf16 channels_last: GB/s against the copy, eager and compiled kernels
    timeout 90 python3 scripts/bench_norms.py --device cuda --dtype bfloat16 --channels-last \
      --compiled --norms batch group 2>&1 | tee "$out/bench_norms.md" ;;
  sweep)  # packing: 4 short runs one after another, then on the parallel launcher
    for launcher in basic parallel; do
      s=$(date +%s)
      timeout 150 python3 train.py -m hydra/launcher=$launcher data=fashion_mnist model=cnn \
        norm=batch,group data.batch_size=8,32 trainer.max_epochs=1 \
        trainer.limit_train_batches=500 trainer.enable_progress_bar=false \
        hydra.sweep.dir=gpu_runs/sweep_$launcher > "$out/sweep_$launcher.log" 2>&1
      echo "$launcher: exit $? after $(( $(date +%s) - s )) s" | tee -a "$out/sweep.txt"
      grep -h '"status"\|fit_seconds' gpu_runs/sweep_$launcher/*/metrics.json | tee -a "$out/sweep.txt"
    done ;;
  remedies)  # each small-batch remedy through train.py as a GPU user runs it (bf16, compiled):
    # 600 steps at batch 4 (Batch Renorm's r, d clip from step 500), all at once; the report's
    # table (errors, gap, and every run that did not finish, with its status)
    timeout 240 python3 train.py -m experiment=small_batch_remedies data=fashion_mnist \
      model=cnn remedy=bn,bn_precise,gn,gn_ws,batch_renorm,frn data.batch_size=4 \
      trainer.max_epochs=1 trainer.limit_train_batches=600 trainer.enable_progress_bar=false \
      hydra/launcher=parallel hydra.sweep.dir=gpu_runs/remedies > "$out/remedies.log" 2>&1
    echo "exit $?" | tee -a "$out/remedies.log"
    python3 -m normlab.report gpu_runs/remedies --out "$out/remedies" > /dev/null
    cat "$out/remedies/summary.md" ;;
  study)  # bn_vs_gn_batch's batch-32 cells at the study budget, as a GPU user runs them
    # (bf16, compiled), 3 seeds, packed on the parallel launcher; one JSON line per run
    timeout 300 python3 train.py -m experiment=bn_vs_gn_batch data=fashion_mnist model=cnn \
      trainer.max_epochs=5 seed=0,1,2 data.batch_size=32 hydra/launcher=parallel \
      trainer.enable_progress_bar=false hydra.sweep.dir=gpu_runs/bn_vs_gn_batch \
      > "$out/study.log" 2>&1
    echo "exit $?" >> "$out/study.log"
    for f in gpu_runs/bn_vs_gn_batch/*/metrics.json; do
      python3 -c "import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))" "$f"
    done > "$out/study_metrics.jsonl"
    wc -l < "$out/study_metrics.jsonl" ;;
  esac
  echo "== $stage: $(( $(date +%s) - start )) s" | tee -a "$out/stages.txt"
done
