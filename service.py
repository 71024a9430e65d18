"""The entry point `bentoml build` packs (bentofile.yaml: `service: "service:PolicyService"`).

Inside a bento the package sits at src/rlship of the bento's own src folder, not on the import path; this shim
puts it there. Anywhere else use the package's own path: `bentoml serve rlship.serving.service:PolicyService`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from rlship.serving.service import PolicyService

__all__ = ["PolicyService"]
