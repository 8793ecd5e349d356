"""Tests of the routing service (``fleetroute.service``)."""
