"""Debug records from the pipeline, without importing ``logging`` into a process that never configures it.

``sld.tpm`` and ``sld.discover`` say at debug level which source and TCTI they tried. Only the daemon
configures logging (``sld.service.journal``: its handler, its level); a command never does, so a debug
record there would reach no handler (``logging.lastResort`` prints WARNING and above only). Importing
``logging`` (with traceback, string and threading) costs ~3.5 ms of a cold ``sld verify``
(benchmarks/verify_cold.py) for records that go nowhere; this module hands a record to ``logging`` only
when the process has loaded it, which every process that configures logging has.
"""

from __future__ import annotations

import sys


def debug(logger: str, message: str, *args: object) -> None:
    """``logging.getLogger(logger).debug(message, *args)`` when ``logging`` is loaded; else nothing to emit to."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(logger).debug(message, *args)
