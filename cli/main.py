"""The root parser and the one place where a command's errors become exit statuses."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence

from cli.base import CommandGroup
from cli.errors import explain
from core import logs
from core.errors import ConfigError
from lighting.settings import Settings

log = logging.getLogger("luxflow")

EXIT_USAGE = 2
"""Bad settings, a missing resource or an unreachable endpoint: something the user fixes."""

LOG_FORMATS = ("text", "json")

QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "moto", "werkzeug", "hypercorn")


def build_parser(groups: Sequence[CommandGroup]) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="luxflow",
        description="Smart-lighting telemetry on Kinesis -> DynamoDB and Timestream. "
        "Settings come from LUXFLOW_* environment variables (`luxflow config` lists them).",
    )
    root.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not only its cause"
    )
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in groups:
        group(sub)
    return root


def configure_logging(settings: Settings) -> None:
    """Log lines on stderr as text or JSON (LUXFLOW_LOG_FORMAT), repeated warnings and errors
    rate-limited, record payloads only with LUXFLOW_LOG_PAYLOADS (see core.logs)."""
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(
            f"LUXFLOW_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
            f"not {settings.log_format!r}"
        )
    logging.basicConfig(
        level=settings.log_level.upper(),
        handlers=[
            logs.handler(
                sys.stderr,
                fmt=settings.log_format,
                payloads=settings.log_payloads,
                repeat_window_ms=settings.log_repeat_window_ms,
            )
        ],
        force=True,
    )
    # The AWS SDK logs every credential lookup at INFO; only its warnings are news.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def run(argv: Sequence[str] | None, env: Mapping[str, str], groups: Sequence[CommandGroup]) -> int:
    """Parse `argv`, read the settings from `env` and run the command. Errors a user can fix
    print one line naming the cause and return 2; `--debug` shows the traceback too."""
    args = build_parser(groups).parse_args(argv)
    try:
        settings = Settings.from_env(env)
        configure_logging(settings)
        status: int = args.run(args, settings)
        return status
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        reason = explain(exc)
        if reason is None or args.debug:
            log.exception("luxflow %s failed", args.command)
        if reason is None:
            return 1
        print(f"luxflow: {reason}", file=sys.stderr)
        return EXIT_USAGE
