"""Fusing image pairs: task conventions, padding and an engine; `defusion-rt fuse` calls `fuse_paths`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from .engines.base import Engine
from .engines.padding import crop, pad
from .errors import UserError
from .imageio import IMAGE_EXTS, list_images, read_image, write_image
from .model import VARIANTS
from .tasks import check_task, match_sizes, network_inputs, network_output


def to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    """HxWx3 float image -> 1x3xHxW tensor on device."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(device)


def to_image(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).float().cpu().numpy()


class Fuser:
    """An engine plus a task's conventions and the inference padding: what turns two sources into one."""

    def __init__(self, engine: Engine, task: str = "ir-vis", colour: bool = False):
        self.engine, self.task, self.colour = engine, check_task(task), colour
        # The padding rules travel with the variant (registry): reflect pad_px, then up to a multiple.
        facts = VARIANTS.get(getattr(getattr(engine, "model", None), "variant", "defusion"), VARIANTS["defusion"])
        self.pad_px, self.multiple = facts["pad"], facts["multiple"]

    def fuse_tensors(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Bx3xHxW float [0,1] on the engine's device -> fused Bx3xHxW float [0,1]."""
        na, nb = network_inputs(a, b, self.task)
        if self.engine.needs_padding:
            grey = na.shape[1] == 3 and na.stride(1) == 0  # ir-vis: one grey channel expanded to three
            (pa, box), (pb, _) = (pad(x[:, :1] if grey else x, self.pad_px, self.multiple) for x in (na, nb))
            if grey:  # padding one channel instead of three: a third of the copies
                pa, pb = pa.expand(-1, 3, -1, -1), pb.expand(-1, 3, -1, -1)
            fused = crop(self.engine(pa, pb), box)
        else:
            fused = self.engine(na, nb)
        return network_output(fused, self.task, visible=b, colour=self.colour)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Two HxWx3 float images -> the fused HxWx3 float image."""
        dev = self.engine.device
        return to_image(self.fuse_tensors(to_tensor(a, dev), to_tensor(b, dev)))


@torch.inference_mode()
def decompose(model, a: np.ndarray, b: np.ndarray, task: str, device: torch.device, pad_px: int = 16) -> dict:
    """Common, unique and fused images of a pair (fp32 eager), for looking at what the network separated."""
    na, nb = network_inputs(to_tensor(a, device), to_tensor(b, device), task)
    (ta, box), (tb, _) = pad(na, pad_px), pad(nb, pad_px)
    out = model.to(device)(ta, tb)
    return {k: to_image(crop(v, box).clamp(0, 1)) for k, v in out._asdict().items()}


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
