"""An emulator config file with a model spec the emulator does not ship: diabetes regression.

scikit-learn's diabetes data (label ``target``, numeric ``age sex bmi bp s1 … s6``) as the
spec's initial data, next to the config file, and a ``blank`` spec with no initial data; both
with a training and a predictive classic web service and an ARM template of the diabetes one.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from pathlib import Path

from sklearn.datasets import load_diabetes

from emulator.config import (
    ArmConfig,
    ArmWebServiceConfig,
    EmulatorConfig,
    EndpointConfig,
    WebServiceConfig,
    WorkspaceConfig,
    derived_id,
    derived_key,
)
from emulator.training import ModelSpec
from producer.devtools.processes import ManagedProcess, console_script, free_port

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
DIABETES = ModelSpec(
    name="diabetes",
    kind="regression",
    label="target",
    numeric_features=FEATURES,
    resource_name="Diabetes [trained model]",
    initial_data=Path("diabetes.csv"),
)
BLANK = DIABETES.model_copy(
    update={"name": "blank", "resource_name": "Blank [trained model]", "initial_data": None}
)


def diabetes_csv(first: int = 0, last: int | None = None) -> str:
    """Rows ``first:last`` of the diabetes data set as CSV (features, then ``target``)."""
    data = load_diabetes()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FEATURES, "target"])
    for features, target in list(zip(data.data, data.target, strict=True))[first:last]:
        writer.writerow([*(repr(float(v)) for v in features), repr(float(target))])
    return out.getvalue()


def _service(name: str, kind: str, model: str) -> WebServiceConfig:
    endpoint = EndpointConfig(
        name="default",
        id=derived_id(f"{name}/default"),
        primary_key=derived_key(f"{name}/default/primary"),
        secondary_key=derived_key(f"{name}/default/secondary"),
    )
    return WebServiceConfig.model_validate(
        {
            "id": derived_id(name),
            "name": name,
            "kind": kind,
            "model": model,
            "endpoints": [endpoint],
        }
    )


def custom_config() -> EmulatorConfig:
    """The config: diabetes and blank service pairs, an ARM template of diabetes."""
    return EmulatorConfig(
        models=[DIABETES, BLANK],
        workspaces=[
            WorkspaceConfig(
                id=derived_id("custom-workspace"),
                authorization_token=derived_key("custom-workspace/primary"),
                web_services=[
                    _service("Diabetes Training", "training", "diabetes"),
                    _service("Diabetes Scoring", "predictive", "diabetes"),
                    _service("Blank Training", "training", "blank"),
                    _service("Blank Scoring", "predictive", "blank"),
                ],
            )
        ],
        arm=ArmConfig(
            subscription_id="00000000-0000-4000-8000-000000000002",
            token=derived_key("custom-arm/token"),
            web_services=[
                ArmWebServiceConfig(
                    name="diabetes-template",
                    title="Diabetes Scoring (template)",
                    model="diabetes",
                    primary_key=derived_key("custom-arm/diabetes/primary"),
                    secondary_key=derived_key("custom-arm/diabetes/secondary"),
                )
            ],
        ),
    )


def write_custom_config(folder: Path) -> Path:
    """Write ``diabetes.csv`` and ``emulator.json`` (naming it by a relative path) to
    ``folder``; the config file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "diabetes.csv").write_text(diabetes_csv())
    path = folder / "emulator.json"
    path.write_text(custom_config().model_dump_json(indent=2))
    return path


@contextlib.contextmanager
def custom_emulator(folder: Path) -> Iterator[str]:
    """``retrainq-emulator --config`` serving the config written to ``folder/config``, started
    from ``folder`` (the config names its data relative to itself, not to the working
    directory); yields its URL, stops it after."""
    path = write_custom_config(folder / "config")
    port = free_port()
    process = ManagedProcess(
        name="emulator-custom",
        argv=[console_script("retrainq-emulator"), "--config", str(path), "--port", str(port)],
        port=port,
        log_path=folder / "emulator.log",
        cwd=folder,
        env={"RETRAINQ_EMULATOR_LOG_FORMAT": "json"},
    )
    process.start(timeout=60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
