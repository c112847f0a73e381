"""`defusion-rt` command line: thin parsing; each subcommand calls one function of the package."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError


def _cmd_train(args) -> None:
    from .config import load_settings
    from .train import train
    settings = load_settings(args.config)
    out = Path(args.out) if args.out else Path("runs") / "train"
    train(args.data, settings, out, resume=args.resume, iterations=args.iterations, stop_after=args.stop_after)


def _cmd_fuse(args) -> None:
    from .engines import create_engine
    from .fuse import Fuser, fuse_paths
    from .model import create_model
    model = create_model(args.model, weights=args.weights, pretrained=args.weights is None)
    engine = create_engine("eager", args.device, args.precision, model=model)
    fuser = Fuser(engine, args.task, colour=args.colour)
    written = fuse_paths(fuser, args.a, args.b, args.output, resize=args.resize,
                         model=model if args.decomposition else None)
    print(f"wrote {len(written)} fused image(s) to {args.output}")


def _cmd_evaluate(args) -> None:
    from rich.console import Console
    from .evaluate import print_table, run_evaluation, write_outputs
    fused = {}
    for item in args.fused or []:
        name, _, folder = item.rpartition("=")
        fused[name or Path(folder).name] = folder
    methods = [m for m in args.methods.split(",") if m]
    report = run_evaluation(args.task, args.a, args.b, methods, gt=args.gt, fused=fused, weights=args.weights,
                            device=args.device, precision=args.precision, limit=args.limit,
                            sheet=Path(args.sheet) if args.sheet else None)
    print_table(report, Console(width=160), f"{args.task}: {args.a} + {args.b}")
    write_outputs(report, dict(a=args.a, b=args.b, gt=args.gt), args.json, args.csv)
    if report.skipped:
        print(f"{len(report.skipped)} pair(s) skipped: " + "; ".join(f"{s['pair']} ({s['reason']})"
                                                                      for s in report.skipped[:5]))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="defusion-rt", description="Real-time two-stream image and video fusion "
                                "with DeFusion (ECCV 2022).")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="self-supervised CUD training on a folder of images")
    t.add_argument("--data", required=True, help="folder of images (searched recursively)")
    t.add_argument("--config", help="YAML settings (default: built-in, as configs/defusion.yaml)")
    t.add_argument("--out", help="run folder for checkpoints, log and weights (default runs/train)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--iterations", type=int, help="override train.iterations (also extends a resumed run)")
    t.add_argument("--stop-after", type=int, help="checkpoint and stop after this many steps (resume later)")
    t.set_defaults(func=_cmd_train)

    f = sub.add_parser("fuse", help="fuse two images, or two folders of images paired by name")
    f.add_argument("a", help="first image or folder (IR for ir-vis, e.g. the under-exposed or near-focus one)")
    f.add_argument("b", help="second image or folder (visible for ir-vis)")
    f.add_argument("-o", "--output", required=True, help="output image, or folder when A and B are folders")
    f.add_argument("--task", default="ir-vis", help="ir-vis | multi-exposure | multi-focus (default ir-vis)")
    f.add_argument("--colour", "--color", action="store_true", help="ir-vis: fuse luminance, keep visible colour")
    f.add_argument("--model", default="defusion", help="model variant (default defusion)")
    f.add_argument("--weights", help="weight file (default: the weights shipped in the package)")
    f.add_argument("--device", default="auto", help="cpu | cuda | auto")
    f.add_argument("--precision", default="fp32", help="fp32 | fp16 (CUDA) | bf16")
    f.add_argument("--resize", action="store_true", help="resize B to A when their sizes differ")
    f.add_argument("--decomposition", action="store_true", help="also write the common and unique images")
    f.set_defaults(func=_cmd_fuse)
    e = sub.add_parser("evaluate", help="score fusion methods on a test set with the standard metrics")
    e.add_argument("--task", required=True, help="ir-vis | multi-exposure | multi-focus")
    e.add_argument("--a", required=True, help="folder of first sources (IR, under-exposed, focus A)")
    e.add_argument("--b", required=True, help="folder of second sources, same file names")
    e.add_argument("--gt", help="folder of ground-truth images (adds PSNR and SSIM_ref)")
    e.add_argument("--methods", default="defusion,average,max,laplacian",
                   help="comma-separated: defusion, average, max, laplacian, mertens (empty: only --fused)")
    e.add_argument("--fused", action="append", help="NAME=DIR of fused images from another tool (repeatable)")
    e.add_argument("--weights", help="network weights (default: shipped)")
    e.add_argument("--device", default="auto")
    e.add_argument("--precision", default="fp32")
    e.add_argument("--limit", type=int, help="only the first N pairs")
    e.add_argument("--json", help="write per-pair and mean values as JSON")
    e.add_argument("--csv", help="write per-pair and mean values as CSV")
    e.add_argument("--sheet", help="write a contact sheet PNG of the first pairs")
    e.set_defaults(func=_cmd_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as err:
        print(f"defusion-rt {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"defusion-rt {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
