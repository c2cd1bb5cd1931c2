"""What `luxflow query` says when it finds nothing: what it searched for and which ids exist
nearby in the registry, so a mistyped site or building id is seen at once instead of an
empty table that looks like "no faults"."""

from __future__ import annotations

import argparse

from cli.base import listing, nearby
from domain.registry import Registry


def _site_hint(site: str, registry: Registry) -> str | None:
    """None if the site has assets; else which sites do."""
    sites = {a.site_id for a in registry.assets.values()}
    if site in sites:
        return None
    known = listing(nearby(site, sites), len(sites))
    return f"site {site} has no assets in the registry; sites: {known}"


def _building_hint(site: str, building: str, registry: Registry) -> str | None:
    site_hint = _site_hint(site, registry)
    if site_hint is not None:
        return site_hint
    buildings = {a.building_id for a in registry.assets.values() if a.site_id == site}
    if building in buildings:
        return None
    return (
        f"site {site} has no building {building}; its buildings: "
        f"{listing(nearby(building, buildings), len(buildings))}"
    )


def explain_empty(args: argparse.Namespace, registry: Registry) -> str:
    """One or two lines: what was searched, and the nearby ids when an id is not known."""
    hint: str | None = None
    if args.kind == "asset":
        searched = f"no current state for asset {args.asset_id}"
        if args.asset_id not in registry.assets:
            ids = list(registry.assets)
            hint = (
                f"asset {args.asset_id} is not in the registry; similar ids: "
                f"{listing(nearby(args.asset_id, ids), len(ids))}"
            )
        else:
            hint = "it is registered but has not reported yet"
    elif args.kind == "faults":
        searched = f"no open faults in building {args.building} of site {args.site}"
        hint = _building_hint(args.site, args.building, registry)
    elif args.kind == "spikes":
        since = args.since or "a day ago"
        searched = f"no spikes at site {args.site} since {since}"
        hint = _site_hint(args.site, registry)
    elif args.kind == "energy":
        scope_ids = "/".join(x for x in (args.site, args.building, args.room) if x) or "every site"
        searched = (
            f"no {args.every} energy of {args.scope} scope for {scope_ids} in "
            f"[{args.start}, {args.end}) (closed hourly windows only)"
        )
        if args.site:
            hint = (
                _building_hint(args.site, args.building, registry)
                if args.building
                else _site_hint(args.site, registry)
            )
    else:
        searched = "no sites: the registry is empty (`luxflow registry import FILE`)"
    return searched if hint is None else f"{searched}\n{hint}"
