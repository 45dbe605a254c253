"""Kernel oops reports: parse them (2.4 to 6.12, x86_64, i386 and arm64), symbolise their
addresses as the kernel's ``%pS`` does, add source lines from DWARF and disassemble their
``Code:`` bytes.

Submodules: :mod:`lkm.oops.report` (the parser), :mod:`lkm.oops.modmap` (where modules and
their sections lie: /proc/modules + /sys/module snapshots, a Kernel, 2.4 ``__insmod``
symbols), :mod:`lkm.oops.symbolize` (addresses <-> ``sym+off/size [mod]``),
:mod:`lkm.oops.lines` (DWARF file:line with inlined frames), :mod:`lkm.oops.code`
(disassembly) and :mod:`lkm.oops.decode` (everything applied to a report, in ksymoops,
decode_stacktrace.sh or JSON form).
"""

__all__: list[str] = []
