"""Shared helpers for fairq's test suites (private RabbitMQ nodes, polling)."""
