"""Many runs: plans (methods x seeds, EGSW grids), the runner that executes and resumes them, reports.

``plans`` and ``methods`` say what to run, ``runner`` runs each plan entry as its own ``egsw train``
process and reuses finished ones, ``runs_data`` reads what the runs left, ``summary`` turns it into
estimates with intervals and tests (``anova`` for sweeps), and ``comparison_report``,
``sweep_report`` and ``tables`` write them out.
"""
