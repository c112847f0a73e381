#!/usr/bin/env bash
# Regenerates benchmarks/evaluation/*: every method, with the shipped weights, on the shared test sets.
# Usage: bash benchmarks/evaluate_all.sh [extra evaluate flags]   (needs ../shared/data; about 30 min on 2 cores)
#        ONLY="tno vifb" bash benchmarks/evaluate_all.sh              (some sets only; synthetic = the GT test)
# IR-visible sets score both of the paper network's weights: `defusion` (adapted with fusion losses on RoadScene,
# so RoadScene is its training data) and `defusion-cud` (its CUD weights, used for its other tasks);
# `defusion_fast` is the real-time CPU variant with its own per-task weights (MODEL_CARD_fast.md).
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
O=benchmarks/evaluation
run() {  # name task a b methods
  [[ -z "${ONLY:-}" || " $ONLY " == *" $1 "* ]] || return 0
  defusion-rt evaluate --task "$2" --a "$3" --b "$4" --methods "$5" --json "$O/$1.json" --markdown "$O/$1.md" \
    --sheet "$O/$1.jpg" --sheet-fused-only "${@:6}"
}
IRVIS=defusion,defusion-cud,defusion_fast,defusion_fast-cud,average,max,laplacian
run tno ir-vis $D/ir_vis/TNO/ir $D/ir_vis/TNO/vis $IRVIS "$@"
run vifb ir-vis $D/ir_vis/VIFB/ir $D/ir_vis/VIFB/vis $IRVIS "$@"
run m3svd ir-vis $D/ir_vis_video/M3SVD_frames/0111_1716/ir $D/ir_vis_video/M3SVD_frames/0111_1716/vis $IRVIS "$@"
# RoadScene is the IR-visible weights' training data: its first 50 pairs show fit, not generalisation.
run roadscene ir-vis $D/ir_vis/RoadScene/ir $D/ir_vis/RoadScene/vis $IRVIS --limit 50 "$@"
run lytro multi-focus $D/multi_focus/Lytro/a $D/multi_focus/Lytro/b defusion,defusion_fast,defusion_fast-cud,average,max,laplacian "$@"
run mffw multi-focus $D/multi_focus/MFFW/a $D/multi_focus/MFFW/b defusion,defusion_fast,defusion_fast-cud,average,max,laplacian "$@"
run mefb multi-exposure $D/multi_exposure/MEFB/under $D/multi_exposure/MEFB/over defusion,defusion_fast,defusion_fast-cud,average,max,laplacian,mertens "$@"
# The CPU engines' reduced precisions against fp32 (issue #20's bounds: Qabf, MI, VIF within 0.01 / 0.05 / 0.01):
# OpenVINO int8 (the networks `defusion-rt quantize` made) and export bf16 (auto's pick on AVX-512-BF16 CPUs).
CPU=defusion_fast,defusion_fast@openvino:int8,defusion_fast@export:bf16,average
run cpu_precisions_tno ir-vis $D/ir_vis/TNO/ir $D/ir_vis/TNO/vis $CPU "$@"
run cpu_precisions_vifb ir-vis $D/ir_vis/VIFB/ir $D/ir_vis/VIFB/vis $CPU "$@"
run cpu_precisions_lytro multi-focus $D/multi_focus/Lytro/a $D/multi_focus/Lytro/b $CPU "$@"
run cpu_precisions_mefb multi-exposure $D/multi_exposure/MEFB/under $D/multi_exposure/MEFB/over $CPU "$@"
[[ -z "${ONLY:-}" || " $ONLY " == *" synthetic "* ]] && python benchmarks/synthetic_multifocus.py "$@"
exit 0
