"""Pure parts of v2 metrics from MLflow: the tracking base, latest values, the table."""

from __future__ import annotations

import pytest

from worker.azureml.errors import PermanentError
from worker.azureml_v2.mlflow import latest_metrics, metrics_table, rest_base
from worker.evaluate import parse_evaluation_csv

WS = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w"


def test_the_rest_base_swaps_v1_for_v2_on_the_arm_scheme() -> None:
    """azureml://host/mlflow/v1.0/... → {ARM scheme}://host/mlflow/v2.0/..."""
    uri = f"azureml://westeurope.api.azureml.ms/mlflow/v1.0{WS}"
    assert rest_base(uri, "https://management.azure.com") == (
        f"https://westeurope.api.azureml.ms/mlflow/v2.0{WS}"
    )
    assert rest_base(f"azureml://127.0.0.1:8090/mlflow/v1.0{WS}/", "http://127.0.0.1:8090") == (
        f"http://127.0.0.1:8090/mlflow/v2.0{WS}"
    )


@pytest.mark.parametrize(
    "uri", ["https://host/mlflow/v1.0/x", "azureml:///mlflow/v1.0/x", "azureml://host/other/x"]
)
def test_a_tracking_uri_of_another_shape_is_refused(uri: str) -> None:
    """Only azureml://{host}/mlflow/v1.0/... is understood."""
    with pytest.raises(PermanentError):
        rest_base(uri, "https://management.azure.com")


def test_the_latest_finite_value_of_each_metric_is_kept() -> None:
    """By timestamp, then step; NaN and infinities are dropped; no metrics is empty."""
    payload = {
        "run": {
            "info": {"run_id": "j"},
            "data": {
                "metrics": [
                    {"key": "r2", "value": 0.5, "timestamp": 10, "step": 0},
                    {"key": "r2", "value": 0.7, "timestamp": 20, "step": 0},
                    {"key": "r2", "value": 0.6, "timestamp": 15, "step": 9},
                    {"key": "rmse", "value": "NaN", "timestamp": 1, "step": 0},
                    {"key": "mae", "value": 3.25},
                ]
            },
        }
    }
    assert latest_metrics(payload) == {"r2": 0.7, "mae": 3.25}
    assert latest_metrics({"run": {"info": {}}}) == {}
    with pytest.raises(PermanentError):
        latest_metrics({"no": "run"})


def test_the_metrics_table_reads_back_as_the_same_metrics() -> None:
    """Names with commas or quotes survive; the gate's parser reads the table unchanged."""
    metrics = {"Coefficient of Determination": 0.912, 'odd, "name"': -1.5e-07, "AUC": 1.0}
    assert parse_evaluation_csv(metrics_table(metrics)) == metrics
