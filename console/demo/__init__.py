"""The embedded demo fleet: real local HTTP services with controllable faults.

- ``fleet``: :class:`DemoFleet` (start/stop/set_faults), :class:`FleetInfo`,
  :func:`run_fleet_only` (``python -m console.demo``, ``conn demo --fleet-only``).
- ``service``: one service, a stdlib HTTP server in a daemon thread.
- ``traffic``: the simulated requests behind its numbers and ``/metrics``.
- ``faults``: what can be injected, and its validation.
- ``canary``: the ``checkout_v2`` flag file deciding who the canary serves.
- ``democonfig``: the conn.toml that watches the fleet.
- ``control``: the async client (httpx) that injects and clears faults.

Nothing is imported here, so ``import console.demo`` stays cheap.
"""
