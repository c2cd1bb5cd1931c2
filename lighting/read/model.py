"""The read model of a deployment: command-model reads (DynamoDB) and query-model reads
(InfluxQL), built from the settings. The query model is read with InfluxQL only: with
`LUXFLOW_QUERY_MODEL=timestream` (LiveAnalytics) the energy queries are refused with a
`ConfigError`; LiveAnalytics' own query API is not implemented because it cannot be tested
here (moto's timestream-query returns canned results) and it is closed to new customers."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError
from lighting.clients import Clients
from lighting.influx import SERIES_RPS, influx_client, influx_read_token
from lighting.read.command import CommandReader
from lighting.read.cursors import Cursors
from lighting.read.energy import EnergyReader
from lighting.read.series import SeriesReader
from lighting.registry import load_registry
from lighting.settings import Settings


@dataclass
class ReadModel:
    command: CommandReader
    energy_reader: EnergyReader | None
    series_reader: SeriesReader | None = None

    @property
    def series(self) -> SeriesReader:
        if self.series_reader is None:
            raise ConfigError(
                "series queries read the query model with InfluxQL: set LUXFLOW_QUERY_MODEL="
                "influxdb and LUXFLOW_SERIES_INTERVAL_MS above 0"
            )
        return self.series_reader

    @property
    def energy(self) -> EnergyReader:
        if self.energy_reader is None:
            raise ConfigError(
                "energy queries read the query model with InfluxQL: set LUXFLOW_QUERY_MODEL="
                "influxdb (Timestream LiveAnalytics reads are not supported)"
            )
        return self.energy_reader


def read_model(settings: Settings, clients: Clients, cursors: Cursors | None = None) -> ReadModel:
    """The read model; its cursors are signed with `cursors` (default: valid in this process
    only, which is all the CLI needs; the API passes keys every instance shares)."""
    cursors = cursors if cursors is not None else Cursors.ephemeral()
    command = CommandReader(
        clients.dynamodb,
        settings.command_table,
        lambda: load_registry(clients.dynamodb, settings.command_table),
        cursors,
    )
    energy = series = None
    if settings.query_model == "influxdb":
        client = influx_client(settings, clients, influx_read_token(settings, clients))
        energy = EnergyReader(client, cursors)
        if settings.series_interval_ms:
            series = SeriesReader(
                client, cursors, fine_ms=settings.series_interval_ms, rps=SERIES_RPS
            )
    return ReadModel(command, energy, series)
