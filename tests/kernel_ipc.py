"""Notebook kernels for the test suite over IPC (Unix sockets in a fresh folder) instead of TCP ports.

``make test`` runs on two pytest-xdist workers, so two kernels often start at once. Over TCP, jupyter_client picks
each kernel's five ports by binding port 0 and releasing it before the kernel binds them, and two processes doing
that at the same moment can be handed the same port (a known race: papermill#511, nbmake#129). Unix sockets named
by a folder that only this kernel uses cannot collide. A safeguard: the hang CI saw was not this race but a widget
(labkit/widgets.py, ``_show``).

``patch()`` applies it to every kernel a process starts: conftest calls it for the papermill runs, the nbval
subprocesses load this module as a pytest plugin (``-p kernel_ipc``), the otter-grader runs call it before otter's
CLI; ``env()`` is the environment that lets those subprocesses import it.
"""

from __future__ import annotations

import atexit
import os
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


def env(**extra: str) -> dict[str, str]:
    """This process's environment plus ``extra``, with tests/ on ``PYTHONPATH``: a subprocess can then load
    this module (``-p kernel_ipc``, ``import kernel_ipc``)."""
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, **extra, PYTHONPATH=path)


def patch() -> None:
    """Every ``jupyter_client`` kernel manager made in this process from now on uses IPC at a fresh address
    (unless its caller sets ``transport`` or ``ip``): for the kernels that nbval and otter-grader start
    themselves, with no config to pass."""
    from jupyter_client.manager import KernelManager

    if getattr(KernelManager.__init__, "ipc_patched", False):
        return
    plain = KernelManager.__init__

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("transport", "ipc")
        kwargs.setdefault("ip", ipc_address())
        plain(self, *args, **kwargs)

    __init__.ipc_patched = True
    KernelManager.__init__ = __init__


def pytest_configure(config):
    """As a plugin of an nbval run (``-p kernel_ipc``): nbval's kernels over IPC."""
    patch()
