#!/usr/bin/env bash
# Issue 28, exploration on validation only: LLMEMF variants (the paper's model, no content profile) on Food-Kitchen at a fixed per-run
# training budget, one thread, each into its own results stem (conv-<name>), so their validation
# curves (per epoch, with epoch times) sit side by side in <OUT>/conv-*.md. Resumable: run it
# again and finished runs are read back, a killed one goes on from its last epoch.
#
#   llmemf-data c2dsr ../shared/data/food_kitchen --out dataset
#   llmemf-data features dataset/food_kitchen --text-encoder sentence-transformers:all-MiniLM-L6-v2
#   benchmarks/convergence.sh                     # BUDGET=2700 OUT=conv
set -uo pipefail
OUT=${OUT:-conv}
BUDGET=${BUDGET:-2700}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"
run() {  # run NAME KEY=VALUE...
    local name=$1
    shift
    llmemf-bench --protocol=sampled999 --name="conv-$name" --models=LLMEMF --seeds=2020 \
        --dataset=food_kitchen --out="$OUT" --resume --time-budget="$BUDGET" \
        --set hidden_size=64 inner_size=64 embedding_size=64 candidate_draw=stream \
        "content_profile_scales=~" "$@" >>"$OUT/$name.log" 2>&1
    echo "$(date +%T) done $name ($?)" >>"$OUT/progress.log"
}
run lr003 learning_rate=0.003
run lr005 learning_rate=0.005
run b1024-lr004 learning_rate=0.004 train_batch_size=1024
run lr003-t005 learning_rate=0.003 temperature=0.05
