"""Where agent outputs go: the Sink protocol and its DynamoDB, Timestream and in-memory forms."""
