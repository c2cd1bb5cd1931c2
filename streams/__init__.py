"""luxflow's stream runtime: App, agents, per-shard engine, Kinesis runners."""
