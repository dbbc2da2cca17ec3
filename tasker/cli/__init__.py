"""The command line: options, settings and the phases of a run."""
