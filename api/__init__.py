"""The read API (`luxflow serve`): the read model over HTTP/JSON with an OpenAPI document,
and the operator page. Between `cli/` and `lighting/` in the import layers."""
