"""The read side of CQRS: the command model (DynamoDB) and the query model (InfluxQL), as the
queries `luxflow query`, the read API and the operator page share. Read-only: nothing here
writes."""
