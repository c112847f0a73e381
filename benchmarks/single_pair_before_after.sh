#!/bin/bash
# Single-pair end to end (auto engine, H.264 recording, M3SVD 0117_1620, 200 frames), before the many-pairs change
# (bff2e71, checked out with `git worktree add /tmp/old bff2e71`) and after it, alternated three times; printed
# lines go into benchmarks/results/single_pair_before_after_amd-epyc-2c.json.
D=/work/main/../shared/data/ir_vis_video/M3SVD
for i in 1 2 3; do
  for tree in old main; do
    if [ $tree = old ]; then cd /tmp/old; else cd /work/main; fi
    fps=$(/work/main/.venv/bin/python -m defusion_rt run --a $D/ir/0117_1620.mp4 --b $D/vis/0117_1620.mp4 --max-frames 200 --record /tmp/sbs_$tree.mp4 2>&1 | grep throughput | grep -o '[0-9.]* FPS')
    echo "$tree $i $fps"
  done
done
