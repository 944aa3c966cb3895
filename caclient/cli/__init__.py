"""Command-line tools: caget, caput, camonitor, cainfo and caRepeater.

Each tool is a module with a ``main(argv)`` that returns the exit status;
they behave as EPICS base's tools of the same names (see :doc:`/cli`).
``python -m caclient <command>`` runs them too (see :func:`main`).
"""
