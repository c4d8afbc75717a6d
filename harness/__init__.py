"""ternbench harness: command line, measurements and reports."""
import os

# numpy's BLAS keeps worker threads that spin after each call; on a small machine they
# compete with the runtime's own threads in every timed region. The harness does no
# heavy linear algebra in numpy, so it asks for one BLAS thread (before numpy loads).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# The checkout (or installed tree) the harness runs from: workers start here, configs live here.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
