"""Fusing image files: two images into one, or two folders paired by name (`defusion-rt fuse`)."""
from __future__ import annotations

from pathlib import Path

from rich.progress import Progress

from ..errors import UserError
from ..imageio import IMAGE_EXTS, list_images, read_image, write_image
from ..tasks import match_sizes
from .fuser import Fuser, decompose


def pair_folders(dir_a: Path, dir_b: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files of two folders paired by name stem; returns the pairs and the names found in one folder only."""
    fa = {p.stem: p for p in list_images(dir_a)}
    fb = {p.stem: p for p in list_images(dir_b)}
    pairs = [(fa[k], fb[k]) for k in sorted(fa.keys() & fb.keys())]
    unpaired = sorted(fa.keys() ^ fb.keys())
    return pairs, unpaired


def _fuse_one(fuser: Fuser, pa: Path, pb: Path, out: Path, resize: bool, model=None) -> None:
    a = read_image(pa)
    b = match_sizes(a, read_image(pb), resize, (str(pa), str(pb)))
    write_image(out, fuser(a, b))
    if model is not None:
        for name, img in decompose(model, a, b, fuser.task, fuser.engine.device, fuser.pad_px).items():
            if name != "fused":
                write_image(out.with_name(f"{out.stem}_{name}{out.suffix}"), img)


def fuse_paths(fuser: Fuser, a: Path, b: Path, out: Path, resize: bool = False, model=None) -> list[Path]:
    """Two images -> one file; two folders -> a folder of fused files named like the inputs."""
    a, b, out = Path(a), Path(b), Path(out)
    for p in (a, b):
        if not p.exists():
            raise UserError(f"input not found: {p}")
    if a.is_dir() != b.is_dir():
        raise UserError("give two images or two folders, not one of each")
    if a.is_file():
        if out.suffix.lower() not in IMAGE_EXTS:
            raise UserError(f"output {out} needs an image extension (.png, .jpg, ...)")
        _fuse_one(fuser, a, b, out, resize, model)
        return [out]
    pairs, unpaired = pair_folders(a, b)
    if not pairs:
        raise UserError(f"no file names in common between {a} and {b}; pairs are matched by name")
    if unpaired:
        print(f"warning: {len(unpaired)} file(s) have no partner and are skipped, e.g. {unpaired[0]}")
    written = []
    with Progress() as progress:
        task = progress.add_task("fusing", total=len(pairs))
        for pa, pb in pairs:
            target = out / f"{pa.stem}.png"
            try:
                _fuse_one(fuser, pa, pb, target, resize, model)
                written.append(target)
            except UserError as err:  # one bad pair does not stop the folder
                progress.console.print(f"skipped {pa.name}: {err}")
            progress.advance(task)
    return written
