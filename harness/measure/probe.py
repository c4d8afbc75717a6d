"""The read-bandwidth probe: the yardstick of every bandwidth fraction ternbench reports.

Each pattern the runtime knows (runtime.READ_PATTERNS) reads a buffer of the working set's
size with the context's own thread pool; the plain sequential read is the denominator, the
fastest pattern is reported beside it. On a shared machine the available bandwidth drifts,
so a figure is only compared with a probe taken beside it."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import runtime
from runtime import Context

LLC_MULTIPLE = runtime.cpu.LLC_MULTIPLE


BANDWIDTH_PASSES = 7


def working_set_bytes() -> int:
    """The bytes a read cycles through (runtime.cpu.memory_cycle_bytes), at most a quarter of
    the available memory."""
    import psutil

    return runtime.cpu.memory_cycle_bytes(psutil.virtual_memory().available)


PLAIN = runtime.READ_PATTERNS[0]


REFERENCE = "plain sequential read (one stream per thread, no software prefetch)"


@dataclass
class Probe:
    """Read-bandwidth passes (GB/s) per read pattern. The plain sequential read is the
    yardstick every bandwidth fraction divides by; which other pattern reads faster differs
    between CPUs and thread counts, so each is reported, never silently substituted."""
    passes: dict[str, list[float]]

    @property
    def plain(self) -> float:
        return statistics.median(self.passes[PLAIN])

    def medians(self) -> dict[str, float]:
        return {name: statistics.median(v) for name, v in self.passes.items()}

    @property
    def best(self) -> tuple[str, float]:
        return max(self.medians().items(), key=lambda kv: kv[1])

    def __add__(self, other: "Probe") -> "Probe":
        return Probe({k: self.passes[k] + other.passes.get(k, []) for k in self.passes})


def measure_bandwidth(ctx: Context, passes: int = BANDWIDTH_PASSES, nbytes: int | None = None) -> Probe:
    """Read bandwidth of `passes` sweeps per pattern over a buffer of the working set's size,
    after a warm-up."""
    nbytes = nbytes or working_set_bytes()
    ctx.read_bandwidth(nbytes, 1)  # page faults, frequency ramp
    return Probe(ctx.read_bandwidth(nbytes, passes))


def thread_bandwidth(threads: int) -> Probe:
    """The read bandwidth of a fresh pool of `threads`: what `ternbench kernels --bandwidth`
    and `ternbench sysinfo` print. The probe reads with the best variant's widest loads
    whatever the context's variant; a scalar context needs no kernel tuning first."""
    with Context(threads, "scalar") as ctx:
        return measure_bandwidth(ctx)


def bracketed(ctx: Context, work):
    """Runs work() between two halves of a read-bandwidth probe on ctx's own thread pool;
    returns work's result and the probe. On a shared machine the available bandwidth
    drifts, so a figure is only compared with a probe taken beside it."""
    half = max(1, BANDWIDTH_PASSES // 2)
    probe = measure_bandwidth(ctx, half)
    result = work()
    probe += Probe(ctx.read_bandwidth(working_set_bytes(), half))
    return result, probe
