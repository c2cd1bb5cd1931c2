"""Launchers of the local stand-ins for AWS (moto server, kinesalite) on 127.0.0.1,
for the demo and the tests."""
