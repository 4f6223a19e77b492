"""The ``vfe`` executable's entry point.

Ctrl-C can arrive while Python is still importing the simulator (numpy, numba, h5py take a second or more). No
file has been touched then; the command says ``interrupted`` and exits 130 like any other interrupt, instead of
printing a traceback from deep inside an import.
"""

import os
import sys

EXIT_INTERRUPTED = 130


def main() -> None:
    try:
        from .cli import main as cli
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
        # Not sys.exit: after a KeyboardInterrupt raised inside some of these imports and caught here, CPython
        # still ended the process by re-raising SIGINT (exit -2; measured in 11 of 20 trials with the signal
        # 0.4-0.85 s after start, none with os._exit). Nothing is open yet, so leaving at once loses nothing.
        os._exit(EXIT_INTERRUPTED)
    cli()


if __name__ == "__main__":  # python -m gauge_vfe.agents.launch: what the `vfe` script runs
    main()
