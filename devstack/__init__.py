"""Real local infrastructure (RabbitMQ, JupyterHub) on free loopback ports, for dev and tests."""
