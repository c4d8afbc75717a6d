"""Performance history for CI: every sweep kept by machine, commit and branch (store.py), its
series searched for steps (steps.py) and published as one static page (report.py), and a range
of commits bisected to the first one that made a configuration slower (bisect.py)."""
