#!/usr/bin/env bash
# Steady's catch-up (fusion/steady.py: LEAK levels a frame towards the network's running mean over MEMORY frames,
# where the output is more than STALE levels from it) against none, the default, side by side on the same fused
# frames of the shipped IR-visible weights: the validation sequences first (TNO_Tree, TNO_Duine; Qabf every 5th
# frame), then the M3SVD test clips (every 25th). 1:16:8 was the default until 2026-12-01, 1:16:1 before that.
# Usage: bash benchmarks/steady_variants.sh   (needs ../shared/data; about 8 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data/ir_vis_video
O=benchmarks/results/steady_variants
mkdir -p "$O"
C="1:16:1 1:16:8 1:32:8 1:64:8"
for seq in TNO_Tree TNO_Duine; do
  python benchmarks/steady_cost.py --a $D/$seq/ir --b $D/$seq/vis --every 5 --compare $C --no-timing \
    --json "$O/$seq.json"
done
python benchmarks/steady_cost.py --a $D/M3SVD/ir --b $D/M3SVD/vis --compare $C --no-timing --json "$O/M3SVD.json"
