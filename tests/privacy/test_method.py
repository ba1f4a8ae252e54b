"""The shared names: one spelling per method and sampling."""

import pytest

from tfdphpe.privacy import Method, Sampling


def test_methods_and_their_properties():
    assert Method.names() == ("none", "dpsgd", "pdpsgd", "fdp", "fpdp")
    assert [m.value for m in Method if m.projected] == ["pdpsgd", "fpdp"]
    assert [m.value for m in Method if m.feature_dp] == ["fdp", "fpdp"]
    assert not Method("none").private and Method("dpsgd").private


def test_one_sampling_spelling_and_the_old_one_read():
    assert Sampling.names() == ("poisson", "shuffle")
    assert Sampling("shuffled") is Sampling.SHUFFLE
    with pytest.raises(ValueError):
        Sampling("random")
