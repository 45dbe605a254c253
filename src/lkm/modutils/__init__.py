"""modutils 2.4's user-space tools as a library: insmod (linking in user space, arguments,
persistent data restored), rmmod (persistent data saved), over a 2.4 model kernel."""

__all__: list[str] = []
