"""mixnas: orchestration and the command line (runs, records, reports, export)."""

__version__ = "0.1.0"
