"""Pure training, model format and data generation."""

from __future__ import annotations

import json

import pytest

from emulator.config import BIKE_RENTAL, CHURN
from emulator.datagen import bike_rental_rows, churn_csv, churn_rows
from emulator.training import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    Model,
    TrainingError,
    evaluation_table,
    parse_csv,
    run_experiment,
    split,
    train,
)


def test_same_data_same_model_same_bytes() -> None:
    """Training is deterministic: equal data gives byte-equal model JSON."""
    rows = bike_rental_rows("t", 300, seed=1)
    assert train(rows, BIKE_RENTAL).to_json() == train(rows, BIKE_RENTAL).to_json()


def test_json_round_trip_predicts_the_same() -> None:
    """A model read back from its .ilearner JSON predicts exactly the same values."""
    rows = bike_rental_rows("t", 300, seed=1)
    model = train(rows, BIKE_RENTAL)
    again = Model.from_json(model.to_json())
    assert again.predict(rows[:50]) == model.predict(rows[:50])
    doc = json.loads(model.to_json())
    assert doc["label"] == "cnt"
    assert "coefficients" in doc


def test_split_holds_out_a_quarter_deterministically() -> None:
    """25% of rows are held out, the same rows every time, spread over all hours."""
    rows = bike_rental_rows("t", 480, seed=1)
    train_rows, test_rows = split(rows, BIKE_RENTAL)
    assert (len(train_rows), len(test_rows)) == (360, 120)
    assert split(rows, BIKE_RENTAL) == (train_rows, test_rows)
    assert len({r["hr"] for r in test_rows}) > 20


def test_tenants_and_drift_differ() -> None:
    """Each tenant has its own pattern and the drifted data moves the model."""
    a = train(bike_rental_rows("a", 400, seed=1), BIKE_RENTAL)
    b = train(bike_rental_rows("b", 400, seed=1), BIKE_RENTAL)
    drifted = train(bike_rental_rows("a", 400, seed=1, drift=True), BIKE_RENTAL)
    probe = bike_rental_rows("probe", 10)
    assert a.predict(probe) != b.predict(probe)
    assert a.predict(probe) != drifted.predict(probe)
    assert bike_rental_rows("a", 20, seed=1) == bike_rental_rows("a", 20, seed=1)


def test_experiment_metrics() -> None:
    """Regression and classification report Azure ML's Evaluate Model columns."""
    bike = run_experiment("\n".join(_csv(bike_rental_rows("m", 800, seed=2))), BIKE_RENTAL)
    assert list(bike.metrics) == list(REGRESSION_METRICS)
    assert bike.metrics["Coefficient of Determination"] > 0.7
    churn = run_experiment(churn_csv("m", 800, seed=2), CHURN)
    assert list(churn.metrics) == list(CLASSIFICATION_METRICS)
    assert churn.metrics["AUC"] > 0.6
    table = evaluation_table(churn.metrics, ".csv").decode().splitlines()
    assert table[0] == ",".join(CLASSIFICATION_METRICS)
    assert len(table) == 2
    assert "\t" in evaluation_table(churn.metrics, ".tsv").decode()


def test_classification_scores_labels_and_probabilities() -> None:
    """Classification scoring yields a class label and the positive-class probability."""
    model = train(churn_rows("c", 400, seed=1), CHURN)
    scored = model.score(churn_rows("d", 5))
    assert all(label in ("0", "1") and 0 <= float(p) <= 1 for label, p in scored)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("season,hr\n" + "1,2\n" * 20, "not found"),
        ("a\n1\n", "rows"),
        ("", "empty"),
    ],
)
def test_bad_data_raises_training_error(data: str, message: str) -> None:
    """Unusable data raises TrainingError with a readable message."""
    with pytest.raises(TrainingError, match=message):
        run_experiment(data, BIKE_RENTAL)


def test_from_json_rejects_other_documents() -> None:
    """Anything but our model format is refused."""
    for data in (b"{}", b"not json", json.dumps({"format": "x"}).encode()):
        with pytest.raises(TrainingError):
            Model.from_json(data)


def test_parse_csv_strips_bom() -> None:
    """A UTF-8 BOM does not end up in the first column name."""
    assert list(parse_csv("\ufeffa,b\n1,2\n".encode())[0]) == ["a", "b"]


def _csv(rows: list[dict[str, str]]) -> list[str]:
    columns = list(rows[0])
    return [",".join(columns)] + [",".join(r[c] for c in columns) for r in rows]
