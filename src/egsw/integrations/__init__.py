"""Integrations of EGSW into other RL training frameworks (docs/design.md section 6).

Each module here imports its framework and ``egsw.weights``, never TRL: ``egsw.integrations.verl`` runs in an
environment of its own (``pip install 'egsw[verl]'``, docs/verl.md). Nothing is imported by this package itself.
"""
