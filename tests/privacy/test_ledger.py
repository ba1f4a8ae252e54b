"""The ledger's store, its unit-aware statement and the one published statement.

(The ledger's budget, epsilon and serialisation are in tests/privacy/test_accounting.py.)"""

import json
import os

import pytest

from tfdphpe.privacy import LedgerStore, PrivacyLedger, published_statement


def _ledger(**kwargs):
    args = dict(method="dpsgd", noise_multiplier=1.0, l2_norm_clip=1.0, num_examples=500,
                batch_size=10, delta=1e-5)
    return PrivacyLedger(**{**args, **kwargs})


def test_store_names_lists_prunes_and_restores(tmp_path):
    store = LedgerStore(str(tmp_path / "ckpt"))
    ledger = _ledger()
    for steps in (2, 4, 6):
        ledger.record_step(steps - ledger.steps)
        store.save(ledger)
    assert store.steps() == [2, 4, 6]
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["ledger-2.json", "ledger-4.json",
                                                      "ledger-6.json"]
    store.prune({4, 6})
    assert store.steps() == [4, 6]
    assert store.restore(4, like=_ledger()).steps == 4
    with pytest.raises(RuntimeError, match="another configuration"):
        store.restore(4, like=_ledger(noise_multiplier=2.0))
    with pytest.raises(RuntimeError, match="no privacy ledger for step 5"):
        store.restore(5)
    bad = json.loads((tmp_path / "ckpt" / "ledger-6.json").read_text())
    bad["steps"] = 7
    (tmp_path / "ckpt" / "ledger-6.json").write_text(json.dumps(bad))
    with pytest.raises(RuntimeError, match="records 7 steps"):
        store.restore(6)


def test_statement_names_the_unit_and_what_a_group_gets():
    crop = _ledger(unit_description="one person crop")
    crop.record_step(100)
    text = crop.statement()
    assert "Privacy unit: one example (one person crop)" in text
    assert "group privacy" in text and "add-or-remove-one-example" in text
    people = _ledger(privacy_unit="identity", examples_per_unit=4,
                     unit_description="one person in every frame")
    people.record_step(100)
    text = people.statement()
    assert "over 500 identities" in text and "add-or-remove-one-identity" in text
    assert "at most 4 of its examples, averaged into one record" in text
    eps, delta = crop.group_epsilon(10)
    assert eps == pytest.approx(10 * crop.epsilon()) and delta > crop.delta
    with pytest.raises(ValueError, match="privacy_unit"):
        _ledger(privacy_unit="Patient ID")


def test_seeded_coins_must_be_accounted_as_revealed():
    with pytest.raises(ValueError, match="sampling_revealed"):
        _ledger(sampling_key_secret=False)
    seeded = _ledger(sampling_key_secret=False, sampling_revealed=True)
    seeded.record_step(50)
    hidden = _ledger()
    hidden.record_step(50)
    assert seeded.epsilon() > hidden.epsilon() and "coins follow from a seed" in seeded.statement()


def test_version_1_ledgers_are_read_without_amplification():
    old = {k: v for k, v in _ledger(steps=50).to_dict().items()
           if k not in ("privacy_unit", "unit_description", "examples_per_unit",
                        "sampling_key_secret", "skipped_updates")}
    old["version"] = 1
    read = PrivacyLedger.from_dict(old)
    assert read.sampling_revealed and not read.sampling_key_secret and read.version == 2
    assert read.epsilon() > _ledger(steps=50).epsilon()


def test_published_statement_and_skipped_updates():
    ledger = _ledger()
    ledger.record_step(10)
    ledger.record_skipped_update()
    report = published_statement(ledger, joint_names=["a"])
    assert report["steps_taken"] == 10 and report["epsilon"] == ledger.epsilon()
    assert report["skipped_updates"] == 1 and "not applied" in report["statement"]
    assert report["joint_names"] == ["a"] and ledger.published() == published_statement(ledger)
    assert published_statement(_ledger(method="none"))["epsilon"] is None
