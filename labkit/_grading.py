"""The grading machinery behind ``labkit.checks``: run a learner's function, compare it with a reference, and
turn a wrong answer into a hint when it matches a known mistake.

A check cannot be passed by handing labkit's own answer back. Each check lists, with ``@refuses(...)`` on its
definition, the labkit functions that compute what its exercise asks for (its reference and the other labkit
functions that compute the same thing). While the learner's function runs, and only then (the reference still
runs normally to compute the expected value), running any of them fails the check with ``ExerciseError``:
when the learner's function *is* one (or a ``functools.partial`` of one), calls one as ``lk.<name>``, by its
module path or by a name imported before the check, or calls another labkit function that calls one inside.
The check watches which code runs (``sys.setprofile`` on the learner's thread, during the learner's call only,
then restored): nothing in labkit is patched, so names imported earlier are caught too. Torch, and every
labkit function a check does not list (validation helpers, ``lk.lm.Generations``, ...), stay allowed.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from . import lm, losses, metrics, multiteacher

__all__ = ["DIVERGENCES", "ExerciseError", "check_function", "refuses"]

NOT_IMPLEMENTED = "not implemented yet: replace `raise NotImplementedError()` in your function with your code"


class ExerciseError(AssertionError):
    """An exercise check failed; the message says what is wrong and, when recognised, which mistake it is."""


# --------------------------------------------------------------- labkit's own answers, refused to the learner
# for the running check: id(code object) -> (its public name, the code object, to compare identities)
_REFUSED: contextvars.ContextVar[dict[int, tuple[str, types.CodeType]] | None]
_REFUSED = contextvars.ContextVar("labkit_refused", default=None)


DIVERGENCES: tuple[Callable, ...] = (
    losses.kd_kl_loss,
    losses._kl_rows,  # inside kd_kl_loss and per_teacher_kl
    multiteacher.per_teacher_kl,
    metrics.kl_to_teacher,
    lm.token_kl,
    lm.generalized_jsd,
    lm.topk_kl,
    lm._kl_rows,  # inside token_kl, generalized_jsd, topk_kl and sample_divergence
)
"""labkit's KL divergences, refused by every exercise that asks for a KL (``@refuses(ref, *DIVERGENCES)``):
there the learner writes the divergence with torch (``F.kl_div``, or the sum), not with labkit's."""


def _public_name(module: str, qualname: str) -> str:
    """How a learner reaches ``module.qualname``: ``lk.kd_kl_loss`` when ``labkit`` re-exports it, else the
    module path (``lk.lm.token_kl``, ``lk.multiteacher.AccuracyWeights``)."""
    import labkit

    head = qualname.split(".")[0]
    mod = sys.modules.get(module)
    if mod is not None and head in vars(labkit) and vars(labkit)[head] is getattr(mod, head, None):
        return f"lk.{qualname}"
    return f"lk.{module.removeprefix('labkit.')}.{qualname}" if module.startswith("labkit.") else qualname


def _codes(ref: Any) -> list[types.CodeType]:
    """The code objects that run when ``ref`` is used: a function's own (decorators unwrapped), every method
    of a class (``__init__``, ``forward``, properties, ...)."""
    if isinstance(ref, type):
        out = []
        for value in vars(ref).values():
            value = value.fget if isinstance(value, property) else value
            value = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if inspect.isfunction(value):
                out += _codes(value)
        return out
    code = getattr(inspect.unwrap(ref), "__code__", None)
    return [code] if isinstance(code, types.CodeType) else []


def refuses(*references: Callable) -> Callable[[Callable], Callable]:
    """Decorate a check: while the learner's function runs, using any of ``references`` fails the check.

    ``references`` are labkit functions (or classes) that compute what the exercise asks the learner to write:
    the check's reference and every other labkit function that computes the same thing. Wrappers need not be
    listed: a labkit function that calls a listed one inside is refused with it. The decorated check keeps the
    list as ``check.refuses``; ``check.__wrapped__`` is the check without the refusal (for tests).
    """
    if not references:
        raise ValueError("refuses() needs at least one labkit function: the reference of the check.")
    for ref in references:
        if not _codes(ref):
            raise TypeError(f"refuses() takes Python functions or classes, got {ref!r}.")

    def decorate(check: Callable) -> Callable:
        @functools.wraps(check)
        def guarded(fn: Callable) -> None:
            # resolved at every call: a module reloaded in place (IPython's autoreload) swaps the code objects
            refused = {
                id(code): (_public_name(ref.__module__, ref.__qualname__), code)
                for ref in references
                for code in _codes(ref)
            }
            token = _REFUSED.set(refused)
            try:
                return check(fn)
            finally:
                _REFUSED.reset(token)

        guarded.refuses = references  # type: ignore[attr-defined]
        return guarded

    return decorate


def _refusal(name: str, used: str, via: str | None = None, itself: bool = False) -> ExerciseError:
    """``used``: the refused function that ran; ``via``: the labkit function the learner called to get there;
    ``itself``: the learner's function is that labkit function."""
    verb = "is" if itself else "calls"
    if via and via != used:
        what = (
            f"{via}, which calls {used}, labkit's computation of the answer (or part of it) that this check "
            "compares with"
        )
    else:
        what = f"{used}, which computes the answer (or part of it) that this check compares with"
    return ExerciseError(
        f"{name}: your function {verb} labkit's own {what}. Write the computation yourself with torch "
        "(torch and torch.nn.functional are fine)."
    )


