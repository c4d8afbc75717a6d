"""A sweep: its YAML configuration, the plan of points, the runner, the results directory and its tables."""
