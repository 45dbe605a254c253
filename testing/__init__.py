"""Test infrastructure outside the product package: the real-module corpus (Debian kernel
packages fetched with apt by ``scripts/fetch_corpus.py``), QEMU guests booted from it, and the
captures made from those guests.  Used by ``tests/``, ``scripts/`` and ``bench/``; the ``lkm``
library never imports it.
"""
