"""Administration: `config`, `setup`, `registry import|show`, `deadletters`."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import msgspec

from cli.base import SubParsers, info, listing, nearby, plural, table
from core.errors import ConfigError
from domain.registry import Registry, RegistryError, parse_csv, parse_json
from domain.timestamps import format_ts
from lighting.clients import Clients
from lighting.provision import provision
from lighting.registry import load_registry, store_registry
from lighting.settings import Settings, settings_table
from sinks.deadletter import read_dead_letters


def register(sub: SubParsers) -> None:
    config = sub.add_parser("config", help="print every setting with its current value")
    config.add_argument("--markdown", action="store_true", help="as the README's table")
    config.set_defaults(run=cmd_config)

    setup = sub.add_parser(
        "setup",
        help="create the tables and the Timestream database (and the stream with --shards)",
    )
    setup.add_argument(
        "--shards",
        type=int,
        default=None,
        help="also create the Kinesis stream with this many shards (else it must exist)",
    )
    setup.set_defaults(run=cmd_setup)

    registry = sub.add_parser("registry", help="import or show the asset registry")
    registry_sub = registry.add_subparsers(dest="action", required=True, metavar="ACTION")
    registry_import = registry_sub.add_parser(
        "import", help="import assets (and site defaults) from a CSV or JSON file"
    )
    registry_import.add_argument("file", help="*.csv, or JSON as written by `luxflow simulate`")
    registry_show = registry_sub.add_parser(
        "show", help="print the registry's assets and site defaults as tables"
    )
    registry_show.add_argument("--site", default="", help="only this site")
    registry_show.add_argument(
        "--json", action="store_true", help="JSON lines (assets, then site defaults) instead"
    )
    registry.set_defaults(run=cmd_registry)

    dead = sub.add_parser("deadletters", help="list dead letters with their reasons")
    dead.add_argument("--limit", type=int, default=50, help="print at most this many (default 50)")
    dead.set_defaults(run=cmd_deadletters)


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """Every setting: its variable, default, current value and meaning."""
    rows = [
        (
            f"LUXFLOW_{f.name.upper()}",
            repr(f.default),
            # Tokens are never printed: only whether one is set.
            ("'***'" if getattr(settings, f.name) else "''")
            if f.name.endswith("_token")
            else repr(getattr(settings, f.name)),
            f.metadata["help"],
        )
        for f in fields(Settings)
    ]
    if args.markdown:
        print(settings_table(), end="")
        return 0
    for name, _default, current, help_text in rows:
        print(f"{name:42} {current:24} {help_text}")
    return 0


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    if args.shards is not None and args.shards < 1:
        raise ConfigError("--shards must be at least 1")
    stream_exists = provision(settings, Clients(settings), shards=args.shards)
    if args.shards is not None:
        stream = f"stream {settings.stream} ({plural(args.shards, 'shard')})"
    elif stream_exists:
        stream = f"stream {settings.stream} (existing; not changed)"
    else:
        stream = (
            f"NO stream: {settings.stream} does not exist and --shards was not given "
            "(create it with `luxflow setup --shards N` or your IaC)"
        )
    print(f"ready: tables and Timestream database; {stream}")
    return 0 if stream_exists else 1


ASSET_COLUMNS = ("asset_id", "kind", "site_id", "building_id", "room_id", "rated_w")
SITE_COLUMNS = (
    "site_id",
    "demand_threshold_w",
    "spike_tolerance",
    "voltage_band",
    "offline_after_ms",
)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def registry_text(registry: Registry, site: str = "", *, as_json: bool = False) -> str:
    """The registry's assets (by id) then its site defaults, as two tables or JSON lines."""
    assets = sorted(
        (a for a in registry.assets.values() if not site or a.site_id == site),
        key=lambda a: a.asset_id,
    )
    sites = sorted(
        (s for s in registry.sites.values() if not site or s.site_id == site),
        key=lambda s: s.site_id,
    )
    if as_json:
        return "\n".join(msgspec.json.encode(x).decode() for x in [*assets, *sites])
    text = table(
        ASSET_COLUMNS, ([_cell(getattr(a, c, None)) for c in ASSET_COLUMNS] for a in assets)
    )
    if sites:
        site_table = table(
            SITE_COLUMNS, ([_cell(getattr(s, c, None)) for c in SITE_COLUMNS] for s in sites)
        )
        text += f"\n\nsite defaults\n{site_table}"
    return text


def cmd_registry(args: argparse.Namespace, settings: Settings) -> int:
    clients = Clients(settings)
    if args.action == "show":
        registry = load_registry(clients.dynamodb, settings.command_table)
        print(registry_text(registry, args.site, as_json=args.json))
        assets = [a for a in registry.assets.values() if not args.site or a.site_id == args.site]
        sites = {a.site_id for a in assets}
        where = f" of site {args.site}" if args.site else ""
        info(f"{plural(len(assets), 'asset')} in {plural(len(sites), 'site')}{where}")
        if args.site and not assets:
            known = {a.site_id for a in registry.assets.values()}
            info(f"sites in the registry: {listing(nearby(args.site, known), len(known))}")
        return 0
    path = Path(args.file)
    try:
        data = path.read_bytes()
        imported = parse_csv(data.decode()) if path.suffix.lower() == ".csv" else parse_json(data)
    except (OSError, UnicodeDecodeError, RegistryError) as exc:
        raise ConfigError(f"cannot import {path}: {exc}") from exc
    for row in imported.rejected:
        info(f"rejected {path.name}:{row.position}: {row.reason}")
    store_registry(clients.dynamodb, settings.command_table, imported)
    print(
        f"imported {plural(len(imported.assets), 'asset')} and "
        f"{plural(len(imported.sites), 'site default')}; "
        f"rejected {plural(len(imported.rejected), 'row')}"
    )
    return 1 if imported.rejected else 0


def cmd_deadletters(args: argparse.Namespace, settings: Settings) -> int:
    letters = read_dead_letters(Clients(settings).dynamodb, settings.dead_letter_table)
    for letter in letters[: args.limit]:
        print(
            f"{format_ts(letter.arrival_ms)} {letter.shard_id} "
            f"{letter.sequence_number}/{letter.sub_sequence_number} "
            f"{letter.origin}: {letter.reason} ({plural(len(letter.data), 'byte')})"
        )
    shown = f" (the first {args.limit} shown)" if len(letters) > args.limit else ""
    print(f"{plural(len(letters), 'dead letter')}{shown}")
    return 0
