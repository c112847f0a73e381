"""`defusion-rt` command line: thin parsing; each subcommand calls one function of the package."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import UserError
from .outputs import check_file, check_folder, check_outputs, checked_folder, written

# Our messages say what failed and how to fix it; OpenCV's and FFmpeg's own logs would only repeat it noisily.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def _cmd_train(args) -> None:
    from .config import load_settings
    settings = load_settings(args.config) if args.config or not args.resume else None
    with checked_folder(Path(args.out) if args.out else Path("runs") / "train", "run folder (--out)") as out:
        _train_into(out, settings, args)


def _train_into(out: Path, settings, args) -> None:
    from .train import train
    from .train.validate import load_set
    if args.model and settings is not None:
        settings.model.name = args.model
    if args.adapt == "ir-vis" and args.data:
        raise UserError("--data is for CUD training; with --adapt ir-vis give the pairs as --a DIR --b DIR")
    if (args.a or args.b) and args.adapt != "ir-vis":
        raise UserError("--a/--b give IR/visible pairs for --adapt ir-vis; use --data for CUD and the other "
                        "--adapt tasks")
    adapt = dict(task=args.adapt, a=args.a or [], b=args.b or []) if args.adapt else None
    val = [load_set(task, a, b, args.val_pairs) for task, a, b in args.val or []]
    train(args.data, settings, out, resume=args.resume, iterations=args.iterations, stop_after=args.stop_after,
          minutes=args.minutes, init=args.init, adapt=adapt, validation=val, val_every=args.val_every)


def _cmd_fuse(args) -> None:
    from .engines import create_engine
    from .fusion import Fuser, decomposition_network, fuse_paths
    from .model import create_model, model_for
    both_folders = Path(args.a).is_dir() and Path(args.b).is_dir()
    check_folder(args.output, "output folder (-o)") if both_folders else check_file(args.output, "output (-o)")
    if args.method != "defusion":  # a classical baseline: no network, no weights
        if args.decomposition:
            raise UserError("--decomposition needs the network; drop it or use --method defusion")
        model, engine = None, create_engine(args.method, args.device)
    else:
        name = model_for(args.task, args.weights) if args.model == "auto" else args.model
        model = create_model(name, weights=args.weights, pretrained=args.weights is None, task=args.task)
        engine = create_engine("eager", args.device, args.precision, model=model)
    fuser = Fuser(engine, args.task, colour=args.colour)
    parts = decomposition_network(model.variant, args.weights) if args.decomposition else None
    written = fuse_paths(fuser, args.a, args.b, args.output, resize=args.resize, model=parts)
    print(f"wrote {len(written)} fused image(s) to {args.output}")


def _cmd_evaluate(args) -> None:
    from rich.console import Console
    from .evaluate import default_methods, print_table, run_evaluation, write_outputs
    fused = {}
    for item in args.fused or []:
        name, _, folder = item.rpartition("=")
        fused[name or Path(folder).name] = folder
    methods = [m for m in args.methods.split(",") if m] if args.methods is not None else default_methods(args.task)
    check_outputs(json=args.json, csv=args.csv, markdown=args.markdown, sheet=args.sheet)  # before the scoring
    if args.video:
        from .evaluate import run_video_evaluation
        report = run_video_evaluation(args.task, args.a, args.b, methods, weights=args.weights, device=args.device,
                                      precision=args.precision, frames=args.frames, steady=args.steady)
        how = "steadied as the video pipeline does (fusion.steady)" if args.steady else "every frame fused on its own"
        title = f"{args.task} video flicker (lower is better), {how}: {args.a} + {args.b}"
        print_table(report, Console(width=160), title)
        write_outputs(report, dict(a=args.a, b=args.b, frames=args.frames, steady=args.steady), args.json, args.csv,
                      args.markdown, title)
        return
    report = run_evaluation(args.task, args.a, args.b, methods, gt=args.gt, fused=fused, weights=args.weights,
                            device=args.device, precision=args.precision, limit=args.limit,
                            sheet=Path(args.sheet) if args.sheet else None, sheet_sources=not args.sheet_fused_only)
    print_table(report, Console(width=160), f"{args.task}: {args.a} + {args.b}")
    write_outputs(report, dict(a=args.a, b=args.b, gt=args.gt), args.json, args.csv, args.markdown,
                  f"{args.task}: {args.a} + {args.b}")
    if report.skipped:
        print(f"{len(report.skipped)} pair(s) skipped: " + "; ".join(f"{s['pair']} ({s['reason']})"
                                                                      for s in report.skipped[:5]))


def _cmd_run(args) -> None:
    from rich.console import Console
    from .pipeline import Pipeline, is_multi, load_pipeline, print_summary
    overrides = _fusion_overrides(args)
    overrides["register"]["reestimate_s"] = args.reestimate
    if is_multi(args.pipeline):
        return _run_pairs(args, overrides)
    s = load_pipeline(args.pipeline, {
        **overrides,
        "sources": dict(a=args.a, b=args.b, mode="live" if args.live else None, paced=args.paced or None),
        "render": dict(display=args.display, overlay=args.overlay, record=args.record, csv=args.csv,
                       side_by_side=args.side_by_side or None, serve=args.serve, serve_token=args.serve_token),
        "run": dict(max_frames=args.max_frames)})
    console = Console(stderr=True)
    r = s.render
    if not (r.record or r.display or r.serve or r.csv):
        console.print("[yellow]note: nothing is kept or shown: the fused frames are counted only; add --record "
                      "FILE.mp4, --display or --serve PORT")
    summary = Pipeline(s, console).run()
    print_summary(summary, console)
    if summary.stopped_by == "error":
        raise UserError(summary.message + (f" ({summary.fused} frames fused were saved to {summary.record})"
                                           if summary.record else ""))


def _run_pairs(args, overrides: dict) -> None:
    """`run --pipeline FILE` where FILE lists several pairs: flags that name one source or output belong to a
    pair, so they go in the file; the others apply to every pair."""
    from rich.console import Console
    from .pipeline import MultiPipeline, load_multi, print_multi_summary
    per_pair = [f"--{k.replace('_', '-')}" for k in ("a", "b", "record", "csv", "serve", "serve_token")
                if getattr(args, k)]
    if per_pair:
        raise UserError(f"{args.pipeline} lists several pairs: set {', '.join(per_pair)} per pair in the file "
                        "(sources: / render: under each pair)")
    s = load_multi(args.pipeline, {
        **overrides, "sources": dict(mode="live" if args.live else None, paced=args.paced or None),
        "render": dict(display=args.display, overlay=args.overlay, side_by_side=args.side_by_side or None),
        "run": dict(max_frames=args.max_frames)})
    console = Console(stderr=True)
    summary = MultiPipeline(s, console).run()
    print_multi_summary(summary, console)
    failed = [f"{name}: {sm.message}" for name, sm in summary.pairs if sm.stopped_by == "error"]
    if failed:
        raise UserError("; ".join(failed) + " (the other pairs' frames were saved)")


def _cmd_batch(args) -> None:
    from .batch import jobs_from_folders, jobs_from_manifest, run_batch
    from .pipeline import load_pipeline
    base = load_pipeline(args.pipeline, {**_fusion_overrides(args),
                                         "render": dict(overlay=True if args.overlay else None if args.pipeline
                                                        else False,  # archives: no overlay unless asked
                                                        side_by_side=args.side_by_side)})
    if args.manifest:
        if args.a or args.b:
            raise UserError("give --manifest or --a/--b folders, not both")
        jobs = jobs_from_manifest(Path(args.manifest), Path(args.out) if args.out else None)
        out = Path(args.out) if args.out else Path(args.manifest).parent
    elif args.a and args.b and args.out:
        jobs, unpaired = jobs_from_folders(Path(args.a), Path(args.b), Path(args.out))
        if unpaired:
            print(f"warning: {len(unpaired)} name(s) in one folder only are skipped, e.g. {unpaired[0]}",
                  file=sys.stderr)
        out = Path(args.out)
    else:
        raise UserError("give --manifest FILE, or --a DIR --b DIR --out DIR")
    check_folder(out, "output folder (--out)")
    report = check_file(Path(args.report) if args.report else out / "batch_report.json", "report (--report)")
    result = run_batch(jobs, base, report, workers=args.workers, ray=args.ray, ray_cpus=args.ray_cpus,
                       ray_gpus=args.ray_gpus)
    if result["interrupted"]:
        raise KeyboardInterrupt
    failed = [r for r in result["pairs"] if r["status"] == "failed"]
    if failed:
        raise UserError(f"{len(failed)} of {len(jobs)} pair(s) failed, see the table and {report}; fix them and "
                        "rerun the same command (complete outputs are skipped)")


def _read_pairs(a: str, b: str, frames: int) -> list:
    """Up to `frames` pairs from two sources; a pair of still images is one pair."""
    from .imageio import IMAGE_EXTS, read_image
    if Path(a).suffix.lower() in IMAGE_EXTS and Path(b).suffix.lower() in IMAGE_EXTS:
        return [tuple((255 * read_image(p)[..., ::-1]).round().astype("uint8") for p in (a, b))]
    from .capture import open_source
    sa = open_source(a)
    try:
        sb = open_source(b)
    except UserError:
        sa.close()
        raise
    pairs = []
    try:
        for _ in range(max(1, frames)):
            fa, fb = sa.read(), sb.read()
            if fa is None or fb is None:
                break
            pairs.append((fa.image, fb.image))
    finally:
        sa.close(); sb.close()
    return pairs


def _cmd_calibrate(args) -> None:
    from .register import combine, estimate, estimate_board
    check_file(args.output, "calibration file (-o)")
    pairs = _read_pairs(args.a, args.b, args.frames)
    if not pairs:
        raise UserError("no frames could be read from the sources")
    if args.method in ("chessboard", "circles"):  # every frame pair that shows the board counts
        reg = estimate_board(pairs, args.board, args.method, args.model)
    else:
        # Frames spread over what was read (consecutive frames add little), each estimated, then combined.
        step = max(1, len(pairs) // 5)
        reg = combine([estimate(a, b, method=args.method, model=args.model) for a, b in pairs[::step]])
    if not reg.trusted:
        more = ("give a still pair with more structure seen by both cameras (edges, buildings, people), or video "
                "so that more frames can be read" if len(pairs) == 1 else
                "read more frames with --frames 30 while the scene has structure in both views")
        raise UserError(f"registration failed its check: {reg.note}; nothing written. To fix: {more}, or use "
                        "--method chessboard or circles with a heated board")
    reg.save(args.output)
    quality = (f"confidence {reg.confidence:.2f}" if reg.confidence is not None else
               f"residual {reg.residual_px:.3f} px")
    print(f"wrote {args.output}: {reg.model} B->A, {quality}, common view "
          f"{reg.output_size[0]}x{reg.output_size[1]} of A's {reg.size_a[0]}x{reg.size_a[1]}")


def _cmd_quantize(args) -> None:
    from .engines.compiled import cache_dir
    from .train.quantize import calibration_pairs, quantize, save
    from .model import create_model, default_weights
    out = check_folder(Path(args.out_dir) if args.out_dir else cache_dir() / "int8", "output folder (--out-dir)")
    model = create_model(args.model, weights=args.weights, pretrained=args.weights is None, task=args.task)
    stem = Path(args.weights or default_weights(args.model, args.task)).stem
    pairs = calibration_pairs(args.task, args.a, args.b, args.data, args.pairs, args.seed)
    print(f"calibrating {stem} for {args.task} on {len(pairs)} pairs")
    int8, report = quantize(model, args.task, pairs, args.max_drop)
    report |= dict(weights=stem, sources=dict(a=args.a or [], b=args.b or [], data=args.data or []))
    with written(out, "int8 network"):
        path = save(int8, model, stem, out, report)
    kept = len(report["float_layers"])
    print(f"wrote {path}: {report['convolutions'] - kept} of {report['convolutions']} convolutions in int8"
          f"{f' ({kept} kept in float)' if kept else ''}; `--engine openvino --precision int8` "
          "finds it by the weights' digest")


def _number(kind: type, low: float, high: float | None = None):
    """An argparse type: an int or float within [low, high], else one line naming the allowed range."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            word = "an integer" if kind is int else "a number"
            bound = f"from {low} to {high}" if high is not None else f"of {low} or more"
            raise argparse.ArgumentTypeError(f"'{text}' is not {word} {bound}")
        return value
    return parse


