"""The pooled scorer's core: the model format, tenant → version, the caches, its answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator.config import BIKE_RENTAL, CHURN
from emulator.datagen import bike_rental_csv, churn_csv
from emulator.training import Model, ModelSpec, parse_csv, train
from tests.azureml_v2_scorer import load_scorer

score = load_scorer()


def trained(spec: ModelSpec, data: str) -> Model:
    """The emulator trainer's model of ``data`` (what a v2 job writes)."""
    return train(parse_csv(data), spec)


class Registry:
    """An in-memory registry: containers' tags and versions' model bytes; counts reads."""

    def __init__(self, module: Any = score) -> None:
        self.module = module
        self.tags: dict[str, dict[str, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.reads = {"tags": 0, "models": 0}

    def add(self, tenant: str, version: str, model: Model) -> None:
        self.blobs[f"azureml://datastores/ds/paths/{tenant}/{version}"] = model.to_json()

    def container_tags(self, tenant: str) -> dict[str, str]:
        self.reads["tags"] += 1
        if tenant not in self.tags:
            raise self.module.ScoreError(404, "no container")
        return dict(self.tags[tenant])

    def model_uri(self, tenant: str, version: str) -> str:
        uri = f"azureml://datastores/ds/paths/{tenant}/{version}"
        if uri not in self.blobs:
            raise self.module.ScoreError(404, "no version")
        return uri

    def read_model(self, uri: str) -> bytes:
        self.reads["models"] += 1
        return self.blobs[uri]


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("spec", "data"), [(BIKE_RENTAL, bike_rental_csv), (CHURN, churn_csv)])
def test_the_scorer_predicts_what_the_trainer_predicts(spec: ModelSpec, data: Any) -> None:
    """The same model file gives the same values in the scorer as in the trainer that wrote
    it, interactions and unknown levels included; classifiers answer label and probability."""
    model = trained(spec, data("t1", 400, seed=1))
    rows = parse_csv(data("t1", 30, seed=2))
    parsed = score.LinearModel.parse(model.to_json())
    assert [parsed.predict(r) for r in rows] == pytest.approx(model.predict(rows), rel=1e-9)
    for row, expected in zip(rows, model.score(rows), strict=True):
        cells = list(parsed.score(row).values())
        assert cells[0] == expected[0] or float(cells[0]) == pytest.approx(float(expected[0]))
        assert [float(c) for c in cells[1:]] == pytest.approx([float(c) for c in expected[1:]])


def test_a_file_that_is_no_model_is_a_424() -> None:
    """Not JSON, another format, or coefficients that do not fit the features."""
    for data in (b"nope", json.dumps({"format": "other"}).encode()):
        with pytest.raises(score.ScoreError) as failed:
            score.LinearModel.parse(data)
        assert failed.value.status == 424
    doc = json.loads(trained(BIKE_RENTAL, bike_rental_csv("t1", 200)).to_json())
    doc["coefficients"] = doc["coefficients"][:-1]
    with pytest.raises(score.ScoreError):
        score.LinearModel.parse(json.dumps(doc).encode())


def scorer(registry: Registry, clock: Clock, **options: Any) -> Any:
    """A scorer over ``registry`` with a pointer TTL of 10 s."""
    return score.Scorer(registry, pointer_ttl=10.0, clock=clock, **options)


def test_the_pointer_picks_the_version_and_is_read_again_after_its_ttl() -> None:
    """No version in the request: the pointed one serves and the answer names it; the
    pointer is read once per TTL; a moved pointer is seen after the TTL."""
    registry, clock = Registry(), Clock()
    for version, seed in (("1", 1), ("2", 2)):
        registry.add("t1", version, trained(BIKE_RENTAL, bike_rental_csv("t1", 300, seed=seed)))
    registry.tags["t1"] = {"retrainq-deployed-version": "1"}
    pool = scorer(registry, clock)
    rows = parse_csv(bike_rental_csv("t1", 3, seed=9))
    first = pool.score({"tenant": "t1", "rows": rows})
    assert (first["version"], first["source"], len(first["predictions"])) == ("1", "pointer", 3)
    registry.tags["t1"] = {"retrainq-deployed-version": "2"}
    clock.now = 9.9
    assert pool.score({"tenant": "t1", "rows": rows})["version"] == "1"
    assert registry.reads["tags"] == 1
    clock.now = 10.0
    assert pool.score({"tenant": "t1", "rows": rows})["version"] == "2"
    assert registry.reads["tags"] == 2


def test_an_explicit_version_serves_beside_the_pointed_one_and_models_are_cached() -> None:
    """A named version serves without moving anything (champion/challenger); each version
    loads once; the least recently used is evicted beyond the cache's size."""
    registry, clock = Registry(), Clock()
    for tenant in ("t1", "t2"):
        for version in ("1", "2"):
            registry.add(tenant, version, trained(BIKE_RENTAL, bike_rental_csv(tenant, 200)))
        registry.tags[tenant] = {"retrainq-deployed-version": "2"}
    pool = scorer(registry, clock, cache_size=2)
    rows = parse_csv(bike_rental_csv("t1", 2))
    explicit = pool.score({"tenant": "t1", "rows": rows, "version": "1"})
    assert (explicit["version"], explicit["source"]) == ("1", "explicit")
    pool.score({"tenant": "t1", "rows": rows})
    pool.score({"tenant": "t1", "rows": rows, "version": 1})
    assert registry.reads["models"] == 2
    pool.score({"tenant": "t2", "rows": rows})  # evicts t1 v2, the least recently used
    pool.score({"tenant": "t1", "rows": rows, "version": "1"})
    assert registry.reads["models"] == 3
    pool.score({"tenant": "t1", "rows": rows})
    assert registry.reads["models"] == 4


def test_requests_that_cannot_be_served_name_why() -> None:
    """Bad body 400; a tenant with no pointer, no container or of another pool 404; a row
    missing a column 400; an unknown explicit version 404."""
    registry, clock = Registry(), Clock()
    registry.add("t1", "1", trained(BIKE_RENTAL, bike_rental_csv("t1", 200)))
    registry.tags["t1"] = {"retrainq-pool": "p1"}
    registry.tags["t2"] = {"retrainq-pool": "p2", "retrainq-deployed-version": "1"}
    pool = scorer(registry, clock, pool="p1")

    def status(request: object) -> int:
        with pytest.raises(score.ScoreError) as failed:
            pool.score(request)
        return int(failed.value.status)

    assert status([]) == 400
    assert status({"tenant": "T!", "rows": []}) == 400
    assert status({"tenant": "t1", "rows": "x"}) == 400
    assert status({"tenant": "t1", "rows": []}) == 404
    assert status({"tenant": "t2", "rows": []}) == 404
    assert status({"tenant": "t3", "rows": []}) == 404
    assert status({"tenant": "t1", "rows": [{"yr": "1"}], "version": "1"}) == 400
    assert status({"tenant": "t1", "rows": [], "version": "9"}) == 404


def test_the_entry_points_answer_errors_as_bodies() -> None:
    """run() before init() is a 500 body; not JSON 400; a ScoreError its status."""
    fresh = load_scorer("retrainq_pooled_scorer_entry")
    assert fresh.run("{}")["status"] == 500
    fresh.__dict__["_SCORER"] = fresh.Scorer(Registry(fresh))
    assert fresh.run("not json")["status"] == 400
    assert fresh.run(json.dumps({"tenant": "t1", "rows": []}))["status"] == 404
