"""Accounting equals dp_accounting; calibration hits the target; the ledger keeps the budget."""

import math

import dp_accounting
import numpy as np
import pytest
from tensorflow_privacy.privacy.analysis import compute_dp_sgd_privacy_lib as tfp_lib

from tfdphpe.privacy import accounting
from tfdphpe.privacy.accounting import BudgetExceededError
from tfdphpe.privacy.ledger import PrivacyLedger

N, B, DELTA = 10_000, 50, 1e-5   # q = 0.005


def _direct(sigma, steps, q=B / N, acc=None):
    acc = acc or dp_accounting.rdp.RdpAccountant()
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    return acc.compose(event).get_epsilon(DELTA)


def test_compute_epsilon_equals_dp_accounting_called_directly():
    eps = accounting.compute_epsilon(N, B, 1.1, DELTA, steps=1000)
    assert eps == pytest.approx(_direct(1.1, 1000), rel=1e-12)
    # epochs -> ceil(epochs * N / B) steps
    eps = accounting.compute_epsilon(N, B, 1.1, DELTA, epochs=2.5)
    assert eps == pytest.approx(_direct(1.1, 500), rel=1e-12)
    pld = accounting.compute_epsilon(N, B, 1.1, DELTA, steps=400, accountant="pld")
    assert pld == pytest.approx(_direct(1.1, 400, acc=dp_accounting.pld.PLDAccountant()), rel=1e-9)
    assert pld < accounting.compute_epsilon(N, B, 1.1, DELTA, steps=400)   # PLD is tighter than RDP
    assert math.isinf(accounting.compute_epsilon(N, B, 0.0, DELTA, steps=10))


def test_shuffle_reports_both_figures_and_claims_once_per_epoch():
    report = accounting.privacy_report(N, B, 1.0, DELTA, epochs=3, sampling="shuffle")
    # The two figures TF-Privacy's privacy statement prints (one example per microbatch).
    once = tfp_lib._compute_dp_sgd_example_privacy(3, 1.0, DELTA, used_microbatching=False)
    poisson = tfp_lib._compute_dp_sgd_example_privacy(3, 1.0, DELTA, used_microbatching=False,
                                                      poisson_subsampling_probability=B / N)
    assert report.epsilon_once_per_epoch == pytest.approx(once, rel=1e-12)
    assert report.epsilon_poisson == pytest.approx(poisson, rel=1e-12)
    assert report.claimed == "once_per_epoch" and report.epsilon == report.epsilon_once_per_epoch
    assert report.epsilon > report.epsilon_poisson
    assert accounting.compute_epsilon(N, B, 1.0, DELTA, epochs=3, sampling="shuffle") == \
        report.epsilon
    text = report.statement()
    assert "claimed" in text and "not claimed" in text
    poisson_report = accounting.privacy_report(N, B, 1.0, DELTA, epochs=3)
    assert poisson_report.epsilon_once_per_epoch is None and poisson_report.claimed == "poisson"


@pytest.mark.parametrize("target,sampling,accountant", [
    (0.5, "poisson", "rdp"), (3.0, "poisson", "rdp"), (8.0, "shuffle", "rdp"),
    (4.0, "shuffle", "pld")])
def test_calibration_hits_the_target_within_one_percent(target, sampling, accountant):
    kwargs = dict(steps=400 if accountant == "pld" else 2000, sampling=sampling,
                  accountant=accountant)
    sigma = accounting.calibrate_noise_multiplier(N, B, target, DELTA, **kwargs)
    eps = accounting.compute_epsilon(N, B, sigma, DELTA, **kwargs)
    assert eps <= target
    assert eps >= 0.99 * target


@pytest.mark.parametrize("kwargs", [
    dict(num_examples=100, batch_size=200, noise_multiplier=1.0, delta=1e-5, steps=10),
    dict(num_examples=100, batch_size=10, noise_multiplier=1.0, delta=1.0, steps=10),
    dict(num_examples=100, batch_size=10, noise_multiplier=1.0, delta=0.0, steps=10),
    dict(num_examples=100, batch_size=10, noise_multiplier=-1.0, delta=1e-5, steps=10),
    dict(num_examples=100, batch_size=10, noise_multiplier=1.0, delta=1e-5, steps=10, epochs=1),
    dict(num_examples=100, batch_size=10, noise_multiplier=1.0, delta=1e-5),
    dict(num_examples=100, batch_size=10, noise_multiplier=1.0, delta=1e-5, epochs=-1),
    dict(num_examples=100, batch_size=10, noise_multiplier=1.0, delta=1e-5, steps=10,
         sampling="fixed"),
    dict(num_examples=100, batch_size=10, noise_multiplier=1.0, delta=1e-5, steps=10,
         accountant="gdp"),
])
def test_invalid_inputs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        accounting.compute_epsilon(**kwargs)


def test_calibration_rejects_nonpositive_epsilon():
    with pytest.raises(ValueError, match="target_epsilon"):
        accounting.calibrate_noise_multiplier(N, B, 0.0, DELTA, steps=10)


