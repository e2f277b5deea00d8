"""Labelled traffic simulator: contract-v1 request events from benign and
attacking cohorts described in TOML scenarios.

    from distillguard.models.simulation import load_scenario, simulate
    sim = simulate(load_scenario("small"), seed=1)
    for ev in sim.events(): ...
    sim.labels  # account_id -> {"label", "cohort", "kind", "first_attack_ts_ms"}
"""
from .cohorts import ATTACK_KINDS, BENIGN_KINDS, CLASSIC_KINDS, KINDS
from .io import write_jsonl, write_labels
from .scenario import Scenario, ScenarioError, Simulation, available_scenarios, load_scenario, simulate

__all__ = [
    "load_scenario", "simulate", "Simulation", "Scenario", "ScenarioError",
    "available_scenarios", "write_jsonl", "write_labels", "KINDS", "BENIGN_KINDS", "ATTACK_KINDS", "CLASSIC_KINDS",
]