def _target(fn: Any) -> Any:
    """What calling ``fn`` runs first: through ``functools.partial`` and bound methods to the function."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__func__", fn)


def _restore_profile(previous: Any) -> None:
    if previous is None or callable(previous):
        sys.setprofile(previous)
    elif callable(getattr(previous, "enable", None)):  # a C profiler (cProfile): it reinstalls itself
        previous.enable()
    else:
        sys.setprofile(None)


def _run_learner(name: str, fn: Callable, args: Sequence[Any]) -> Any:
    """``fn(*args)``; raises the refusal when ``fn`` used one of the running check's refused functions.

    The profile hook (``sys.setprofile``) is this thread's only while ``fn`` runs, then the previous one is back:
    a Python profile function installed before still gets every event, a C profiler (cProfile) pauses."""
    refused = _REFUSED.get()
    if not refused:
        return fn(*args)
    target = _target(fn)  # the learner passed labkit's function itself (even one its arguments do not fit)
    for code in _codes(target) if inspect.isfunction(target) or isinstance(target, type) else []:
        if refused.get(id(code), (None, None))[1] is code:
            raise _refusal(name, refused[id(code)][0], itself=True)
    hits: list[tuple[str, str | None, bool]] = []
    guard = sys._getframe()  # this frame: the learner's calls happen below it

    def profile(frame: types.FrameType, event: str, arg: Any) -> None:
        if chained is not None:
            chained(frame, event, arg)
        if event != "call" or hits:
            return
        entry = refused.get(id(frame.f_code))
        if entry is None or entry[1] is not frame.f_code:
            return
        outer, f = None, frame.f_back  # the outermost labkit function between the learner and this call
        while f is not None and f is not guard:
            if f.f_globals.get("__name__", "").startswith("labkit."):
                outer = f
            f = f.f_back
        via, itself = None, False
        if outer is not None:
            code = outer.f_code
            via = _public_name(outer.f_globals["__name__"], getattr(code, "co_qualname", code.co_name))
            itself = outer.f_back is guard  # the learner's function is that labkit function
        hits.append((entry[0], via, itself))

    previous = sys.getprofile()
    chained = previous if callable(previous) else None  # a Python profiler keeps its events; cProfile pauses
    sys.setprofile(profile)
    try:
        out = fn(*args)
    except Exception:
        if hits:  # the refusal is the message, whatever went wrong after it
            raise _refusal(name, *hits[0]) from None
        raise
    finally:
        _restore_profile(previous)
    if hits:  # even when the learner's function caught an error of labkit's function
        raise _refusal(name, *hits[0])
    return out


def _close(a: Any, b: torch.Tensor, tol: float) -> bool:
    try:
        a = torch.as_tensor(a.detach() if torch.is_tensor(a) else a, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):  # not a number or tensor at all
        return False
    return a.shape == b.shape and bool(
        torch.allclose(a, b.detach().float(), atol=tol, rtol=1e-4, equal_nan=True)
    )


def _call(name: str, fn: Callable, args: Sequence[Any]) -> Any:
    if not callable(fn):
        raise ExerciseError(
            f"{name}: pass your function itself (e.g. check(my_fn)), got {type(fn).__name__}."
        )
    try:
        out = _run_learner(name, fn, args)
    except NotImplementedError:
        raise ExerciseError(f"{name}: {NOT_IMPLEMENTED}.") from None
    if out is None or out is Ellipsis:
        raise ExerciseError(f"{name}: your function returned {out!r}; did you forget the `return`?")
    return out


def check_function(
    name: str,
    fn: Callable,
    reference: Callable,
    cases: Sequence[tuple],
    mistakes: Mapping[str, Callable] | None = None,
    tol: float = 1e-4,
    scalar: bool = False,
    grad_arg: int | None = None,
) -> None:
    """Compare ``fn(*case)`` with ``reference(*case)`` on every case; raise ``ExerciseError`` with a hint.

    ``mistakes`` maps a hint to a function computing what a known mistake returns on the same case: when the
    learner's output matches it, the hint is the message. ``scalar`` requires a 0-dim tensor (a loss);
    ``grad_arg`` is the index of an argument the result must stay differentiable with respect to.
    """
    for i, case in enumerate(cases):
        args = [
            a.clone().requires_grad_(j == grad_arg) if torch.is_tensor(a) else a for j, a in enumerate(case)
        ]
        out = _call(name, fn, args)
        expected = reference(*case)
        if torch.is_tensor(expected) and not torch.is_tensor(out):
            raise ExerciseError(f"{name}: return a torch.Tensor, got {type(out).__name__}.")
        if scalar and out.dim() != 0:
            raise ExerciseError(
                f"{name}: a loss is one number (a 0-dim tensor), got shape {tuple(out.shape)}; "
                "reduce over the batch (reduction='batchmean' or .mean())."
            )
        if grad_arg is not None and not out.requires_grad:
            raise ExerciseError(
                f"{name}: the result has no gradient with respect to argument {grad_arg}: "
                "do not detach it, call .item() or wrap it in torch.no_grad()."
            )
        if _close(out, torch.as_tensor(expected), tol):
            continue
        for hint, mistake in (mistakes or {}).items():
            if _close(out, torch.as_tensor(mistake(*case)), tol):
                raise ExerciseError(f"{name}: {hint} (case {i + 1} of {len(cases)}).")
        shape, want = tuple(getattr(out, "shape", ())), tuple(torch.as_tensor(expected).shape)
        detail = f"shape {shape}, expected {want}" if shape != want else "values differ from the reference"
        raise ExerciseError(f"{name}: wrong result on case {i + 1} of {len(cases)}: {detail}.")
    print(f"OK  {name}: matches the reference on {len(cases)} case{'s' if len(cases) > 1 else ''}")
