"""`luxflow dr`: sites' home regions, replication lag, failover and failback (docs/dr.md).

Every region of LUXFLOW_DR_REGIONS is reached with its own clients; each command says which
replica it reads and writes, because the command table is a global table whose replicas may
disagree for as long as replication lags (or is cut).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from cli.base import SubParsers, info, plural
from core.clock import wall_clock_ms
from core.errors import ConfigError, ReplayRefusedError
from lighting.archive_tail import tail_records
from lighting.clients import Clients
from lighting.fence import DynamoDBQuorum, revoke_when_ended
from lighting.regions import (
    SiteHome,
    assign_homes,
    load_homes,
    moved,
    returning,
    store_homes,
)
from lighting.settings import Settings, parse_time_ms
from sinks.deadletter import read_dead_letters
from streams.kinesis.archive_reader import parse_s3_url
from streams.kinesis.leases import LeaseTable
from streams.kinesis.producer import Producer
from streams.kinesis.replay import live_leases, reset_leases
from tables.dynamodb import DynamoDBStateStore

PROBE_PK = "DRPROBE"


def register(sub: SubParsers) -> None:
    dr = sub.add_parser("dr", help="multi-region DR: homes, replication lag, failover, failback")
    commands = dr.add_subparsers(dest="dr_command", required=True, metavar="COMMAND")
    status = commands.add_parser("status", help="sites per home region and replication lag")
    status.add_argument(
        "--probe-timeout-s", type=float, default=10.0, help="how long to wait for a probe"
    )
    status.set_defaults(run=cmd_status)
    assign = commands.add_parser("assign", help="set the home (and primary) region of sites")
    assign.add_argument("--region", required=True, help="the home region the sites move to")
    assign.add_argument("sites", nargs="+", help="site ids")
    assign.set_defaults(run=cmd_assign)
    failover = commands.add_parser("failover", help="re-home a lost region's sites")
    failover.add_argument("--from", dest="from_", required=True, help="the lost region")
    failover.add_argument("--to", required=True, help="the surviving region")
    failover.add_argument(
        "--redrive",
        action="store_true",
        help="re-send the records the survivor refused for those sites (dead letters "
        "'not home') into its stream",
    )
    failover.add_argument(
        "--archive",
        default="",
        metavar="s3://BUCKET/PREFIX",
        help="the survivor's replica of the lost region's raw-record archive: put the moved "
        "sites' records from --archive-from on into the survivor's stream",
    )
    failover.add_argument(
        "--archive-from",
        default="",
        metavar="TIME",
        help="reading time (ISO-8601 UTC) the archive's tail starts at: the loss minus an hour, "
        "the window grace and the replication delay (75 min at the defaults)",
    )
    failover.add_argument("--yes", action="store_true", help="do it (otherwise only explain)")
    failover.set_defaults(run=cmd_failover)
    failback = commands.add_parser("failback", help="move sites back to their primary region")
    failback.add_argument("--to", required=True, help="the recovered primary region")
    failback.add_argument("--yes", action="store_true", help="do it (otherwise only explain)")
    failback.set_defaults(run=cmd_failback)


# -- regions -------------------------------------------------------------------------------


def regions_of(settings: Settings) -> dict[str, Settings]:
    """The settings of every region of `settings.dr_regions` (`name` or `name=endpoint`)."""
    regions: dict[str, Settings] = {}
    for part in settings.dr_regions.split(","):
        name, _, endpoint = part.strip().partition("=")
        if not name:
            continue
        regions[name] = dataclasses.replace(
            settings,
            region=name,
            endpoint_url=endpoint or (settings.endpoint_url if name == settings.region else ""),
            kinesis_endpoint_url="" if endpoint else settings.kinesis_endpoint_url,
        )
    if len(regions) < 2:
        raise ConfigError("LUXFLOW_DR_REGIONS must name at least two regions, e.g. a=URL,b=URL")
    return regions


def _region(regions: dict[str, Settings], name: str) -> Settings:
    if name not in regions:
        raise ConfigError(f"region {name!r} is not in LUXFLOW_DR_REGIONS ({', '.join(regions)})")
    return regions[name]


def _print(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2, sort_keys=True))


def _sites_by_region(homes: dict[str, SiteHome]) -> dict[str, list[str]]:
    by_region: dict[str, list[str]] = {}
    for home in sorted(homes.values(), key=lambda h: h.site_id):
        by_region.setdefault(home.region, []).append(home.site_id)
    return by_region


# -- status --------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    regions = regions_of(settings)
    clients = {name: Clients(s) for name, s in regions.items()}
    report: dict[str, Any] = {"regions": {}, "replication_lag_ms": {}}
    for name, region in regions.items():
        entry: dict[str, Any] = {}
        try:
            homes = load_homes(clients[name].dynamodb, region.command_table)
            entry["sites_by_home"] = _sites_by_region(homes)
            entry["epochs"] = {h.site_id: h.epoch for h in homes.values()}
            leases = LeaseTable(clients[name].dynamodb, region.app_name).list()
            entry["shards"] = len(leases)
            entry["owned_shards"] = sum(1 for lease in leases.values() if lease.owner)
        except Exception as exc:  # a lost region is what this command must show, not hide
            entry["error"] = f"unreachable: {type(exc).__name__}: {exc}"[:300]
        report["regions"][name] = entry
    reachable = [n for n, e in report["regions"].items() if "error" not in e]
    for source in reachable:
        for target in reachable:
            if source != target:
                lag = probe_lag_ms(
                    clients[source].dynamodb,
                    clients[target].dynamodb,
                    regions[source].command_table,
                    source,
                    args.probe_timeout_s,
                )
                report["replication_lag_ms"][f"{source}->{target}"] = lag
    views = {json.dumps(report["regions"][n].get("epochs"), sort_keys=True) for n in reachable}
    report["homes_agree"] = len(views) == 1
    _print(report)
    return 0


def probe_lag_ms(
    source: Any, target: Any, table: str, source_region: str, timeout_s: float
) -> int | None:
    """Write a probe item in `source`, read `target` until it shows that write: the
    replication lag observed on an item (None: not seen within the timeout)."""
    written_ms = wall_clock_ms()
    key = {"pk": {"S": PROBE_PK}, "sk": {"S": f"FROM#{source_region}"}}
    source.put_item(
        TableName=table,
        Item={**key, "type": {"S": "dr_probe"}, "written_ms": {"N": str(written_ms)}},
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        item = target.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        if item is not None and int(item["written_ms"]["N"]) >= written_ms:
            return wall_clock_ms() - written_ms
        time.sleep(0.05)
    return None


# -- assign, failover, failback --------------------------------------------------------------


def cmd_assign(args: argparse.Namespace, settings: Settings) -> int:
    region = _region(regions_of(settings), args.region)
    homes = assign_homes(args.sites, args.region)
    store_homes(Clients(region).dynamodb, region.command_table, homes)
    _print({"assigned": {args.region: sorted(args.sites)}, "written_in": args.region})
    return 0


def cmd_failover(args: argparse.Namespace, settings: Settings) -> int:
    """Re-home the lost region's sites in the survivor's replica (the lost one is not asked:
    it is presumed unreachable; its stale homes lose by write time once it is back)."""
    regions = regions_of(settings)
    _region(regions, args.from_)
    survivor = _region(regions, args.to)
    if bool(args.archive) != bool(args.archive_from):
        raise ConfigError("--archive and --archive-from go together")
    archive: ArchiveTail | None = None
    if args.archive:
        archive = ArchiveTail(*parse_s3_url(args.archive), parse_time_ms(args.archive_from))
    clients = Clients(survivor)
    started_ms = wall_clock_ms()
    homes = load_homes(clients.dynamodb, survivor.command_table)
    plan = moved(homes.values(), args.from_, args.to, started_ms)
    if not args.yes:
        raise ReplayRefusedError(
            f"this re-homes {plural(len(plan), 'site')} from {args.from_} to {args.to} "
            f"in {args.to}'s "
            "replica; stop the workers of the lost region first; run again with --yes"
        )
    fenced_ms = fence_out(survivor, clients, args.from_)
    store_homes(clients.dynamodb, survivor.command_table, plan)
    sites = sorted(h.site_id for h in plan)
    result: dict[str, Any] = {
        "moved": sites,
        "from": args.from_,
        "to": args.to,
        "epochs": {h.site_id: h.epoch for h in plan},
        "at_ms": started_ms,
    }
    if fenced_ms is not None:
        result["fence_wait_ms"] = fenced_ms
    if args.redrive:
        result["redriven"] = redrive(survivor, clients, set(sites))
    if archive is not None:
        result["archive"] = put_tail(survivor, clients, archive, set(sites))
    info(
        f"re-homed {plural(len(sites), 'site')} to {args.to}; its workers take them within "
        f"{survivor.registry_refresh_ms / 1000:.0f}s (registry refresh)"
    )
    _print(result)
    return 0


def fence_out(survivor: Settings, clients: Clients, lost: str) -> int | None:
    """Revoke the lost region's fence lease (waiting until it has ended) before its sites
    move, so that no write of the lost region lands after the move; None without a fence."""
    if not survivor.fence_table:
        return None
    return revoke_when_ended(
        DynamoDBQuorum(clients.dynamodb, survivor.fence_table),
        lost,
        clock_skew_ms=survivor.fence_clock_skew_ms,
        waiting=lambda ms: info(f"waiting {ms / 1000:.1f}s for {lost}'s fence lease to end"),
    )


def redrive(region: Settings, clients: Clients, sites: set[str]) -> int:
    """Send the records `region` refused as "not home" for `sites` into its stream again."""
    records = [
        (letter.partition_key, letter.data)
        for letter in read_dead_letters(clients.dynamodb, region.dead_letter_table)
        if letter.reason.startswith("not home: site ") and letter.reason.split(" ")[3] in sites
    ]
    Producer(clients.kinesis, region.stream).send(records)
    return len(records)


@dataclasses.dataclass(frozen=True)
class ArchiveTail:
    """Where the replica of the lost region's archive is, and the reading time to start at."""

    bucket: str
    prefix: str
    from_ts_ms: int


