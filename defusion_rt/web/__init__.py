"""`defusion-rt web`: the browser app (app.py), what it shows for a pair (analysis.py), its example pairs
(examples.py) and pages (pages.py). The live view of a running pipeline is served by the run itself
(render/serve.py); the app's /live page shows it."""
from .app import Engines, make_handler, serve

__all__ = ["Engines", "make_handler", "serve"]
