"""Progress of a sweep on stderr: a bar with an ETA on a terminal, a line per point in a log,
nothing when quiet. The ETA starts from the plan's rough estimates and rescales them by how long
the finished points really took."""
from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(self, estimates: list[float], quiet: bool = False, stream=sys.stderr):
        self.total_est, self.left_est = sum(estimates), sum(estimates)
        self.count, self.done = len(estimates), 0
        self.quiet, self.stream = quiet, stream
        self.spent = 0.0          # seconds the finished points took
        self.spent_est = 0.0      # what the plan estimated for them
        self.bar = None
        if not quiet and stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=round(self.total_est), file=stream, unit="s", dynamic_ncols=True,
                            bar_format="{desc} |{bar}| {percentage:3.0f}% [{elapsed} < {postfix}]")
            self.bar.set_postfix_str("?", refresh=False)

    def scale(self) -> float:
        return self.spent / self.spent_est if self.spent_est > 0 else 1.0

    def eta(self) -> float:
        return self.left_est * self.scale()

    def start(self, label: str, estimate: float) -> None:
        self.current, self.current_est, self.t0 = label, estimate, time.monotonic()
        if self.bar:
            self.bar.set_description_str(f"[{self.done + 1}/{self.count}] {label}", refresh=False)
            self.bar.set_postfix_str(_clock(self.eta()))

    def tick(self) -> None:
        """While a point runs: move the bar within its estimate, never past it."""
        if self.bar:
            inside = min(time.monotonic() - self.t0, self.current_est * self.scale())
            base = self.total_est - self.left_est
            target = round(base + inside / self.scale())
            if target > self.bar.n:
                self.bar.update(target - self.bar.n)
            self.bar.set_postfix_str(_clock(self.eta() - inside))

    def finish(self, outcome: str) -> None:
        took = time.monotonic() - self.t0
        self.done += 1
        self.spent += took
        self.spent_est += self.current_est
        self.left_est -= self.current_est
        if self.bar:
            self.bar.update(round(self.total_est - self.left_est) - self.bar.n)
            self.bar.write(f"  [{self.done}/{self.count}] {self.current}: {outcome} ({took:.1f} s)")
        elif not self.quiet:
            print(f"[{self.done}/{self.count}] {self.current}: {outcome} ({took:.1f} s; "
                  f"about {_clock(self.eta())} left)", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if self.bar:
            self.bar.write(text)
        elif not self.quiet:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar:
            self.bar.close()
