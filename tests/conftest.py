from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--expect-runtime", default=None,
                     help="fail unless the runtime module is imported from under this directory "
                          "(guards the sanitizer run against testing the normal build)")


def pytest_configure(config):
    expected = config.getoption("--expect-runtime")
    if expected:
        import runtime

        where = Path(runtime.__file__).resolve()
        if Path(expected).resolve() not in where.parents:
            raise pytest.UsageError(f"runtime imported from {where}, expected under {expected}")


@pytest.fixture(scope="session")
def runnable_variants():
    import runtime

    return [v.name for v in runtime.variants() if v.supported]


def pytest_sessionstart(session):
    # Contexts made by the tests (and by the commands they run) use the built-in GEMV
    # settings rather than measuring a tuning per variant and thread count: results never
    # depend on the tuning (tests/c/kernel_check.c and test_runtime_hazards.py vary it),
    # only speed does. test_tuning.py measures with its own cache directory.
    import os

    os.environ.setdefault("TERNBENCH_TUNING", "off")
