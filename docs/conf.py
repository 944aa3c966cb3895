"""Sphinx configuration for the caclient documentation.

Build from the repository root with::

    python -m sphinx -W -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys

# autodoc imports caclient from this checkout, not from an installed copy.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import caclient

project = "caclient"
author = "caclient developers"
copyright = "caclient developers"
release = caclient.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
]

# Links to Python's and numpy's documentation.  The inventories are local
# files (docs/_inventories/make_inventories.py writes them) because the
# build runs without network access; the links point to the online docs.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", "_inventories/python.inv"),
    "numpy": ("https://numpy.org/doc/stable", "_inventories/numpy.inv"),
}

# Every cross-reference must resolve.
nitpicky = True
nitpick_ignore_regex = [
    # numpydoc's free-text type words ("int, optional", "number", ...)
    (r"py:.*", r"optional|number|numpy array|macros|data_type|data_count|automatic monitors|Event mask"),
    (r"py:.*", r"multiprocessing context|str to str|\{.*|.*\}|'\w+'|\(.*|.*\)"),
    (r"py:.*", r"coroutine( function)?|augmented value|a list|them|read|all_updates"),
    # caproto has no inventory here (no network): named, not linked.
    (r"py:class", r"caproto\..*"),
    # pyepics names that compat's docstrings mention but compat-api.rst
    # does not document (yet).
    (r"py:.*", r"(compat\.(ca\.|PV\.)?)?(chid_t|chid|IOENCODING|initial_context|libca|pend_io|pend_event|get_pv)"),
    (r"py:.*", r"char_value|caclient\.testing\.env"),
    # PV.subscribe's docstring (in caclient._pv) names Subscription.dropped,
    # which resolves only from the caclient namespace.
    (r"py:attr", r"Subscription\.dropped"),
    # Private engine classes that still appear in public signatures
    # (Context.broadcaster, Context.circuits, PV.circuit_manager, the IOC
    # handles' base class): internals of the circuit/context code, kept
    # for caproto compatibility; they are not documented as API.
    (r"py:class", r"caclient\._(udp\.UdpSearcher|circuit\.Circuit|closing\.ClosingContext)|Circuit"),
    # Docstrings of private modules that name other private objects.
    (r"py:.*", r"(caclient|compat)(\.\w+)*\._\w+.*|_\w+"),
]

# numpy-style docstrings only
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_preprocess_types = True
napoleon_type_aliases = {
    "callable": ":py:func:`callable`",
    "sequence": ":term:`sequence`",
    "iterable": ":term:`iterable`",
    "mapping": ":term:`mapping`",
    "path": ":term:`path-like object`",
    "numpy.ndarray": ":class:`numpy.ndarray`",
}

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
