"""Kinesis Data Streams: reading shards, KPL records, the producer, the KCL-format lease
table, the local polling runner and replay resets."""
