"""The privacy statement that travels with an export."""

import json

import pytest

from tfdphpe.data.joints import COCO
from tfdphpe.export import metadata


def test_no_statement_says_there_is_no_dp_guarantee():
    statement = metadata.privacy_statement(None)
    assert statement["method"] == "none"
    assert "No differential privacy guarantee" in statement["statement"]


def test_statement_from_dict_and_from_a_training_privacy_json(tmp_path):
    given = {"method": "dpsgd", "epsilon": 1.0, "delta": 4e-5}
    assert metadata.privacy_statement(given) == given
    path = tmp_path / "privacy.json"
    path.write_text(json.dumps(given))
    assert metadata.privacy_statement(str(path)) == given


def test_statement_from_a_ledger_is_the_one_training_publishes():
    from tfdphpe.privacy import PrivacyLedger, published_statement
    ledger = PrivacyLedger(method="pdpsgd", noise_multiplier=1.0, l2_norm_clip=1.0,
                           num_examples=1000, batch_size=10, delta=4e-5, steps=10)
    statement = metadata.privacy_statement(ledger)
    assert statement["method"] == "pdpsgd" and statement["epsilon"] == ledger.epsilon()
    assert statement["statement"] == ledger.statement()
    assert statement == published_statement(ledger)


def test_statement_must_name_its_method_and_be_json(tmp_path):
    with pytest.raises(ValueError, match="method"):
        metadata.privacy_statement({"epsilon": 1.0})
    with pytest.raises(ValueError, match="JSON"):
        metadata.privacy_statement({"method": "dpsgd", "x": object()})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        metadata.privacy_statement(str(bad))


def test_deployment_metadata_carries_joints_and_geometry():
    meta = metadata.deployment_metadata(None, COCO, (256, 192), 2.0)
    assert meta["joint_names"] == list(COCO.names) and meta["joint_set"] == "coco"
    assert meta["input_size"] == [256, 192] and meta["split_ratio"] == 2.0
    assert meta["privacy"]["method"] == "none"
    json.dumps(meta)
