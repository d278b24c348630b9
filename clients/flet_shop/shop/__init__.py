"""Flet Shop: a Flet 1.0 storefront for the flet-backend API (catalog, cart, orders, imports)."""
