"""`luxflow bench`: throughput and memory benchmarks, printed as a table or JSON."""
