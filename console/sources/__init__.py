"""Sources sample the world: the HTTP prober and Prometheus."""
