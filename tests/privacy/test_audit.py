"""The one-run audit: the bound against independent computations, then whole audited runs.

A run here is tiny (64 real examples, 256 canaries, 40 steps of expected batch 32, claimed
epsilon 1) and seeded, so every figure is the same on every run. The correct code must stay at
or below the claim; each injected defect (noise off, a clip bound 10x the one the noise is
calibrated for, canaries in every step instead of Poisson sampling) must push the bound above
it. The defects live in subclasses below, never in flags a user could set.
"""

import math

import dp_accounting
import numpy as np
import pytest
import tensorflow as tf
from scipy import special

from tfdphpe.data.sampling import poisson_step_indices
from tfdphpe.privacy import audit

CONFIG = audit.AuditConfig(target_epsilon=1.0, delta=1e-5, num_canaries=256, batch_size=32,
                           steps=40, l2_norm_clip=1.0, projection_dim=4, refresh_every=10, seed=0)
NUM_REAL = 64


# --------------------------------------------------------------------------- the bound alone
def test_perfect_guesses_match_the_closed_form_and_grow_like_log_r():
    # delta = 0 and v = r: P[Binomial(r, p) >= r] = p^r = beta gives p = beta^(1/r).
    beta = 0.05
    bounds = []
    for r in (10, 100, 1000, 10000):
        want = special.logit(beta ** (1.0 / r))
        got = audit.epsilon_lower_bound(r, r, r, delta=0.0, beta=beta)
        assert got == pytest.approx(want, abs=1e-5)
        bounds.append(got)
        if r >= 100:   # asymptotically log(r / log(1 / beta)) - log(1 / beta) / (2 r)
            assert abs(got - math.log(r / math.log(1 / beta))) < math.log(1 / beta) / r
    np.testing.assert_allclose(np.diff(bounds[1:]), math.log(10), atol=0.02)


def test_randomized_response_bound_covers_and_is_tight():
    """Monte Carlo on a pure eps0-DP mechanism (each coin reported truthfully w.p. e^eps0/(1+e^eps0))."""
    rng = np.random.default_rng(0)
    eps0, m, trials, beta = 1.0, 2000, 400, 0.05
    p = special.expit(eps0)
    correct = rng.binomial(m, p, size=trials)
    bounds = np.array([audit.epsilon_lower_bound(m, int(v), m, 0.0, beta) for v in correct])
    # Valid: a bound above the truth happens with probability <= beta (binomial slack, 3 sd).
    assert np.mean(bounds > eps0) <= beta + 3 * math.sqrt(beta * (1 - beta) / trials)
    # Tight for many guesses: the bound sits just below eps0.
    assert 0.8 * eps0 < np.median(bounds) < eps0


def test_gaussian_mechanism_bound_with_delta_is_valid():
    """Scores of canaries each behind a Gaussian mechanism; the truth from dp_accounting's PLD."""
    rng = np.random.default_rng(1)
    sigma, delta, m, trials = 0.5, 1e-5, 1000, 200
    eps_true = dp_accounting.pld.PLDAccountant().compose(
        dp_accounting.GaussianDpEvent(sigma)).get_epsilon(delta)
    above = 0
    bounds = []
    for t in range(trials):
        coins = np.where(rng.random(m) < 0.5, 1, -1)
        scores = (coins == 1) + sigma * rng.normal(size=m)      # sensitivity 1, std sigma
        bound = audit.bound_from_scores(scores, coins, delta, 0.05, seed=t).epsilon_lower_bound
        bounds.append(bound)
        above += bound > eps_true
    assert above / trials <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / trials)
    assert 0.3 * eps_true < np.median(bounds) < eps_true


def test_delta_term_lowers_the_bound_and_keeps_the_p_value_monotone():
    r, v, m = 400, 330, 1000
    b0 = audit.epsilon_lower_bound(r, v, m, 0.0)
    assert audit.epsilon_lower_bound(r, v, m, 1e-12) == pytest.approx(b0, abs=1e-4)
    previous = b0
    for delta in (1e-6, 1e-5, 1e-4):
        b = audit.epsilon_lower_bound(r, v, m, delta)
        assert b < previous
        previous = b
    grid = np.linspace(0, 4, 81)
    values = [audit.p_value(r, v, m, e, 1e-4) for e in grid]
    assert np.all(np.diff(values) >= 0)
    # At the bound the p-value equals beta (the bound is the root, not a grid point).
    assert audit.p_value(r, v, m, b, 1e-4) == pytest.approx(0.05, rel=1e-4)
    with pytest.raises(ValueError, match="2 \\* m \\* delta"):
        audit.epsilon_lower_bound(10, 10, 1000, delta=1e-3)


