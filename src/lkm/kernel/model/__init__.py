"""The model kernel
================

A persistent kernel whose module table lives in SQLite, split as Linux splits
``kernel/module/``:

* :mod:`~lkm.kernel.model.kernel` -- :class:`ModelKernel`, the facade: the :class:`Kernel`
  interface and the model's sysctls; it picks its design (today's loader or 2.4's system
  calls) once, when it is opened;
* :mod:`~lkm.kernel.model.store` -- every statement on the state's tables, as typed rows, over
  :mod:`~lkm.kernel.model.state` (the SQLite file: schema, transactions, boot's atomic rename);
* :mod:`~lkm.kernel.model.load` -- ``load_module`` as kernel/module/main.c's named steps over
  one :class:`~lkm.kernel.model.load.LoadInfo`;
* :mod:`~lkm.kernel.model.load24` -- 2.4's create_module / init_module / query_module /
  delete_module / get_kernel_syms (kernel/module.c of 2.4.20), with
  :mod:`~lkm.kernel.model.struct24` its structures in memory;
* :mod:`~lkm.kernel.model.kmod` -- request_module (kernel/module/kmod.c), modprobe injected;
* :mod:`~lkm.kernel.model.procfs`, :mod:`~lkm.kernel.model.integrity`,
  :mod:`~lkm.kernel.model.vmalloc`, :mod:`~lkm.kernel.model.profile` -- /proc files, the
  state's consistency check, module memory, and the profiles a model boots from.
"""

from __future__ import annotations

from lkm.kernel.model.kernel import Area, ModelKernel

__all__ = ["Area", "ModelKernel"]
