"""Empirical privacy audit in one training run: an epsilon lower bound from canaries.

``bound.py`` holds the statistics (the bound from guesses), ``canaries.py`` the harness (a real
training run with canaries, scored).

The claimed (epsilon, delta) is an upper bound proven on paper. This module measures a *lower*
bound, after Steinke, Nasr and Jagielski (2023, "Privacy auditing with one (1) training run"):

1. m canaries, each included in the training set by a secret fair coin S_i in {-1, +1};
2. one training run of the real optimizer, sampler and accountant;
3. a score per canary (larger = "looks included"); the auditor guesses +1 for the k+ highest
   scores, -1 for the k- lowest and abstains on the rest: r = k+ + k- guesses, v correct;
4. for an (epsilon, delta)-DP run the number of correct guesses is (for delta = 0 exactly,
   for delta > 0 up to the paper's delta term) no more likely to be large than for
   Binomial(r, e^eps / (1 + e^eps)). The lower bound is the largest epsilon whose claim the
   observed v rejects at significance ``beta`` (``epsilon_lower_bound``).

With delta > 0 the tail is the paper's approximate-DP bound: for W the number of correct guesses
and f(v) = P[Binomial(r, p_eps) >= v],

    P[W >= v] <= f(v) + 2 m delta * max_{i = 1..v} (f(v - i) - f(v)) / i

(m counts every canary, guessed or not). We require 2 m delta < 1: then the right-hand side
increases with epsilon (each term f(v) + 2 m delta (f(v - i) - f(v)) / i has derivative
r * pmf(v - 1) * (1 - 2 m delta / i) + 2 m delta * r * pmf(v - i - 1) / i > 0 in p), so the set of
rejected epsilons is an interval [0, bound) and the bound is one root.

Several guess counts (k+, k-) may be tried; each is tested at beta / (number of counts)
(Bonferroni), so the maximum over them is still a (1 - beta)-confidence bound. The counts are
fixed before the run (``guess_fractions``), never chosen from the scores.

Two kinds of canaries (docs/privacy.md, "Empirical audit"):

* white-box (``WhiteBoxAudit``): canary j is an example whose loss is
  ``scale * C * u_j``, u the weight vector of one extra ``Dense(1, use_bias=False)`` layer on a
  one-hot input that only canaries carry. Its gradient is the Dirac vector scale * C * e_j (norm
  scale * C >= C, so the clip brings it back to exactly C * e_j); it goes through the same
  loss_fn / batch / mask / Poisson path as the real examples, so clipping (either path), noise,
  sampling and accounting are all the real ones. Score: the step sum of the update's component
  along e_j, read from the released weights (u_0 - u_T, SGD) and from the noised sum before any
  projection (``add_noise``'s output).
* black-box (``BlackBoxAudit``): canaries are ordinary (e.g. mislabelled) examples; score: the
  drop of the canary's loss from the initial to the final model.

Projected methods release V V^T (noised sum). V comes from public gradients, which have no
component on the canary coordinates, so a Dirac canary and the noise on its coordinate are
erased from the release: the released-update bound is 0 by construction and says nothing. The
guarantee is proven for the noised sum before projection (projection is post-processing), so
for pdpsgd/fpdp the audited figure is the bound from that sum (``AuditResult.audited``).
"""

from tfdphpe.privacy.audit.bound import (DEFAULT_GUESS_FRACTIONS, Guesses, bound_from_scores,
                                         draw_coins, epsilon_lower_bound, guess_counts, p_value)
from tfdphpe.privacy.audit.canaries import (CANARY_INPUT, IS_CANARY, AuditConfig, AuditResult,
                                            BlackBoxAudit, CanaryAudit, WhiteBoxAudit)

__all__ = ["AuditConfig", "AuditResult", "BlackBoxAudit", "CANARY_INPUT", "CanaryAudit",
           "DEFAULT_GUESS_FRACTIONS", "Guesses", "IS_CANARY", "WhiteBoxAudit",
           "bound_from_scores", "draw_coins", "epsilon_lower_bound", "guess_counts", "p_value"]
