"""tfdphpe.privacy: DP optimizers, the public subspace, accounting, the privacy ledger, audits.

Knows nothing about pose: it works on per-example losses, gradients and variables.

The accounting names are imported eagerly (they need dp_accounting only, so
``scripts/privacy_budget.py`` starts in about a second); the TensorFlow parts load on first use.
"""

import importlib

from tfdphpe.privacy import accounting
from tfdphpe.privacy.accounting import (
    BudgetExceededError,
    PrivacyReport,
    calibrate_noise_multiplier,
    compute_epsilon,
    group_privacy,
    privacy_report,
)
from tfdphpe.privacy.ledger import LedgerStore, PrivacyLedger, published_statement
from tfdphpe.privacy.method import Method, Sampling

_LAZY = {
    "DPAdamOptimizer": "optimizers", "DPSGDOptimizer": "optimizers",
    "make_dp_optimizer_class": "optimizers", "make_optimizer": "optimizers",
    "KeyedGaussianSumQuery": "noise",
    "batch_gradient": "per_example", "global_norms": "per_example",
    "jacobian_per_example_gradients": "per_example", "per_example_gradients": "per_example",
    "clip_record": "mechanisms", "clipped_per_example_terms": "mechanisms",
    "PublicSubspace": "subspace", "basis_from_gradients": "subspace", "project": "subspace",
    "public_gradients": "subspace",
    "AuditConfig": "audit", "AuditResult": "audit", "BlackBoxAudit": "audit",
    "WhiteBoxAudit": "audit", "epsilon_lower_bound": "audit",
    "DPModel": "dp_model", "PrivacyLedgerCallback": "ledger_callback",
}

__all__ = ["BudgetExceededError", "LedgerStore", "Method", "PrivacyLedger", "PrivacyReport",
           "Sampling", "accounting", "calibrate_noise_multiplier", "compute_epsilon",
           "group_privacy", "privacy_report", "published_statement", *sorted(_LAZY)]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"tfdphpe.privacy.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfdphpe.privacy' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
