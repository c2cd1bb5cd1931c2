"""A small AWS client for the few calls a KCL shard processor makes.

The KCL daemon starts one processor process per leased shard, so the processor's resident
memory decides how many shards a task can hold. botocore costs about 20 MB resident in every
process that imports it (its import chain: urllib3, the docs and waiter machinery) and about
11 MB more for the DynamoDB service model it loads per client. These modules speak the AWS
JSON protocol over `http.client` with Signature Version 4 instead, for DynamoDB, Timestream
(write) and Secrets Manager, and raise botocore's own exception types (`ClientError` with the
same `response` shape, `EndpointConnectionError`, `ReadTimeoutError`, ...) so every caller's
error handling and retry policy stay as they are.

- `sigv4`: request signing.
- `credentials`: where the keys come from (environment, the ECS container endpoint, or
  botocore's full chain for anything else).
- `http`: a pool of keep-alive connections and the mapping of socket failures.
- `jsonclient`: the JSON protocol, the low-level client's method names and shapes, paginators.
"""