def test_the_best_guess_count_is_tested_at_beta_over_the_number_of_counts():
    rng = np.random.default_rng(2)
    m = 500
    coins = np.where(rng.random(m) < 0.5, 1, -1)
    scores = 1.5 * (coins == 1) + rng.normal(size=m)
    counts = audit.guess_counts(m, (0.1, 0.5, 1.0))
    assert counts == [(25, 25), (125, 125), (250, 250)]
    best = audit.bound_from_scores(scores, coins, 1e-5, 0.05, counts)
    order = np.argsort(scores)
    manual = []
    for k_plus, k_minus in counts:
        v = int(np.sum(coins[order[m - k_plus:]] == 1) + np.sum(coins[order[:k_minus]] == -1))
        manual.append(audit.epsilon_lower_bound(k_plus + k_minus, v, m, 1e-5, 0.05 / 3))
    assert best.epsilon_lower_bound == pytest.approx(max(manual))
    assert best.epsilon_lower_bound > 0


def test_tied_scores_carry_no_information():
    coins = audit.draw_coins(400, seed=5)
    assert set(np.unique(coins)) == {-1, 1}
    assert audit.bound_from_scores(np.zeros(400), coins, 1e-5).epsilon_lower_bound == 0.0


# --------------------------------------------------------------------------- audited runs
def task(seed: int = 0):
    """A ghost-compatible small model on random regression data, with a public view."""
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((4, 4, 2))
    x = tf.keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = tf.keras.layers.Flatten()(tf.nn.tanh(x))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, name="head")(x))
    rng = np.random.default_rng(seed)

    def examples(n):
        image = rng.normal(size=(n, 4, 4, 2)).astype(np.float32)
        return {"image": image, "public_image": 0.5 * image,
                "target": rng.normal(size=(n, 3)).astype(np.float32)}

    def loss_fn(batch):
        return tf.reduce_sum(tf.square(model(batch["image"]) - batch["target"]), axis=1)

    def public_loss_fn(batch):
        return tf.reduce_sum(tf.square(model(batch["public_image"]) - batch["target"]), axis=1)

    return model, loss_fn, public_loss_fn, examples(NUM_REAL), examples(20)


def white_box(cls=audit.WhiteBoxAudit, method="dpsgd", clipping="vectorized", **overrides):
    config = audit.AuditConfig(**{**CONFIG.__dict__, "method": method, "clipping": clipping,
                                  **overrides})
    model, loss_fn, public_loss_fn, data, s_pub = task()
    run = cls(config, model, loss_fn, data,
              public_loss_fn=public_loss_fn if config.feature_dp else None,
              public_data=s_pub if config.projected else None, sampler=poisson_step_indices)
    return run, run.run()


class NoiselessAudit(audit.WhiteBoxAudit):
    """Defect: the optimizer adds no noise, while the claim keeps the calibrated sigma."""

    def make_optimizer(self, noise_multiplier, l2_norm_clip=None):
        return super().make_optimizer(0.0, l2_norm_clip)


class LooseClipAudit(audit.WhiteBoxAudit):
    """Defect: records are clipped at 10 C while the noise stays sigma * C (calibrated for C)."""

    def make_optimizer(self, noise_multiplier, l2_norm_clip=None):
        c = 10.0 * self.config.l2_norm_clip
        return super().make_optimizer(noise_multiplier / 10.0, c)


class EveryStepAudit(audit.WhiteBoxAudit):
    """Defect: every included canary is in every step; the claim still assumes Poisson with q."""

    def step_indices(self, step):
        return np.union1d(super().step_indices(step), self.canary_rows)


PATHS = [(m, c) for m in ("dpsgd", "pdpsgd", "fdp", "fpdp") for c in ("vectorized", "ghost")]


