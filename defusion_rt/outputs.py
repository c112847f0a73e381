"""Every output a command writes is checked here before any work starts, so an unwritable path costs one line and
exit 2 at once, not a traceback after minutes of fusing, scoring, training or measuring. Writes that fail later
(a disk that fills up) go through `written()` and are one line too; what was complete stays."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError


def _cannot(what: str, path: Path, err: OSError) -> UserError:
    return UserError(f"cannot write {what} {path}: {err.strerror or err}; choose a writable path")


def check_folder(path: str | Path, what: str = "output folder") -> Path:
    """A folder the command will write into: made now (with its parents) and probed with a file."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".defusion-rt-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise _cannot(what, path, err) from None
    return path


@contextmanager
def checked_folder(path: str | Path, what: str = "output folder"):
    """check_folder for a command that may still stop on a user's mistake (a missing input, a corrupt file): a
    folder it made and left empty is removed again, so a mistake leaves nothing behind."""
    path = Path(path)
    made = not path.exists()
    folder = check_folder(path, what)
    try:
        yield folder
    except UserError:
        if made and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


def check_file(path: str | Path, what: str = "output file") -> Path:
    """A file the command will write: its folder is made, and the file opened for appending (an existing one is
    left as it was, a new one is removed again)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
        if not existed:
            path.unlink()
    except OSError as err:
        raise _cannot(what, path, err) from None
    return path


@contextmanager
def written(path: str | Path, what: str = "output file"):
    """Turns a write that fails midway (disk full, folder removed) into one line naming the file."""
    try:
        yield
    except OSError as err:
        raise _cannot(what, Path(path), err) from None


def check_outputs(**outputs) -> None:
    """check_outputs(json=path_or_None, sheet=..., ...): every given file, named by its flag."""
    for flag, path in outputs.items():
        if path:
            check_file(path, f"--{flag.replace('_', '-')}")
