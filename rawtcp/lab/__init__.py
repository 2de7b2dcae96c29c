"""The world around a connection: namespaces + veth, kernel listeners, the kernel's socket state.

Submodules are imported by name (``rawtcp.lab.topology``, ``rawtcp.lab.kstate``,
``rawtcp.lab.listener``); this package imports nothing so ``import rawtcp.cli`` stays cheap.
"""
