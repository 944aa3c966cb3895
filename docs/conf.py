"""Sphinx configuration for the caclient documentation.

Build from the repository root with::

    python -m sphinx -W -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys

# autodoc imports caclient from this checkout, not from an installed copy.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import caclient  # noqa: E402

project = "caclient"
author = "caclient developers"
copyright = "caclient developers"
release = caclient.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

# numpy-style docstrings only
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_typehints_format = "short"
autodoc_default_options = {
    "members": True,
}


templates_path: list[str] = []
exclude_patterns = ["_build"]

html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Threaded EPICS Channel Access client in pure Python",
    "fixed_sidebar": True,
}