def _ledger(**kwargs):
    args = dict(method="fpdp", noise_multiplier=1.0, l2_norm_clip=0.1, num_examples=N, batch_size=B,
                delta=DELTA, target_epsilon=1.0, psi="gaussian blur sigma=5 px, labels public",
                projection="k=50 from m=100 public MPII images, refreshed every 10 steps")
    args.update(kwargs)
    return PrivacyLedger(**args)


def test_ledger_json_round_trip_and_epsilon_at_any_step(tmp_path):
    ledger = _ledger()
    ledger.record_step(120)
    path = str(tmp_path / "ledger.json")
    ledger.save(path)
    restored = PrivacyLedger.load(path)
    assert restored == ledger
    assert restored.steps == 120 and restored.sampling_probability == pytest.approx(B / N)
    assert restored.epsilon() == pytest.approx(_direct(1.0, 120), rel=1e-12)
    assert restored.epsilon(7) == pytest.approx(_direct(1.0, 7), rel=1e-12)
    assert restored.epsilon(0) == 0.0
    assert PrivacyLedger.from_json(ledger.to_json()) == ledger
    with pytest.raises(ValueError, match="unknown"):
        PrivacyLedger.from_dict({**ledger.to_dict(), "surprise": 1})


def test_budget_guard_stops_before_the_target_is_exceeded(tmp_path):
    ledger = _ledger(noise_multiplier=2.0, target_epsilon=0.5)
    limit = ledger.max_steps()
    assert 0 < limit < 100_000
    assert ledger.epsilon(limit) <= 0.5 < ledger.epsilon(limit + 1)
    ledger.record_step(limit - 1)
    # A resumed run continues the same budget.
    ledger.save(str(tmp_path / "l.json"))
    resumed = PrivacyLedger.load(str(tmp_path / "l.json"))
    assert resumed.remaining_steps() == 1
    resumed.record_step()
    with pytest.raises(BudgetExceededError):
        resumed.record_step()
    assert resumed.steps == limit and not resumed.can_step()
    assert resumed.epsilon() <= resumed.target_epsilon


def test_ledger_statement_and_checks():
    text = _ledger().statement()
    assert "Feature DP" in text and "gaussian blur" in text and "labels" in text
    assert "WARNING" in _ledger(noise_key_secret=False).statement()
    with pytest.raises(ValueError, match="psi"):
        _ledger(psi=None)
    with pytest.raises(ValueError):
        _ledger(method="none")                     # a target budget for a non-private run
    plain = _ledger(method="none", target_epsilon=None, psi=None)
    assert math.isinf(plain.epsilon()) and plain.record_step() == 1
    assert isinstance(plain.step_event(), dp_accounting.NonPrivateDpEvent)
    shuffled = _ledger(method="dpsgd", sampling="shuffle", target_epsilon=None)
    shuffled.record_step(400)   # 2 epochs
    assert shuffled.epsilon() == pytest.approx(
        accounting.compute_epsilon(N, B, 1.0, DELTA, steps=400, sampling="shuffle"))


def test_revealed_sampling_accounting():
    """Feature DP with a same-batch public term: the coin is visible, amplification is gone."""
    from dp_accounting.rdp import rdp_privacy_accountant as rdp_lib
    orders = rdp_lib.DEFAULT_RDP_ORDERS
    # q = 1: exactly the Gaussian mechanism.
    event = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(2.0), 30)
    gauss = dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(DELTA)
    assert accounting.revealed_sampling_epsilon(2.0, 1.0, 30, DELTA) == \
        pytest.approx(gauss, rel=1e-9)
    # Never below the amplified figure; far above it at small q.
    revealed = accounting.compute_epsilon(N, B, 1.0, DELTA, steps=2000, sampling_revealed=True)
    amplified = accounting.compute_epsilon(N, B, 1.0, DELTA, steps=2000)
    assert revealed > 3 * amplified
    rdp = accounting.revealed_sampling_rdp(B / N, 1.0, orders)
    amplified_rdp = rdp_lib._compute_rdp_poisson_subsampled_gaussian(B / N, 1.0, orders)
    assert np.all(rdp >= amplified_rdp - 1e-12)
    kwargs = dict(steps=2000, sampling_revealed=True)
    sigma = accounting.calibrate_noise_multiplier(N, B, 2.0, DELTA, **kwargs)
    assert 0.99 * 2.0 <= accounting.compute_epsilon(N, B, sigma, DELTA, **kwargs) <= 2.0
    with pytest.raises(ValueError, match="rdp"):
        accounting.compute_epsilon(N, B, 1.0, DELTA, accountant="pld", **kwargs)
    ledger = _ledger(sampling_revealed=True, target_epsilon=None)
    ledger.record_step(2000)
    want = accounting.revealed_sampling_epsilon(1.0, B / N, 2000, DELTA)
    assert ledger.epsilon() == pytest.approx(want)
    assert "without amplification" in ledger.statement()
