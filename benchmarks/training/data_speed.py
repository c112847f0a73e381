"""Images/s of the CUD training data path alone (decode, crop, jitter, masks), one process, no network.

Usage: python benchmarks/training/data_speed.py DATA_DIR [--crop 128] [--samples 300] [--json OUT]
Run it before and after a change to the data path, on the same machine, and compare the medians.
"""
import argparse
import json
import platform
import statistics
import time

import torch

from defusion_rt.config import load_settings
from defusion_rt.train.data import CUDDataset


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data", nargs="+")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(1)
    s = load_settings()
    s.train.crop = args.crop
    ds = CUDDataset(args.data if len(args.data) > 1 else args.data[0], s)
    rates = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        for g in range(r * args.samples, (r + 1) * args.samples):
            ds[g]
        rates.append(args.samples / (time.perf_counter() - t0))
    out = dict(files=len(ds.files), crop=args.crop, samples=args.samples, images_per_s=rates,
               median=statistics.median(rates), machine=platform.processor() or platform.machine(),
               cpu_count=torch.get_num_threads())
    print(json.dumps(out))
    if args.json:
        open(args.json, "w").write(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
