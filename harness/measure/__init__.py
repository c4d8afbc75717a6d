"""Measuring: one benchmark point (what it is, how it runs, its worker, its record, what can spoil
it), the kernel benchmark, the read-bandwidth probe, statistics, energy windows and the machine
fingerprint."""
