"""Sphinx configuration for captum_unified."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "captum_unified"
author = "captum_unified developers"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "none"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
intersphinx_mapping = {}
nitpicky = False
suppress_warnings = ["ref.python"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
