"""Capability services: one module per capability, each owning its use cases.

Every service writes through the shared :class:`~loyaltykit._pipeline.WritePipeline`
and reacts to other capabilities only through domain events (:mod:`loyaltykit._events`)
its ``subscribe`` method registers. :class:`~loyaltykit.Loyalty` wires them.
"""
