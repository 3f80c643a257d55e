"""The embedded demo fleet: real local HTTP services with controllable faults."""