POSITIVE, COUNT = _number(int, 1), _number(int, 0)


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        w, _, h = item.lower().partition("x")
        if not (w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            raise argparse.ArgumentTypeError(f"bad size '{item}'; write WIDTHxHEIGHT, e.g. 640x480")
        out.append((int(w), int(h)))
    return out


def _ints(text: str) -> list[int]:
    items = text.split(",")
    if not all(i.strip().isdigit() and int(i) > 0 for i in items):
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of positive integers, e.g. 1,8")
    return [int(i) for i in items]


def _names(text: str) -> list[str]:
    from .engines import CLASSICAL
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in CLASSICAL]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown method '{bad[0]}'; choose from {', '.join(CLASSICAL)}")
    return names


def _board(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit()):
        raise argparse.ArgumentTypeError(f"'{text}' is not COLSxROWS, e.g. 9x6")
    return int(w), int(h)


def _e2e_sources(spec: str) -> tuple[str, str]:
    from .capture.sources import source_kind
    parts = spec.split(",")
    if len(parts) != 2:
        raise UserError(f"--e2e takes two sources, A,B (got {spec!r})")
    for part in parts:
        source_kind(part)  # a missing file is named here
    return parts[0], parts[1]


BENCH_ENGINES = ["eager", "torchscript", "compile", "export", "onnx", "openvino", "openvino:int8"]


