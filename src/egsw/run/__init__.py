"""One training run: options (parsed and checked before any model loads), the run folder, training.

``options`` parses ``egsw train``'s options, ``checks`` refuses what cannot work, ``dry_run``
describes the run without loading anything, ``run_folder`` keeps runs from mixing and finds where
to resume, ``training`` runs it (``run_training``), with ``recipes``, ``task_data``,
``checkpoints``, ``callbacks`` and ``plots`` beside it.
"""
