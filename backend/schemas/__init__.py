"""Marshmallow schemas: one family per resource (input, output, query)."""