def _cmd_bench(args) -> None:
    from rich.console import Console
    from .bench import BenchSettings, load_results, plot, run_matrix, save, update_readme
    from .bench.matrix import print_table
    console = Console(width=150)
    folder = check_folder(args.out_dir, "results folder (--out-dir)")
    if args.readme:
        check_file(args.readme, "--readme")
    if args.streams:
        return _bench_streams(args, folder, console)
    args.model = args.model or "defusion"
    if args.profile:
        from .bench.matrix import device_slug_for, profile
        engine, _, precision = args.profile.partition(":")
        w, h = args.sizes[0]
        text, rows = profile(BenchSettings(device=args.device, model=args.model, weights=args.weights), engine,
                             precision or "fp32", (int(w), int(h)))
        import torch
        dev = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        path = folder / f"profile_{device_slug_for(dev)}_{args.model}_{engine}_{precision or 'fp32'}_{w}x{h}.txt"
        with written(path, "profile"):
            path.write_text(text)
            path.with_suffix(".json").write_text(json.dumps(rows, indent=1))
        console.print(text)
        console.print(f"profile: {path} and its top operators in {path.with_suffix('.json').name}")
        return
    if not args.report_only:
        e2e = _e2e_sources(args.e2e) if args.e2e else None  # before minutes of model runs, not after
        # Saved as they are measured (rewritten after every record), so a run cut short keeps its results.
        partial = check_file(args.json, "--json") if args.json else folder / f".partial_{args.model}.json"
        s = BenchSettings(device=args.device, model=args.model, engines=args.engines.split(",") if args.engines else BENCH_ENGINES,
                          precisions=args.precisions.split(","), sizes=args.sizes, batches=args.batch,
                          budget_s=args.budget, weights=args.weights, e2e_frames=args.e2e_frames, e2e=e2e,
                          e2e_methods=args.e2e_methods, partial=str(partial))
        result = run_matrix(s, console)
        print_table(result, console)
        with written(partial, "results"):
            if args.json:
                path = Path(args.json)
                path.write_text(json.dumps(result, indent=1))  # replaces the partial file
            else:
                path = save(result, folder)
                partial.unlink(missing_ok=True)
        console.print(f"results: {path}")
    results = load_results(folder)
    if results:
        with written(folder, "plot or README table"):
            console.print(f"plot: {plot(results, folder / 'fps_640x480.png')}")
            if args.readme and update_readme(Path(args.readme), results):
                console.print(f"performance table updated in {args.readme}")


