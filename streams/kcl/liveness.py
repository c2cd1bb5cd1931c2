"""Container health check for the KCL runner: `python -m streams.kcl.liveness`.

Healthy while a MultiLangDaemon JVM runs in this container (read from /proc, so the image
needs no ps). The daemon exits on fatal errors (a processor that stops answering makes it call
System.exit), so "the JVM is alive" is the signal ECS needs to replace a broken task.
"""

from __future__ import annotations

import sys
from pathlib import Path

from streams.kcl.daemon import MAIN_CLASS


def daemon_running(proc: Path = Path("/proc")) -> bool:
    """True when some process's command line names the MultiLangDaemon main class."""
    needle = MAIN_CLASS.encode()
    for cmdline in proc.glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes():
                return True
        except OSError:  # the process ended while we looked
            continue
    return False


def main() -> int:
    if daemon_running():
        return 0
    print("no KCL MultiLangDaemon process is running", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
