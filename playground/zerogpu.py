"""ZeroGPU: a Space whose GPU is lent per call to a function decorated with `spaces.GPU`.

What the `spaces` package (0.51.3) does, and so what the playground does on ZeroGPU:
- `import spaces` patches torch in the app's process (CUDA calls are emulated there; the patch is entered
  on the importing thread only), so it is imported from `activate`, on the main thread, before any model;
- a decorated call runs in a forked process holding the GPU: the model must be loaded in the main process
  before (the fork inherits it), its arguments and what it yields are pickled, and the decorated function
  must be a plain function or a synchronous generator function (an `async def` raises NotImplementedError);
- off ZeroGPU `spaces.GPU` returns the function unchanged, and so does `gpu` here when `spaces` is not
  installed (nothing here has a ZeroGPU: only that no-op path runs on our machines).

The platform sets SPACES_ZERO_GPU (read in settings.py as `settings.zerogpu`).
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Iterator[Any]])

_active = False
DURATION_S = 120  # seconds of GPU a call may take (the docs' default is 60: a long answer needs more)


def activate(enabled: bool) -> None:
    """Turn the ZeroGPU path on for this process (AppContext does, when settings.zerogpu); imports
    `spaces` now, on the calling (main) thread, so that its torch patch is in place before any model."""
    global _active
    _active = enabled
    if not enabled:
        return
    if threading.current_thread() is not threading.main_thread():
        log.warning("ZeroGPU activated outside the main thread: spaces' torch patch may not apply to models")
    try:
        import spaces  # noqa: F401  (patches torch on ZeroGPU)
    except ImportError:
        log.warning(
            "SPACES_ZERO_GPU is set but the `spaces` package is not installed: generation runs without a GPU"
        )


def active() -> bool:
    return _active


def gpu(fn: F, *, enabled: bool | None = None, duration: int = DURATION_S) -> F:
    """`spaces.GPU(fn)` on ZeroGPU (when `spaces` is importable), else `fn` unchanged.

    `fn` must be a synchronous generator function yielding picklable items: the decorated call runs in a
    forked process and streams them back."""
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise NotImplementedError(f"{fn.__name__}: ZeroGPU runs synchronous functions only, not async def")
    if not inspect.isgeneratorfunction(fn):
        raise TypeError(f"{fn.__name__}: give a generator function (it yields picklable items)")
    if not (_active if enabled is None else enabled):
        return cast(F, fn)
    try:
        import spaces
    except ImportError:
        return cast(F, fn)
    return cast(F, spaces.GPU(fn, duration=duration))
