"""Small jobs for exercising the job layer in tests (real RQ, real workers)."""

from __future__ import annotations

import time

from backend.errors import ValidationFailed
from jobs.base import job, progress


@job
def count_to(n: int, pause: float = 0.0) -> dict[str, int]:
    """Count to `n`, reporting progress at each step."""
    for i in range(1, n + 1):
        if pause:
            time.sleep(pause)
        progress(i, n, f"step {i}")
    return {"counted": n}


@job
def explode(message: str) -> None:
    """Fail with `message`."""
    raise ValueError(message)


@job
def refuse(message: str) -> None:
    """Fail with a domain error (its message is what users see)."""
    raise ValidationFailed(message)


class Unloadable:
    """A value that pickles but cannot be unpickled again."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (_refuse_to_load, ())


def _refuse_to_load() -> None:
    raise RuntimeError("this value cannot be loaded")


@job
def return_unloadable() -> Unloadable:
    """Succeed with a result nobody can load back."""
    return Unloadable()
