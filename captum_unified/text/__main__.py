"""``python3 -m captum_unified.text``: measure the shipped text models (see :mod:`captum_unified.text.report`)."""

from captum_unified.text.report import main

main()
