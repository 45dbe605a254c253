"""The relocating linker/loader: lay a module's sections out as a kernel (or 2.4's insmod)
would (:mod:`lkm.link.layout`)."""
