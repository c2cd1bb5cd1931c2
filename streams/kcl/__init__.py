"""The KCL runner: the Amazon KCL MultiLangDaemon owns leases; luxflow processes shards.

- `write_properties(path, KclSettings(...))` writes the daemon's properties file.
- `run_daemon(settings, jars_dir=..., properties_path=...)` writes them and runs the daemon's JVM
  until it exits (`luxflow worker --runner kcl`); `Daemon` is the launcher underneath.
- `run_processor(engine_factory)` is the per-shard process the daemon starts
  (`luxflow kcl-processor`): the MultiLangDaemon protocol on stdin/stdout, driving one engine.
"""

from streams.kcl.bridge import (
    DaemonBridge,
    DaemonChannel,
    DaemonCheckpointer,
    run_processor,
)
from streams.kcl.daemon import (
    EMULATOR_JAVA_OPTIONS,
    Daemon,
    KclSettings,
    daemon_classpath,
    render_properties,
    run_daemon,
    write_properties,
)

__all__ = [
    "EMULATOR_JAVA_OPTIONS",
    "Daemon",
    "DaemonBridge",
    "DaemonChannel",
    "DaemonCheckpointer",
    "KclSettings",
    "daemon_classpath",
    "render_properties",
    "run_daemon",
    "run_processor",
    "write_properties",
]
