"""Public and private synthetic sets share no person and no seed (the demo's guarantee that its
public model never saw a private person), and the check that refuses sets that do."""

import json
import os

import pytest

from tfdphpe.data.synthetic import (SyntheticConfig, check_disjoint, identity_range,
                                    write_synthetic_dataset)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def _flagfile(name):
    with open(os.path.join(REPO, "configs", "demo", name)) as f:
        return dict(line.strip()[2:].split("=", 1) for line in f if line.startswith("--"))


def _info(seed, first, n):
    return {"seed": seed, "num_identities": n, "config": {"first_identity": first} if first
            else {}}


def test_check_disjoint_refuses_a_shared_seed_or_person():
    check_disjoint(_info(1000, 1_000_000, 5000), _info(0, 0, 100_000))
    with pytest.raises(ValueError, match="seed"):
        check_disjoint(_info(3, 1_000_000, 10), _info(3, 0, 10))
    with pytest.raises(ValueError, match="overlap"):
        check_disjoint(_info(1, 50, 100), _info(2, 0, 51))
    assert identity_range(_info(0, 0, 200)) == range(0, 200)


def test_demo_public_and_private_sets_share_no_person(tmp_path):
    infos, people = [], []
    for name in ("public_data.flags", "private_data.flags"):
        flags = _flagfile(name)
        cfg = SyntheticConfig(image_size=(64, 80), num_identities=int(flags["num_identities"]),
                              first_identity=int(flags["first_identity"]))
        out = str(tmp_path / name)
        write_synthetic_dataset(out, 20, 5, seed=int(flags["seed"]), cfg=cfg, num_workers=1)
        with open(os.path.join(out, "info.json")) as f:
            infos.append(json.load(f))
        ids = set()
        for split in ("train", "valid"):
            with open(os.path.join(out, "mpii", f"{split}.json")) as f:
                ids |= {e["identity"] for e in json.load(f)}
        assert ids <= set(identity_range(infos[-1]))
        people.append(ids)
    check_disjoint(*infos)
    assert not people[0] & people[1]
