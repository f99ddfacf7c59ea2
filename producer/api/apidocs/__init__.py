"""Static files of the API reference page at ``/docs`` (Swagger UI reads ``/openapi.json``)."""