def _bench_streams(args, folder: Path, console) -> None:
    """`bench --streams N,...`: one engine for N pairs (an --engines entry of one ENGINE[:PRECISION], else auto)."""
    from .bench import BenchSettings
    from .bench.matrix import device_slug
    from .bench.streams import print_streams, run_streams
    from .config import build
    from .fusion import FusionSettings
    engines = args.engines.split(",") if args.engines else ["auto"]
    if len(engines) != 1:
        raise UserError("--streams runs one engine: give --engines ENGINE[:PRECISION] once, or leave it out (auto)")
    engine, _, precision = engines[0].partition(":")
    fusion = build(FusionSettings, dict(model=args.model or "auto", engine=engine, precision=precision or
                                        "auto", device=args.device, weights=args.weights or ""), "--")
    s = BenchSettings(device=args.device, model=fusion.model, weights=args.weights, e2e_frames=args.e2e_frames,
                      e2e=_e2e_sources(args.e2e) if args.e2e else None)
    path = Path(args.json) if args.json else None
    if path:
        check_file(path, "--json")
    result = run_streams(args.streams, s, fusion, args.paced, console)
    print_streams(result, console)
    path = path or folder / f"streams_{device_slug(result)}{'_paced' if args.paced else ''}.json"
    with written(path, "results"):
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
    console.print(f"results: {path}")


