"""Things that run a model: cost counting, timing, proxies, short training, supernets."""
