"""The HTTP API: one shared pipeline over the model, the item vectors and the event store."""
