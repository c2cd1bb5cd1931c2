"""What a worker tells the world: metric catalogue and counters, status snapshots, CloudWatch
Embedded Metric Format, and the health and metrics HTTP endpoints."""
