"""The `univg` command: argument parsing and calls into the library, nothing else."""
