"""The lighting application: agents and tables (`agents`), the registry cache (`registry`),
per-shard wiring (`wiring`), provisioning (`provision`), settings and clients, and the
runner glue (`worker`)."""
