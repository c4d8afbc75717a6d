"""Measuring: one benchmark point (what it is, how it runs, its worker, its record), the
kernel benchmark, the read-bandwidth probe, statistics, energy windows and the machine fingerprint."""
