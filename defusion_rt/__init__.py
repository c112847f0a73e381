"""defusion-rt: real-time two-stream image and video fusion with DeFusion (Liang et al., ECCV 2022)."""
__version__ = "0.1.0"
