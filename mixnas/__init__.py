"""mixnas: orchestration and the command line (runs, records, reports, export).

`load_trials(run_dir)` reads a run's finished trials as a pandas DataFrame.
"""

from mixnas.records import load_trials

__version__ = "0.1.0"

__all__ = ["__version__", "load_trials"]