def _cmd_web(args) -> None:
    from .web import Engines, serve
    engines = Engines(args.device, args.precision, args.weights)
    engines("ir-vis", args.model)  # load at start-up: a bad --weights file fails here, not on the first request
    results = Path(args.results)
    server = serve(engines, args.host, args.port, live_url=args.live or "", results=results)
    print(f"defusion-rt web on http://{args.host}:{server.server_port}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _fusion_flags(p: argparse.ArgumentParser) -> None:
    """The flags `run` and `batch` share: what fuses, and how the pair is registered."""
    p.add_argument("--task", help="ir-vis | multi-exposure | multi-focus")
    p.add_argument("--method", help="defusion | average | max | laplacian | mertens")
    p.add_argument("--model", help="auto (default: defusion_fast on a CPU, the task's best on CUDA) | defusion | "
                                  "defusion_fast | defusion_lite")
    p.add_argument("--engine", help="auto (default: on a CPU the fastest for its class, OpenVINO where installed; "
                                   "compile on CUDA) | eager | torchscript | compile | export | onnx | tensorrt | "
                                   "openvino")
    p.add_argument("--device", help="auto (default: CUDA when present) | cpu | cuda | cuda:N")
    p.add_argument("--precision", help="auto (default: int8 with OpenVINO where the weights were quantized, else "
                                      "bf16 on a CPU that has it, fp16 on CUDA) | fp32 | bf16 | fp16 | int8")
    p.add_argument("--batch", type=POSITIVE, help="pairs per fusion call for recorded sources")
    p.add_argument("--weights", help="weight file (default: the shipped weights for the task and model)")
    p.add_argument("--colour", "--color", action="store_true", help="ir-vis: fuse luminance, keep visible colour")
    p.add_argument("--steady", action=argparse.BooleanOptionalAction, default=None,
                   help="video: a fused frame changes only as far as the sources did nearby (default on; --no-steady "
                        "fuses every frame on its own)")
    p.add_argument("--register", help="none | auto (cross-modal, checked) | ecc | features | calibration YAML")
    p.add_argument("--allow-unregistered", action="store_true", default=None,
                   help="recorded sources: fuse unregistered when --register auto fails its check (else stop)")


def _fusion_overrides(args) -> dict:
    return {"register": dict(method=args.register, allow_untrusted=args.allow_unregistered),
            "fusion": dict(task=args.task, method=args.method, model=args.model, engine=args.engine,
                           device=args.device, precision=args.precision, batch=args.batch, weights=args.weights,
                           colour=args.colour or None, steady=args.steady)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="defusion-rt", description="Real-time two-stream image and video fusion "
                                "with DeFusion (ECCV 2022).")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="self-supervised CUD training on folders of images, or fusion-loss "
                                     "adaptation on image pairs (--adapt)")
    t.add_argument("--data", action="append", help="folder of images, searched recursively (repeatable)")
    t.add_argument("--adapt", choices=["ir-vis", "multi-focus", "multi-exposure"],
                   help="instead of CUD, adapt --init WEIGHTS with fusion losses: ir-vis on the pairs in --a/--b, "
                        "multi-focus and multi-exposure on pairs made from the photographs in --data")
    t.add_argument("--a", action="append", help="--adapt: folder of first sources (IR), repeatable")
    t.add_argument("--b", action="append", help="--adapt: folder of second sources (visible), same names as --a")
    t.add_argument("--init", help="start from this weight file (fresh optimiser and warm-up), e.g. the shipped "
                                  "weights, to continue them or adapt them to your own data")
    t.add_argument("--model", help="model variant to train (default: the config's model.name, defusion)")
    t.add_argument("--minutes", type=_number(float, 0.01), help="wall-clock budget: the run's length, learning-rate steps and "
                                                 "loss milestones are fitted to it after a short warm-up")
    t.add_argument("--val", nargs=3, action="append", metavar=("TASK", "A_DIR", "B_DIR"),
                   help="validation pairs scored during training into val.csv/val.png (repeatable)")
    t.add_argument("--val-every", type=_number(float, 0.01), default=5.0, help="minutes between validations (default 5)")
    t.add_argument("--val-pairs", type=POSITIVE, default=8, help="pairs per validation set, spread evenly (default 8)")
    t.add_argument("--config", help="YAML settings (default: built-in, as configs/defusion.yaml)")
    t.add_argument("--out", help="run folder for checkpoints, log and weights (default runs/train)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--iterations", type=POSITIVE, help="override train.iterations (also extends a resumed run)")
    t.add_argument("--stop-after", type=POSITIVE, help="checkpoint and stop after this many steps (resume later)")
    t.set_defaults(func=_cmd_train)

    f = sub.add_parser("fuse", help="fuse two images, or two folders of images paired by name")
    f.add_argument("a", help="first image or folder (IR for ir-vis, e.g. the under-exposed or near-focus one)")
    f.add_argument("b", help="second image or folder (visible for ir-vis)")
    f.add_argument("-o", "--output", required=True, help="output image, or folder when A and B are folders")
    f.add_argument("--task", default="ir-vis", help="ir-vis | multi-exposure | multi-focus (default ir-vis)")
    f.add_argument("--colour", "--color", action="store_true", help="ir-vis: fuse luminance, keep visible colour")
    f.add_argument("--method", default="defusion", choices=["defusion", "average", "max", "laplacian", "mertens"],
                   help="the network (default) or a classical baseline")
    f.add_argument("--model", default="auto", help="auto (the task's best variant, see the README) | defusion | "
                                                  "defusion_fast | defusion_lite")
    f.add_argument("--weights", help="weight file (default: the shipped weights for the task)")
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
    e.add_argument("--methods",
                   help="default: the task's default network and the classical baselines; comma-separated: a "
                        "model variant (defusion, defusion_fast: the task's default weights), VARIANT-cud (its "
                        "CUD weights), VARIANT@ENGINE:PRECISION (e.g. defusion_fast@openvino:int8), average, max, "
                        "laplacian, mertens (empty: only --fused)")
    e.add_argument("--fused", action="append", help="NAME=DIR of fused images from another tool (repeatable)")
    e.add_argument("--weights", help="network weights for the variant the file fits (default: shipped)")
    e.add_argument("--device", default="auto", help="cpu | cuda | auto (default)")
    e.add_argument("--precision", default="fp32", help="network precision: fp32 (default, as published) | bf16 | fp16")
    e.add_argument("--limit", type=POSITIVE, help="only the first N pairs")
    e.add_argument("--video", action="store_true",
                   help="--a/--b are two videos (or frame folders), or two folders of videos paired by name: score "
                        "the fused videos' flicker, the change no source explains (lower is better)")
    e.add_argument("--frames", type=POSITIVE, default=150, help="with --video: frames per clip (default 150)")
    e.add_argument("--steady", action=argparse.BooleanOptionalAction, default=True,
                   help="with --video: steady each method's video as the pipeline does (default); --no-steady "
                        "scores every frame fused on its own")
    e.add_argument("--json", help="write per-pair and mean values as JSON")
    e.add_argument("--csv", help="write per-pair and mean values as CSV")
    e.add_argument("--markdown", help="write the mean table as Markdown")
    e.add_argument("--sheet", help="write a contact sheet PNG of the first pairs")
    e.add_argument("--sheet-fused-only", action="store_true", help="leave the source images out of the sheet")
    e.set_defaults(func=_cmd_evaluate)
    r = sub.add_parser("run", help="fuse two live feeds or recordings: capture, register, fuse, show, record")
    r.add_argument("--pipeline", help="YAML with the settings (see pipelines/); flags below override it. A file "
                                      "with a pairs: list runs several camera pairs through one engine "
                                      "(pipelines/two_pairs.yaml)")
    r.add_argument("--a", help="source A: camera index, video file, URL or folder of frames (default: built-in "
                              "sample)")
    r.add_argument("--b", help="source B (visible for ir-vis)")
    _fusion_flags(r)
    r.add_argument("--record", action="append", help="write the fused video here (.mp4 or .avi), or send it: "
                                                     "udp://HOST:PORT, tcp://HOST:PORT (MPEG-TS), rtsp://SERVER/PATH; "
                                                     "repeat for several outputs")
    r.add_argument("--csv", help="write per-frame timestamps and latencies here")
    r.add_argument("--display", action=argparse.BooleanOptionalAction, default=None, help="show a window")
    r.add_argument("--side-by-side", action="store_true", help="show and record A | B | fused")
    r.add_argument("--overlay", action=argparse.BooleanOptionalAction, default=None,
                   help="draw FPS, latency and drops on the output (default on)")
    r.add_argument("--live", action="store_true", help="pair the freshest frames and drop stale ones")
    r.add_argument("--paced", action="store_true", help="play recorded sources at their frame rate")
    r.add_argument("--max-frames", type=POSITIVE, help="stop after this many fused frames (default: when a source ends)")
    r.add_argument("--reestimate", type=_number(float, 0.1), metavar="SECONDS",
                   help="live runs with --register auto/ecc/features: re-estimate this often and switch to an "
                        "estimate that is trusted, more confident and stable (default: never)")
    r.add_argument("--serve", metavar="[HOST:]PORT", help="live view in a browser at http://HOST:PORT/ (MJPEG "
                                                        "stream and statistics; host 127.0.0.1 unless given)")
    r.add_argument("--serve-token", help="viewers of --serve must give ?token=THIS (advised off this machine)")
    r.set_defaults(func=_cmd_run)

    bt = sub.add_parser("batch", help="fuse many recorded pairs into one video each; resumable; several workers "
                                      "or a Ray cluster")
    bt.add_argument("--manifest", help="CSV (with a header) or YAML list: a, b, optional output, calibration and "
                                       "SECTION.KEY settings per pair")
    bt.add_argument("--a", help="folder of first streams (videos or frame folders), paired by name with --b")
    bt.add_argument("--b", help="folder of second streams")
    bt.add_argument("--out", help="folder for the fused videos (with --manifest: default its folder)")
    bt.add_argument("--pipeline", help="YAML settings for every pair (see pipelines/); flags below override it")
    _fusion_flags(bt)
    bt.add_argument("--overlay", action="store_true", help="draw FPS and latency on the outputs (default off)")
    bt.add_argument("--side-by-side", action="store_true", default=None, help="write A | B | fused")
    bt.add_argument("--workers", type=POSITIVE, default=1, help="processes on this machine, one engine each, the CPU "
                                                          "cores split between them (default 1)")
    bt.add_argument("--ray", help="run on Ray instead: local (a Ray instance on this machine), auto (the cluster "
                                  "this machine belongs to) or an address (ray://HEAD:10001)")
    bt.add_argument("--ray-cpus", type=_number(float, 0.01), default=1.0, help="CPUs each Ray task asks for (default 1)")
    bt.add_argument("--ray-gpus", type=_number(float, 0.0), default=0.0, help="GPUs each Ray task asks for (default 0; 0.5 "
                                                               "puts two tasks on a GPU)")
    bt.add_argument("--report", help="JSON report path (default OUT/batch_report.json)")
    bt.set_defaults(func=_cmd_batch)

    c = sub.add_parser("calibrate", help="estimate the B->A registration of a camera pair and save it as YAML")
    c.add_argument("--a", required=True, help="camera A: index, video, URL, folder of frames or a still image")
    c.add_argument("--b", required=True, help="camera B, the one warped onto A")
    c.add_argument("-o", "--output", default="calibration.yaml", help="calibration YAML to write "
                                                                      "(default calibration.yaml; use with --register)")
    c.add_argument("--method", default="auto", choices=["auto", "ecc", "features", "chessboard", "circles"],
                   help="auto: cross-modal search, refinement and check (default); ecc, features: baselines; "
                        "chessboard, circles (an asymmetric circle grid): a board heated or cooled so both cameras "
                        "see it")
    c.add_argument("--model", default="homography", choices=["homography", "affine"],
                   help="homography (default: any rigid rig, scenes far away) or affine (fewer degrees of freedom)")
    c.add_argument("--board", default="9x6", type=_board, help="the board, COLSxROWS: a chessboard's inner corners, "
                                                               "or a circle grid's circles per row x rows (e.g. 4x11)")
    c.add_argument("--frames", type=POSITIVE, default=10, help="frame pairs to read; up to 5 spread over them are "
                                                         "estimated and combined (boards: every pair that shows it)")
    c.set_defaults(func=_cmd_calibrate)
    q = sub.add_parser("quantize", help="the network in int8 for the OpenVINO engine (NNCF post-training "
                                        "quantization on calibration pairs, with per-layer fallback)")
    q.add_argument("--task", required=True, choices=["ir-vis", "multi-focus", "multi-exposure"],
                   help="the task whose pairs calibrate (and whose shipped weights are quantized by default)")
    q.add_argument("--model", default="defusion_fast", help="variant (default defusion_fast)")
    q.add_argument("--weights", help="weight file (default: the shipped weights for the task)")
    q.add_argument("--a", action="append", help="calibration: folder of first sources or a video (repeatable)")
    q.add_argument("--b", action="append", help="the matching second sources: folder (same names) or video")
    q.add_argument("--data", action="append", help="multi-focus, multi-exposure: folder of photographs to make "
                                                   "synthetic pairs from (repeatable)")
    q.add_argument("--pairs", type=POSITIVE, default=300, help="calibration pairs in all (default 300; a fifth "
                                                              "validates)")
    q.add_argument("--max-drop", type=_number(float, 0.0), default=0.01,
                   help="largest loss of Qabf + VIF + MI/5 allowed on the validation pairs (default 0.01)")
    q.add_argument("--seed", type=_number(int, 0), default=0, help="choice of photographs (default 0)")
    q.add_argument("--out-dir", help="where the int8 network goes (default: the user cache, where the engine looks)")
    q.set_defaults(func=_cmd_quantize)
    b = sub.add_parser("bench", help="FPS of engines x precisions x sizes x batches, with telemetry, saved as JSON")
    b.add_argument("--device", default="auto", help="cpu | cuda | auto")
    b.add_argument("--engines", help="comma-separated: eager, torchscript, compile, export, onnx, tensorrt, openvino; "
                                    "ENGINE:PRECISION for one precision only (fp32 NCHW eager always runs as the "
                                    f"reference; default {','.join(BENCH_ENGINES)})")
    b.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16 (CUDA), int8 "
                                                            "(openvino)")
    b.add_argument("--sizes", default="256x256,640x480,1280x720", type=_sizes,
                   help="comma-separated capture sizes, WIDTHxHEIGHT")
    b.add_argument("--batch", default="1", type=_ints, help="comma-separated batch sizes")
    b.add_argument("--budget", type=_number(float, 0.01), default=8.0, help="timed seconds per configuration")
    b.add_argument("--model", help="model variant (defusion, defusion_fast, ...; default defusion, with --streams "
                                   "auto)")
    b.add_argument("--weights", help="weights (default: shipped)")
    b.add_argument("--e2e", help="A,B sources for the end-to-end run (default: the built-in scene at 640x480)")
    b.add_argument("--e2e-frames", type=POSITIVE, default=60, help="frames of the end-to-end runs (default 60)")
    b.add_argument("--e2e-methods", default="average", type=_names,
                   help="classical methods also run end to end: the pipeline's own cost without a network "
                        "(comma-separated; empty for none; default average)")
    b.add_argument("--out-dir", default="runs/bench", help="where results are saved, named by device (default "
                                                           "runs/bench; the project's are in benchmarks/results)")
    b.add_argument("--json", help="save to this file instead")
    b.add_argument("--readme", help="regenerate the performance table in this README from all saved results")
    b.add_argument("--report-only", action="store_true", help="only the plot and README table from saved results")
    b.add_argument("--profile", help="ENGINE:PRECISION (eager-nchw for the NCHW reference): profile one forward "
                                     "pass at the first --sizes entry and save the operator table")
    b.add_argument("--streams", type=_ints, help="N[,N...]: N copies of the --e2e pair (default: the built-in "
                                                 "scene) through one engine, aggregate and per-pair FPS, drops and "
                                                 "latency, beside the single-pair pipeline (only this runs)")
    b.add_argument("--paced", action="store_true", help="with --streams: play each copy at its frame rate, as live "
                                                        "cameras")
    b.set_defaults(func=_cmd_bench)
    w = sub.add_parser("web", help="the browser app: fuse a pair with its decomposition and metrics, the live "
                                   "view of a run, the saved benchmarks")
    w.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine "
                                                        "only; 0.0.0.0 for the network)")
    w.add_argument("--port", type=_number(int, 0, 65535), default=8080, help="port (default 8080; 0 picks a free one)")
    w.add_argument("--model", default="auto", help="the network loaded at start-up: auto (each task's default "
                                                  "variant) | defusion | defusion_fast (the page can pick others)")
    w.add_argument("--live", help="address of a run's live view (`run --serve`) for the /live page, e.g. "
                                  "http://127.0.0.1:8090/")
    w.add_argument("--results", default="benchmarks/results", help="folder of saved `bench` results for the "
                                                                   "/bench page (default benchmarks/results)")
    w.add_argument("--weights", help="weight file (default: the shipped weights for each task)")
    w.add_argument("--device", default="auto", help="cpu | cuda | auto (default)")
    w.add_argument("--precision", default="fp32", help="fp32 (default) | bf16 | fp16 (CUDA)")
    w.set_defaults(func=_cmd_web)
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
