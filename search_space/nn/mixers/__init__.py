"""Token-mixer modules; each is registered (with its analytic cost) in `search_space.ops`."""
