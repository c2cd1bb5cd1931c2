"""Windows (pure math), Faust-style tables partitioned by shard, and state stores."""
