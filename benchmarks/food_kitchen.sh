#!/usr/bin/env bash
# The Food-Kitchen tables of results/ (issue 17): every model to early stopping under sampled999,
# each run's checkpoint then tested under full. Two lanes run side by side, one per core, and
# write into one results file (llmemf-bench --resume merges them under a lock). Everything is
# resumable: run the script again after an interruption and finished runs are read back, a killed
# run continues from its last epoch and a budget-stopped one goes on when BUDGET grows.
#
#   llmemf-data c2dsr ../shared/data/food_kitchen --out dataset
#   llmemf-data features dataset/food_kitchen --text-encoder sentence-transformers:all-MiniLM-L6-v2
#   benchmarks/food_kitchen.sh                   # BUDGET=7200 SEEDS=2021,2022 BEST=SASRec
#
# Compute (2 CPU cores, one thread per lane): an LLMEMF epoch takes about 7 min, a SASRec epoch
# about 5 min and a GRU4Rec epoch about 3 min. SASRec peaks at epoch 4 and stops at 15; LLMEMF
# creeps up to its best at epoch 25 and stops at 36 (seed 2020), so plan about 4 hours per LLMEMF run.
set -euo pipefail

OUT=${OUT:-results}
BUDGET=${BUDGET:-}        # seconds of training per run; empty: no limit
SEEDS=${SEEDS:-2021,2022} # more seeds for LLMEMF and the best baseline
BEST=${BEST:-SASRec} # the baseline with the best seed-2020 validation score (0.0764; SASRec-indomain 0.0757)
# candidate_draw=stream: the draw of the published tables (one generator over all cases); their
# LLMEMF rows have the paper's settings, from before LLMEMF's defaults of issue 28
SHARED=(--dataset=food_kitchen --out="$OUT" --set hidden_size=64 inner_size=64 embedding_size=64 candidate_draw=stream
    LLMEMF.learning_rate=0.001 "LLMEMF.content_profile_scales=~")
TRAIN=(--resume)
[ -n "$BUDGET" ] && TRAIN+=(--time-budget="$BUDGET")
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

lane() {  # lane NAME MODELS:SEEDS...: train each in order, then retest it under full
    local name=$1
    shift
    for models in "$@"; do
        llmemf-bench --protocol=sampled999 --name=food_kitchen-sampled999 --models="${models%%:*}" \
            --seeds="${models#*:}" "${SHARED[@]}" "${TRAIN[@]}"
        # a row already retested is read back unless its run trained on since (no checkpoint
        # needed); a run that did not finish is left out
        llmemf-bench --protocol=full --name=food_kitchen-full --retest-from=food_kitchen-sampled999 \
            --models="${models%%:*}" --seeds="${models#*:}" "${SHARED[@]}" --resume
    done >>"$OUT/$name.log" 2>&1
}

mkdir -p "$OUT"
# LLMEMF's further seeds (one per lane) before the shuffled-text control: the seeds carry the table
lane llmemf "LLMEMF,LLMEMF-ids:2020" "LLMEMF:${SEEDS%%,*}" "LLMEMF-text-shuffled:2020" &
lane baselines "SASRec,SASRec-indomain,ItemKNN,BPR,GRU4Rec,SRGNN:2020" "$BEST:$SEEDS" \
    "LLMEMF:${SEEDS#*,}" &
wait
