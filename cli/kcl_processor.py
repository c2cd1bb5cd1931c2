"""`luxflow kcl-processor`: the per-shard process the KCL MultiLangDaemon starts.

One runs per leased shard, so this module imports only what a processor runs (no metrics
server, no local runner, no botocore client machinery: see `lighting.aws`); `app.py` builds
the parser of this command alone when it is the one asked for.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.base import SubParsers
from lighting.clients import Clients
from lighting.settings import Settings
from lighting.worker import kcl_engine_factory, worker_views
from streams.kcl import run_processor
from streams.kcl.bridge import LeaseHolder
from streams.kcl.status import StatusReporter


def register(sub: SubParsers) -> None:
    kcl = sub.add_parser("kcl-processor", help="(run by the KCL daemon) one shard processor")
    kcl.add_argument(
        "--status-dir",
        default="",
        help="write this shard's status file here for the worker's /readyz and metrics",
    )
    kcl.add_argument(
        "--lease-owner",
        default="",
        help="the daemon's worker id: state saves are fenced on the lease naming it",
    )
    kcl.set_defaults(run=cmd_kcl_processor)


def cmd_kcl_processor(args: argparse.Namespace, settings: Settings) -> int:
    # The light AWS client: botocore's client machinery and models are most of a processor.
    clients = Clients(settings, light=True)
    with worker_views(settings, clients) as views:
        factory = kcl_engine_factory(settings, clients, views)
        # The daemon names its lease table after the application.
        holder = LeaseHolder(settings.app_name, args.lease_owner) if args.lease_owner else None
        if not args.status_dir:
            return run_processor(factory, holder=holder)
        registry = views.registry
        reporter = StatusReporter(
            Path(args.status_dir),
            registry=lambda: (registry.loaded_ms, registry.unknown_asset_count),
        )
        return run_processor(
            reporter.engine_factory(factory), observer=reporter.observe, holder=holder
        )
