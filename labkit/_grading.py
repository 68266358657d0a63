"""The grading machinery behind ``labkit.checks``: run a learner's function, compare it with a reference, and
turn a wrong answer into a hint when it matches a known mistake."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

__all__ = ["ExerciseError", "check_function"]

NOT_IMPLEMENTED = "not implemented yet: replace `raise NotImplementedError()` in your function with your code"


class ExerciseError(AssertionError):
    """An exercise check failed; the message says what is wrong and, when recognised, which mistake it is."""


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
        out = fn(*args)
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
