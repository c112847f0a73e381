#!/usr/bin/env bash
# Regenerates benchmarks/evaluation/*: every method, with the shipped weights, on the shared test sets.
# Usage: bash benchmarks/evaluate_all.sh [extra evaluate flags]   (needs ../shared/data; about 15 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
O=benchmarks/evaluation
run() {  # name task a b methods
  defusion-rt evaluate --task "$2" --a "$3" --b "$4" --methods "$5" --json "$O/$1.json" --markdown "$O/$1.md" \
    --sheet "$O/$1.png" --sheet-fused-only "${@:6}"
}
run tno ir-vis $D/ir_vis/TNO/ir $D/ir_vis/TNO/vis defusion,average,max,laplacian "$@"
run roadscene ir-vis $D/ir_vis/RoadScene/ir $D/ir_vis/RoadScene/vis defusion,average,max,laplacian "$@"
run lytro multi-focus $D/multi_focus/Lytro/a $D/multi_focus/Lytro/b defusion,average,max,laplacian "$@"
run mefb multi-exposure $D/multi_exposure/MEFB/under $D/multi_exposure/MEFB/over defusion,average,max,laplacian,mertens "$@"
python benchmarks/synthetic_multifocus.py "$@"
