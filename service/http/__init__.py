"""The service's HTTP side: the app factory, who may call what, the limits on requests, errors as JSON, paging,
the routers per resource and their schemas. It drives `service.runtime` and never the other way round."""
