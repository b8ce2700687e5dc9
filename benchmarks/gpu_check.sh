#!/usr/bin/env bash
# Issue 28: the GPU numbers in one prepared run (at most about 8 minutes) on a lent CUDA device.
# Needs the package installed (pip install -e ".[test]") and, for step 3, dataset/food_kitchen with
# its text vectors (README, Data). Each step has its own time limit; the numbers go to OUT/.
#
#   benchmarks/gpu_check.sh                 # OUT=gpu_check
set -uo pipefail
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv >"$OUT/gpu.txt" 2>&1
# 1. the CUDA tests (skipped on CPU machines)
timeout 120 python -m pytest -q tests/test_cuda.py >"$OUT/cuda_tests.txt" 2>&1
# 2. a training batch and a whole test evaluation, LLMEMF / SASRec, at 60k users
timeout 180 python benchmarks/epoch_time.py --device cuda --users 60000 --batches 50 \
    --variants SASRec,LLMEMF >"$OUT/epoch_60k.txt" 2>&1
# 3. Food-Kitchen epochs, mixed precision off and on
if [ -d dataset/food_kitchen ]; then
    for amp in "" "--amp"; do
        timeout 100 python benchmarks/epoch_time.py --device cuda --dataset dataset/food_kitchen \
            --hidden 64 --batches 200 --variants SASRec,LLMEMF $amp >"$OUT/food_kitchen${amp}.txt" 2>&1
    done
fi
tail -n 5 "$OUT"/*.txt