@pytest.mark.parametrize("method,clipping", PATHS)
def test_correct_code_stays_below_the_claim(method, clipping):
    run, result = white_box(method=method, clipping=clipping)
    assert result.claimed_epsilon == pytest.approx(1.0, rel=2e-3)
    assert result.epsilon_lower_bound <= result.claimed_epsilon
    assert result.num_included == int(np.sum(run.coins == 1))


@pytest.mark.parametrize("defect", [NoiselessAudit, LooseClipAudit, EveryStepAudit])
@pytest.mark.parametrize("method,clipping", [("dpsgd", "vectorized"), ("fpdp", "ghost")])
def test_each_defect_pushes_the_bound_above_the_claim(defect, method, clipping):
    _, result = white_box(defect, method=method, clipping=clipping)
    assert result.epsilon_lower_bound > result.claimed_epsilon, result.row()


def test_released_update_is_the_tapped_noised_sum_scaled():
    """The tap sees what is applied: u_0 - u_T = lr / B * (step sum of the noised sums)."""
    run, result = white_box()
    released, noised = run.scores()
    np.testing.assert_allclose(released, CONFIG.learning_rate / CONFIG.batch_size * noised,
                               rtol=1e-4, atol=1e-6)
    assert result.released == result.noised_sum


def test_both_clipping_paths_give_the_same_canary_scores():
    scores = [white_box(clipping=clipping)[0].scores()[0] for clipping in ("vectorized", "ghost")]
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["pdpsgd", "fpdp"])
def test_projection_erases_canaries_outside_span_v(method):
    """V comes from public gradients, which have no canary component: the release never moves u."""
    run, result = white_box(method=method)
    released, noised = run.scores()
    assert np.all(released == 0)
    assert result.released.epsilon_lower_bound == 0.0
    assert np.std(noised) > 0          # the pre-projection sum, the audited figure, is noisy
    assert result.audited == result.noised_sum


def test_included_canaries_are_sampled_like_every_example():
    run, _ = white_box()
    hits = np.zeros(len(run.train_set["image"]))
    for t in range(CONFIG.steps):
        hits[run.step_indices(t)] += 1
    rate = hits[run.canary_rows].mean() / CONFIG.steps
    q = run.sampling_rate
    assert abs(rate - q) < 4 * math.sqrt(q * (1 - q) / (CONFIG.steps * len(run.canary_rows)))


def test_black_box_run_and_feature_dp_exclusion():
    model, loss_fn, public_loss_fn, data, _ = task()
    rng = np.random.default_rng(7)
    canaries = {"image": rng.normal(size=(64, 4, 4, 2)).astype(np.float32),
                "target": 3.0 * rng.normal(size=(64, 3)).astype(np.float32)}
    canaries["public_image"] = np.zeros_like(canaries["image"])
    config = audit.AuditConfig(**{**CONFIG.__dict__, "method": "fdp", "num_canaries": 64,
                                  "steps": 10})
    run = audit.BlackBoxAudit(config, model, loss_fn, data, canaries,
                              public_view_keys={"image": "public_image"},
                              public_loss_fn=public_loss_fn, sampler=poisson_step_indices)
    result = run.run()
    assert result.noised_sum is None and result.epsilon_lower_bound <= result.claimed_epsilon
    # Feature DP: an excluded canary stays, its private image replaced by its public view.
    rows = {k: v[run.canary_rows] for k, v in run.train_set.items()}
    out = run.coins == -1
    assert len(run.canary_rows) == 64
    np.testing.assert_array_equal(rows["image"][out], canaries["public_image"][out])
    np.testing.assert_array_equal(rows["image"][~out], canaries["image"][~out])


def test_canary_units_show_why_the_privacy_unit_matters():
    """Issue 20.5: canaries that are whole units of 10 examples. Protected as units, the one-run
    bound stays below the claim; protected as examples (what --privacy_unit=example claims for
    a person in 10 crops), the bound exceeds the example-level claim."""
    kwargs = dict(canary_size=10, steps=40, batch_size=128)
    _, units = white_box(unit_level=True, **kwargs)
    _, examples = white_box(unit_level=False, **kwargs)
    assert units.claimed_epsilon == pytest.approx(1.0, rel=1e-3)
    assert units.epsilon_lower_bound <= units.claimed_epsilon
    assert examples.epsilon_lower_bound > examples.claimed_epsilon, examples.row()
    assert units.row()["unit"] == "unit" and examples.row()["canary_size"] == 10
