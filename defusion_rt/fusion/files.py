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


def _fuse_one(fuser: Fuser, pa: Path, pb: Path, resize: bool, model=None) -> dict[str, object]:
    """The fused image (and the decomposition when `model` is given) of one pair, by name."""
    a = read_image(pa)
    b = match_sizes(a, read_image(pb), resize, (str(pa), str(pb)))
    parts = decompose(model, a, b, fuser.task, fuser.engine.device, fuser.pad_px) if model is not None else {}
    return parts | {"fused": fuser(a, b)}  # the fused image as the engine makes it (colour, precision)


def _write(images: dict, out: Path) -> None:
    """A failed write is the whole command's error (the next would fail too), not one pair's."""
    for name, img in images.items():
        write_image(out if name == "fused" else out.with_name(f"{out.stem}_{name}{out.suffix}"), img)


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
        _write(_fuse_one(fuser, a, b, resize, model), out)
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
                images = _fuse_one(fuser, pa, pb, resize, model)
            except UserError as err:  # one unreadable or mismatched pair does not stop the folder
                progress.console.print(f"skipped {pa.name}: {err}")
            else:
                _write(images, target)
                written.append(target)
            progress.advance(task)
    return written
