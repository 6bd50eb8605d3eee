"""Bridges to other libraries, each an optional extra imported on demand.

* :mod:`captum_unified.integrations.inseq` — importing it registers this
  package's methods with `inseq <https://github.com/inseq-team/inseq>`_
  (``pip install 'captum_unified[inseq]'``).

Nothing here is imported by ``import captum_unified``.
"""