def put_tail(
    survivor: Settings, clients: Clients, archive: ArchiveTail, sites: set[str]
) -> dict[str, int]:
    """Put the moved sites' tail from the archive replica into the survivor's stream, once its
    workers have seen the new homes (before, they would refuse the records as not home)."""
    wait_s = 2 * survivor.registry_refresh_ms / 1000
    info(f"waiting {wait_s:.0f}s for the workers to see the new homes, then the archive's tail")
    time.sleep(wait_s)
    tail = tail_records(clients.s3, archive.bucket, archive.prefix, sites, archive.from_ts_ms)
    Producer(clients.kinesis, survivor.stream).send(tail.records)
    info(f"put {plural(len(tail.records), 'record')} of the archive's tail into {survivor.stream}")
    return {
        "records": len(tail.records),
        "bad_lines": tail.bad_lines,
        "out_of_order": tail.out_of_order,
        "repeated": tail.repeated,
    }


def cmd_failback(args: argparse.Namespace, settings: Settings) -> int:
    """Move the sites whose primary is `--to` back there, once its replica has caught up.

    The recovered region's regional state and checkpoints are from before the failover: when
    it homes no site any more, its leases are reset to now and its state deleted, so it starts
    clean instead of resuming stale episodes and windows."""
    regions = regions_of(settings)
    target = _region(regions, args.to)
    target_clients = Clients(target)
    target_homes = load_homes(target_clients.dynamodb, target.command_table)
    for name, region in regions.items():
        if name == args.to:
            continue
        other = load_homes(Clients(region).dynamodb, region.command_table)
        behind = sorted(
            s for s, h in other.items() if s not in target_homes or target_homes[s] != h
        )
        if behind:
            raise ReplayRefusedError(
                f"{args.to}'s replica is behind {name}'s for sites {', '.join(behind[:5])}: "
                "wait for replication (luxflow dr status) before failing back"
            )
    now_ms = wall_clock_ms()
    plan = returning(target_homes.values(), args.to, now_ms)
    homed_there = [h for h in target_homes.values() if h.region == args.to]
    if not args.yes:
        raise ReplayRefusedError(
            f"this moves {plural(len(plan), 'site')} back to {args.to}"
            + ("" if homed_there else f" and resets {args.to}'s checkpoints and state")
            + "; run again with --yes"
        )
    reset = 0
    if not homed_there:
        leases = LeaseTable(target_clients.dynamodb, target.app_name)
        try:
            current = live_leases(leases, target.failover_ms)
        except ReplayRefusedError as exc:
            if "no leases" not in str(exc):
                raise
            current = {}
        reset_leases(leases, current, now_ms)
        DynamoDBStateStore(target_clients.dynamodb, target.state_table).delete_all()
        reset = len(current)
    if target.fence_table:
        # Its stale checkpoints and state are gone (above) or it kept homing sites: its
        # workers may write again.
        DynamoDBQuorum(target_clients.dynamodb, target.fence_table).release(args.to)
    store_homes(target_clients.dynamodb, target.command_table, plan)
    _print(
        {
            "moved": sorted(h.site_id for h in plan),
            "to": args.to,
            "epochs": {h.site_id: h.epoch for h in plan},
            "shards_reset": reset,
        }
    )
    return 0
