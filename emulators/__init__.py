"""Launchers of the local stand-ins for AWS (moto server, kinesalite and its HTTP/2 front for
the KCL daemon, influxd) on 127.0.0.1, for the demo and the tests."""
