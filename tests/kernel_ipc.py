"""Notebook kernels for the test suite over IPC (Unix sockets in a fresh folder) instead of TCP ports.

``make test`` runs on two pytest-xdist workers, so two kernels often start at once. Over TCP, jupyter_client picks
each kernel's five ports by binding port 0 and releasing it before the kernel binds them, and two processes doing
that at the same moment can be handed the same port (a known race: papermill#511, nbmake#129): a kernel then fails
to start or, worse, a client waits for replies that go elsewhere, until pytest's timeout. Unix sockets named by a
folder that only this kernel uses cannot collide.

Used by ``conftest.execute_notebook`` (papermill) and, as a pytest plugin (``-p kernel_ipc``), by the nbval
subprocesses, whose kernels nbval starts itself.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def ipc_address() -> str:
    """An absolute socket-name prefix in a new folder (removed at exit): the kernel's sockets are
    ``<prefix>-1`` ... ``<prefix>-5``. Absolute, because the kernel runs in the notebook's folder and the client
    in the caller's."""
    folder = tempfile.mkdtemp(prefix="kdlab-kernel-")
    atexit.register(shutil.rmtree, folder, True)
    return str(Path(folder) / "k")


def ipc_config():
    """Config for a ``NotebookClient`` (papermill passes it through) whose kernel manager uses IPC."""
    from traitlets.config import Config

    cfg = Config()
    cfg.KernelManager.transport = "ipc"
    cfg.KernelManager.ip = ipc_address()
    return cfg


def pytest_configure(config):
    """As a plugin of an nbval run: nbval builds its ``KernelManager`` itself, without a config, so the name its
    ``start_new_kernel`` looks up is pointed at a subclass that sets the transport and a fresh address."""
    import nbval.kernel as nbk
    from jupyter_client.manager import KernelManager

    class IPCKernelManager(KernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", ip=ipc_address(), **kwargs)

    nbk.KernelManager = IPCKernelManager
