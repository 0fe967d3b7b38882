"""gateway_svc: the shop's HTTP API; turns requests into commands and asks services for reads."""
