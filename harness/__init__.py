"""ternbench harness: command line, measurements and reports."""
