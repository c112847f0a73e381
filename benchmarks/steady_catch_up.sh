#!/usr/bin/env bash
# Steady's catch-up towards the network's running mean (memory 8, fusion/steady.py) against its latest frame
# (memory 1, as before), side by side on the same fused frames: the validation sequences first (TNO_Tree, TNO_Duine),
# then the M3SVD test clips, for the shipped IR-visible weights and the difference-term weights before them.
# Usage: bash benchmarks/steady_catch_up.sh   (needs ../shared/data and git history; about 6 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data/ir_vis_video
O=benchmarks/results/steady_catch_up
mkdir -p "$O"
DIFF=$(mktemp --suffix .pt)
git show 0193904^:defusion_rt/model/weights/defusion_fast_ir_vis.pt > "$DIFF"  # the difference-term weights
for seq in TNO_Tree TNO_Duine; do
  python benchmarks/steady_cost.py --a $D/$seq/ir --b $D/$seq/vis --memory 1 --no-timing --json "$O/shipped_$seq.json"
done
python benchmarks/steady_cost.py --a $D/M3SVD/ir --b $D/M3SVD/vis --memory 1 --no-timing --json "$O/shipped_M3SVD.json"
python benchmarks/steady_cost.py --a $D/M3SVD/ir --b $D/M3SVD/vis --memory 1 --no-timing --weights "$DIFF" \
  --json "$O/difference_term_M3SVD.json"
rm -f "$DIFF"
