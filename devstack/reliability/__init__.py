"""Reliability scenarios run against a real local stack (faults, load, bad input).

Shared by the benchmarks in ``bench/reliability`` (full sizes, printed figures) and the
quick tests in ``tests/integration/test_reliability_*.py`` (small sizes, assertions):
each scenario function takes a started :class:`~devstack.stack.LocalStack`
and sizes, and returns a :class:`~devstack.reliability.result.ScenarioResult`
with its figures and the list of properties that did not hold.
"""
