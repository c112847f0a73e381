from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared(*parts: str) -> Path:
    """A path in ../shared/data; the test skips, saying why, where the data are absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared test data at {path} (absent in this checkout)")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_model():
    """A random-weight quarter-width network: fast, same topology as the real one."""
    from defusion_rt.model import DeFusion, DeFusionConfig
    import torch
    torch.manual_seed(0)
    return DeFusion(DeFusionConfig(width=0.25)).eval()


@pytest.fixture
def image_folder(tmp_path, rng):
    """A folder of small training images: colour PNG, grey JPEG in a subfolder, BMP, and one corrupt file."""
    import cv2
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(folder / f"c{i}.png"), (rng.random((48, 64, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "sub" / "g.jpg"), (rng.random((40, 40)) * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "b.bmp"), (rng.random((50, 60, 3)) * 255).astype(np.uint8))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def count_frames(path) -> int:
    """Frames a video file decodes to (a recording's real length, whatever its header says)."""
    import cv2
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n
