"""Pure training, evaluation and model format of the emulator (no I/O, safe to run in a thread).

A model is a standardised linear model (scikit-learn ``Ridge`` for regression,
``LogisticRegression`` for binary classification) over numeric features plus one-hot encoded
categorical features. It is stored as JSON in the ``.ilearner`` blob (never pickle) and holds
everything needed to predict: feature lists, category levels, means, scales, coefficients and
intercept. ``Model.from_json(model.to_json())`` predicts exactly what ``model`` predicts.

``train(rows, spec)`` fits on the deterministic training part of ``rows`` (a fixed-seed
sample of ``spec.holdout_fraction`` of the rows is held out), which is exactly the model a
BES job writes for the same CSV; ``evaluate`` scores the held-out part with the columns of
Azure ML's Evaluate Model.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, Field, model_validator

MODEL_FORMAT = "retrainq-emulator.linear/1"
MIN_ROWS = 8

REGRESSION_METRICS = (
    "Mean Absolute Error",
    "Root Mean Squared Error",
    "Relative Absolute Error",
    "Relative Squared Error",
    "Coefficient of Determination",
)
CLASSIFICATION_METRICS = ("AUC", "Accuracy", "Precision", "Recall", "F1 Score")

Row = Mapping[str, str]
Kind = Literal["regression", "binary_classification"]


class TrainingError(ValueError):
    """The data cannot be trained on (missing columns, bad values, too few rows)."""


class ModelSpec(BaseModel):
    """What a web service learns: label, features, algorithm settings and resource name.

    A predictive service's endpoints start with a model trained on the spec's initial data:
    the CSV file ``initial_data``, or rows of the built-in generator ``datagen``; a spec with
    neither starts with no model (its endpoints score nothing until one is deployed).
    """

    name: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    kind: Kind
    label: str
    numeric_features: list[str]
    categorical_features: list[str] = Field(default_factory=list)
    positive_class: str = "1"
    resource_name: str
    holdout_fraction: float = Field(default=0.25, gt=0, lt=1)
    alpha: float = Field(default=1.0, gt=0)
    datagen: Literal["bike_rental", "churn"] | None = None
    initial_data: Path | None = None

    @model_validator(mode="after")
    def _one_initial_source(self) -> ModelSpec:
        if self.datagen is not None and self.initial_data is not None:
            raise ValueError("give initial_data or datagen, not both")
        return self

    @property
    def features(self) -> list[str]:
        """All feature columns, numeric first."""
        return [*self.numeric_features, *self.categorical_features]


@dataclass(frozen=True)
class Model:
    """A trained linear model; pure numpy prediction, JSON round-trip."""

    spec_name: str
    kind: Kind
    label: str
    numeric_features: list[str]
    categories: dict[str, list[str]]
    means: list[float]
    scales: list[float]
    coefficients: list[float]
    intercept: float
    classes: list[str] = field(default_factory=list)
    training_rows: int = 0
    holdout_rows: int = 0

    @property
    def features(self) -> list[str]:
        """Input columns the model needs."""
        return input_columns([*self.numeric_features, *self.categories])

    def design(self, rows: Sequence[Row]) -> NDArray[np.float64]:
        """Matrix of standardised numeric values and one-hot categories for ``rows``."""
        return _design(rows, self.numeric_features, self.categories, self.means, self.scales)

    def predict(self, rows: Sequence[Row]) -> list[float]:
        """Regression values, or the positive-class probability for classification."""
        if not rows:
            return []
        raw = self.design(rows) @ np.asarray(self.coefficients, dtype=np.float64)
        raw = raw + self.intercept
        if self.kind == "binary_classification":
            raw = 1.0 / (1.0 + np.exp(-raw))
        return [float(v) for v in raw]

    def scored_columns(self) -> list[str]:
        """Names of the columns scoring appends (Azure ML's Score Model names)."""
        if self.kind == "binary_classification":
            return ["Scored Labels", "Scored Probabilities"]
        return ["Scored Labels"]

    def score(self, rows: Sequence[Row]) -> list[list[str]]:
        """Scored cells (as strings) per row, in ``scored_columns`` order."""
        values = self.predict(rows)
        if self.kind == "binary_classification":
            negative, positive = self.classes
            return [[positive if p >= 0.5 else negative, repr(p)] for p in values]
        return [[repr(v)] for v in values]

    def to_dict(self) -> dict[str, Any]:
        """The ``.ilearner`` JSON document."""
        return {
            "format": MODEL_FORMAT,
            "spec": self.spec_name,
            "kind": self.kind,
            "label": self.label,
            "numeric_features": self.numeric_features,
            "categorical_features": [
                {"name": name, "levels": levels} for name, levels in self.categories.items()
            ],
            "means": self.means,
            "scales": self.scales,
            "coefficients": self.coefficients,
            "intercept": self.intercept,
            "classes": self.classes,
            "training_rows": self.training_rows,
            "holdout_rows": self.holdout_rows,
        }

    def to_json(self) -> bytes:
        """Serialised model (deterministic bytes for the same model)."""
        return json.dumps(self.to_dict(), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Model:
        """Parse an ``.ilearner`` document; raises ``TrainingError`` when it is not one."""
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
                raise TrainingError(f"not a {MODEL_FORMAT} model")
            model = cls(
                spec_name=str(doc["spec"]),
                kind=doc["kind"],
                label=str(doc["label"]),
                numeric_features=[str(f) for f in doc["numeric_features"]],
                categories={
                    str(c["name"]): [str(x) for x in c["levels"]]
                    for c in doc["categorical_features"]
                },
                means=[float(x) for x in doc["means"]],
                scales=[float(x) for x in doc["scales"]],
                coefficients=[float(x) for x in doc["coefficients"]],
                intercept=float(doc["intercept"]),
                classes=[str(c) for c in doc.get("classes", [])],
                training_rows=int(doc.get("training_rows", 0)),
                holdout_rows=int(doc.get("holdout_rows", 0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TrainingError(f"invalid trained model: {exc}") from exc
        width = len(model.numeric_features) + sum(len(v) for v in model.categories.values())
        if model.kind not in ("regression", "binary_classification") or width != len(
            model.coefficients
        ):
            raise TrainingError("invalid trained model: coefficients do not match features")
        return model

    def fits(self, spec: ModelSpec) -> bool:
        """Whether this model can serve a web service declared with ``spec``."""
        return (
            self.kind == spec.kind
            and self.label == spec.label
            and self.numeric_features == spec.numeric_features
            and list(self.categories) == spec.categorical_features
        )


@dataclass(frozen=True)
class Experiment:
    """What a training job produces: the model and its evaluation on the held-out rows."""

    model: Model
    metrics: dict[str, float]


def parse_table(data: bytes | str) -> tuple[list[str], list[dict[str, str]]]:
    """Column names (in order) and rows of a CSV dataset with a header row (UTF-8, optional BOM)."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        reader = csv.DictReader(io.StringIO(text))
        rows = [dict(r) for r in reader]
    except (csv.Error, UnicodeDecodeError) as exc:
        raise TrainingError(f"the input dataset is not valid CSV: {exc}") from exc
    if reader.fieldnames is None:
        raise TrainingError("the input dataset is empty")
    return list(reader.fieldnames), rows


def parse_csv(data: bytes | str) -> list[dict[str, str]]:
    """Rows of a CSV dataset with a header row (UTF-8, optional BOM)."""
    return parse_table(data)[1]


def normalize_category(value: str) -> str:
    """Category level of a cell: ``"1.0"`` and ``"1"`` are the same level."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


def split(rows: Sequence[Row], spec: ModelSpec) -> tuple[list[Row], list[Row]]:
    """Deterministic (training, held-out) split: a fixed-seed sample of the rows is held out."""
    count = round(len(rows) * spec.holdout_fraction)
    held = set(random.Random(f"holdout:{len(rows)}").sample(range(len(rows)), count))
    train_rows = [r for i, r in enumerate(rows) if i not in held]
    test_rows = [r for i, r in enumerate(rows) if i in held]
    return train_rows, test_rows


def _number(row: Row, column: str) -> float:
    cell = row.get(column)
    if cell is None:
        raise TrainingError(f"column '{column}' not found in the dataset")
    try:
        value = float(cell)
    except ValueError as exc:
        raise TrainingError(f"column '{column}' has a non-numeric value {cell!r}") from exc
    if not math.isfinite(value):
        raise TrainingError(f"column '{column}' has a non-finite value {cell!r}")
    return value


def _level(row: Row, column: str) -> str:
    # "hr*workingday" is an interaction: one level per combination of the two columns.
    parts = []
    for name in column.split("*"):
        cell = row.get(name)
        if cell is None:
            raise TrainingError(f"column '{name}' not found in the dataset")
        parts.append(normalize_category(cell))
    return "|".join(parts)


def input_columns(features: Sequence[str]) -> list[str]:
    """Dataset columns behind feature names (an interaction ``a*b`` needs ``a`` and ``b``)."""
    out: list[str] = []
    for feature in features:
        out.extend(name for name in feature.split("*") if name not in out)
    return out


def _design(
    rows: Sequence[Row],
    numeric: Sequence[str],
    categories: Mapping[str, Sequence[str]],
    means: Sequence[float],
    scales: Sequence[float],
) -> NDArray[np.float64]:
    width = len(numeric) + sum(len(levels) for levels in categories.values())
    out = np.zeros((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, column in enumerate(numeric):
            out[i, j] = (_number(row, column) - means[j]) / scales[j]
        offset = len(numeric)
        for column, levels in categories.items():
            level = _level(row, column)
            if level in levels:
                out[i, offset + levels.index(level)] = 1.0
            offset += len(levels)
    return out


def _labels(rows: Sequence[Row], spec: ModelSpec) -> list[str]:
    labels = []
    for row in rows:
        cell = row.get(spec.label)
        if cell is None:
            raise TrainingError(f"label column '{spec.label}' not found in the dataset")
        labels.append(cell)
    return labels


def train(rows: Sequence[Row], spec: ModelSpec) -> Model:
    """Fit ``spec``'s model on the training part of ``rows`` (what a BES job writes)."""
    train_rows, test_rows = split(rows, spec)
    return _fit(train_rows, spec, holdout_rows=len(test_rows))


def _fit(rows: Sequence[Row], spec: ModelSpec, holdout_rows: int) -> Model:
    if len(rows) < 2:
        raise TrainingError(f"at least {MIN_ROWS} rows are needed to train")
    raw = np.array([[_number(r, c) for c in spec.numeric_features] for r in rows], dtype=float)
    raw = raw.reshape(len(rows), len(spec.numeric_features))
    means = raw.mean(axis=0) if len(spec.numeric_features) else np.zeros(0)
    scales = raw.std(axis=0) if len(spec.numeric_features) else np.zeros(0)
    scales = np.where(scales > 0, scales, 1.0)
    categories: dict[str, list[str]] = {}
    for column in spec.categorical_features:
        levels = {_level(row, column) for row in rows}
        categories[column] = sorted(levels, key=_level_key)
    mean_list = [float(v) for v in means]
    scale_list = [float(v) for v in scales]
    x = _design(rows, spec.numeric_features, categories, mean_list, scale_list)
    labels = _labels(rows, spec)
    common = {
        "spec_name": spec.name,
        "kind": spec.kind,
        "label": spec.label,
        "numeric_features": list(spec.numeric_features),
        "categories": categories,
        "means": mean_list,
        "scales": scale_list,
        "training_rows": len(rows),
        "holdout_rows": holdout_rows,
    }
    if spec.kind == "regression":
        from sklearn.linear_model import Ridge

        y = np.array([_number(r, spec.label) for r in rows], dtype=np.float64)
        reg = Ridge(alpha=spec.alpha, solver="cholesky").fit(x, y)
        return Model(
            coefficients=[float(c) for c in reg.coef_],
            intercept=float(reg.intercept_),
            **common,  # type: ignore[arg-type]  # keys match Model's fields
        )
    from sklearn.linear_model import LogisticRegression

    classes = sorted({normalize_category(v) for v in labels}, key=_level_key)
    if len(classes) != 2 or spec.positive_class not in classes:
        raise TrainingError(
            f"label '{spec.label}' must have two classes including {spec.positive_class!r}; "
            f"found {classes}"
        )
    negative = next(c for c in classes if c != spec.positive_class)
    y_cls = np.array([normalize_category(v) == spec.positive_class for v in labels], dtype=int)
    clf = LogisticRegression(C=1.0 / spec.alpha, max_iter=1000).fit(x, y_cls)
    return Model(
        coefficients=[float(c) for c in clf.coef_[0]],
        intercept=float(clf.intercept_[0]),
        classes=[negative, spec.positive_class],
        **common,  # type: ignore[arg-type]  # keys match Model's fields
    )


def _level_key(level: str) -> tuple[int, float, str]:
    try:
        return (0, float(level), level)
    except ValueError:
        return (1, 0.0, level)


def evaluate(model: Model, rows: Sequence[Row], spec: ModelSpec) -> dict[str, float]:
    """Azure ML Evaluate Model metrics of ``model`` on ``rows`` (the held-out part)."""
    if not rows:
        raise TrainingError("no rows were held out for evaluation")
    predicted = np.asarray(model.predict(rows), dtype=np.float64)
    labels = _labels(rows, spec)
    if spec.kind == "regression":
        y = np.array([_number(r, spec.label) for r in rows], dtype=np.float64)
        err = y - predicted
        dev = y - y.mean()
        abs_dev, sq_dev = float(np.abs(dev).sum()), float((dev**2).sum())
        rse = float((err**2).sum()) / sq_dev if sq_dev > 0 else math.nan
        return {
            "Mean Absolute Error": float(np.abs(err).mean()),
            "Root Mean Squared Error": float(np.sqrt((err**2).mean())),
            "Relative Absolute Error": float(np.abs(err).sum()) / abs_dev if abs_dev else math.nan,
            "Relative Squared Error": rse,
            "Coefficient of Determination": 1.0 - rse,
        }
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    truth = np.array([normalize_category(v) == spec.positive_class for v in labels], dtype=int)
    guess = (predicted >= 0.5).astype(int)
    auc = float(roc_auc_score(truth, predicted)) if len(set(truth.tolist())) == 2 else math.nan
    return {
        "AUC": auc,
        "Accuracy": float(accuracy_score(truth, guess)),
        "Precision": float(precision_score(truth, guess, zero_division=0)),
        "Recall": float(recall_score(truth, guess, zero_division=0)),
        "F1 Score": float(f1_score(truth, guess, zero_division=0)),
    }


def run_experiment(data: bytes | str, spec: ModelSpec) -> Experiment:
    """Parse a CSV, train on its training part and evaluate on the held-out part."""
    rows = parse_csv(data)
    if len(rows) < MIN_ROWS:
        raise TrainingError(f"the dataset has {len(rows)} rows; at least {MIN_ROWS} are needed")
    train_rows, test_rows = split(rows, spec)
    model = _fit(train_rows, spec, holdout_rows=len(test_rows))
    return Experiment(model=model, metrics=evaluate(model, test_rows, spec))


def trivial_experiment(spec: ModelSpec) -> Experiment:
    """A valid constant model and zero metrics, for ``instant`` mode (no data read)."""
    model = Model(
        spec_name=spec.name,
        kind=spec.kind,
        label=spec.label,
        numeric_features=list(spec.numeric_features),
        categories={c: [] for c in spec.categorical_features},
        means=[0.0] * len(spec.numeric_features),
        scales=[1.0] * len(spec.numeric_features),
        coefficients=[0.0] * len(spec.numeric_features),
        intercept=0.0,
        classes=["0", spec.positive_class] if spec.kind == "binary_classification" else [],
    )
    names = REGRESSION_METRICS if spec.kind == "regression" else CLASSIFICATION_METRICS
    return Experiment(model=model, metrics=dict.fromkeys(names, 0.0))


def evaluation_table(metrics: Mapping[str, float], extension: str) -> bytes:
    """Evaluate Model output as ``.csv``/``.tsv`` (header + one row) or ``.arff``."""
    names = list(metrics)
    values = ["NaN" if math.isnan(v) else repr(v) for v in metrics.values()]
    if extension == ".arff":
        head = "@RELATION evaluation\n\n"
        head += "".join(f"@ATTRIBUTE '{n}' NUMERIC\n" for n in names)
        return (head + "\n@DATA\n" + ",".join(values) + "\n").encode()
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t" if extension == ".tsv" else ",", lineterminator="\n")
    writer.writerow(names)
    writer.writerow(values)
    return out.getvalue().encode()
