"""Trust: what a kernel checks before it accepts a module's code.

Submodules are imported by their full path; this package file imports nothing, so that a
tool pays only for the checks it runs (and ``cryptography``, the ``trust`` extra, is imported
only where a signature is verified or made):

- :mod:`lkm.trust.sig` -- module_sig_check (kernel/module/signing.c): the appended PKCS#7
  signature verified against the kernel's keyrings, with the errno a kernel returns;
  sign-file's signing.
- :mod:`lkm.trust.keys`, :mod:`lkm.trust.pkcs7`, :mod:`lkm.trust.asn1` -- X.509 keys (a
  kernel image's built-in ones included), PKCS#7 SignedData, the DER reader under both.
- :mod:`lkm.trust.compat` -- would modules built for one kernel load into another, and why
  (vermagic, CRCs, GPL-only and namespaces, signatures; RHEL's weak-modules).
- :mod:`lkm.trust.btf` -- btf_parse_module's checks of a module's .BTF.
"""

__all__: list[str] = []
