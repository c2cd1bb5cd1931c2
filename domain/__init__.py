"""The Smart Lighting model: telemetry, domain events and detection rules. Pure Python + msgspec."""
