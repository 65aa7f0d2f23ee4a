"""A grocery shop with search and recommendation, simulated with known ground truth.

Entry points: :func:`usr.data.sim.run.simulate` (write a log), :class:`usr.data.sim.live.LiveShop`
(answer live requests), :class:`usr.data.sim.config.SimConfig` (all parameters).
"""
