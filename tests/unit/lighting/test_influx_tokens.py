"""The query store's credentials: the worker writes with the writer token, `query` and `serve`
read with the reader token, and fall back to the writer's only when no reader is set."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from lighting.clients import Clients
from lighting.influx import influx_read_token, influx_token
from lighting.read.model import read_model
from lighting.settings import Settings

WRITER = "writer:writer-password"
READER = "reader:reader-password"


def influx_settings(**overrides: str) -> Settings:
    return Settings(query_model="influxdb", influxdb_url="http://127.0.0.1:1", **overrides)


def test_the_read_side_uses_the_reader_token_and_the_worker_the_writer_token() -> None:
    settings = influx_settings(influxdb_token=WRITER, influxdb_read_token=READER)
    clients = Clients(settings)
    assert influx_token(settings, clients) == WRITER
    assert influx_read_token(settings, clients) == READER
    energy = read_model(settings, clients).energy
    assert energy._client._headers() == {"Authorization": f"Token {READER}"}


def test_without_a_reader_token_the_read_side_falls_back_to_the_writer_token() -> None:
    settings = influx_settings(influxdb_token=WRITER)
    assert influx_read_token(settings, Clients(settings)) == WRITER


def test_a_reader_token_alone_is_enough_for_the_read_side() -> None:
    settings = influx_settings(influxdb_read_token=READER)
    clients = Clients(settings)
    assert influx_read_token(settings, clients) == READER
    with pytest.raises(ConfigError, match="LUXFLOW_INFLUXDB_TOKEN"):
        influx_token(settings, clients)


def test_a_short_reader_token_is_refused_naming_its_setting() -> None:
    settings = influx_settings(influxdb_token=WRITER, influxdb_read_token="r:x")
    with pytest.raises(ConfigError, match="LUXFLOW_INFLUXDB_READ_TOKEN"):
        influx_read_token(settings, Clients(settings))
