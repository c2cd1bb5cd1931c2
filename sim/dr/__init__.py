"""Multi-region DR on one machine: the MREC replicator model and the DR scenario harness."""
