"""Where the project's bundled files live (rulesets, sample data).

In a source checkout (the supported install, `pip install -e .`) they sit beside the
package. `$HCODE_RULESETS` points elsewhere, e.g. at a province's own rule repository.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rulesets_dir() -> Path:
    return Path(os.environ.get("HCODE_RULESETS") or ROOT / "rulesets")


def sample_data_dir() -> Path:
    return ROOT / "sample_data"
