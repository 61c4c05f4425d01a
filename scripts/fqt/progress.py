"""Progress bars with an ETA (tqdm) for the long commands: train, infer, push, deploy,
export and device training.

A bar is drawn on stderr only when both stdout and stderr are terminals and the command
was not asked for --json; otherwise every call is a no-op, so piped or scripted runs print
nothing extra.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any


def enabled(json_output: bool = False) -> bool:
    """Whether bars are drawn: a terminal on stdout and stderr, and no --json."""
    if json_output:
        return False
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Bar:
    """A tqdm bar, or nothing when disabled. Use as a context manager."""

    def __init__(self, total: int, desc: str, unit: str = "it", *, show: bool = True) -> None:
        self.total = total
        self.done = 0
        self._bar: Any = None
        if show:
            from tqdm import tqdm

            scale = unit == "B"
            self._bar = tqdm(
                total=total, desc=desc, unit=unit, unit_scale=scale, leave=False, dynamic_ncols=True
            )

    def update_to(self, done: int, total: int | None = None, **postfix: object) -> None:
        """Move the bar to `done` (of `total`, when the total changed)."""
        if self._bar is None:
            self.done = done
            return
        if total is not None and total != self._bar.total:
            self._bar.total = total
        if postfix:
            self._bar.set_postfix({k: str(v) for k, v in postfix.items()}, refresh=False)
        self._bar.update(done - self.done)
        self.done = done

    def callback(self) -> Callable[[int, int], None]:
        """A (done, total) callback, the shape fqt.device's transfers report."""
        return lambda done, total: self.update_to(done, total)

    def write(self, line: str) -> None:
        """Print a line above the bar (or plainly when there is none)."""
        if self._bar is None:
            print(line)
        else:
            self._bar.write(line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def bar(total: int, desc: str, unit: str = "it", json_output: bool = False) -> Bar:
    return Bar(total, desc, unit, show=enabled(json_output))
