"""The `ternbench` command: `main` is the front door (cli/main.py), one module per subcommand,
and what they share (exit statuses, the usage error, JSON output) in cli/common.py."""
