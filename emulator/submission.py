"""Validation of a BES submit body (PROTOCOL.md §2.2, §8) for training and scoring runtimes.

Both kinds of runtime take one input, ``input1`` (``Inputs.input1``, the legacy ``Input``, or a
data-URI GlobalParameter); they differ in their outputs. A training runtime writes ``output1``
(the trained model, ``.ilearner``, required) and ``output2`` (Evaluate Model, a dataset); a
predictive runtime writes ``output1`` (the scored dataset, required). Dataset blobs end
``.csv``, ``.tsv`` or ``.arff``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from emulator.blobio import BlobError, BlobRef, BlobStore
from emulator.errors import bad_argument, request_body_invalid
from emulator.state import Runtime

INPUT_NAME = "input1"
MAIN_OUTPUT = "output1"
EVALUATION_OUTPUT = "output2"
MODEL_EXTENSIONS = (".ilearner",)
DATASET_EXTENSIONS = (".csv", ".tsv", ".arff")
REF_FIELDS = {"ConnectionString", "RelativeLocation", "BaseLocation", "SasBlobToken"}

# Output port → the blob extensions it accepts, by runtime kind; output1 is always required.
OUTPUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "training": {MAIN_OUTPUT: MODEL_EXTENSIONS, EVALUATION_OUTPUT: DATASET_EXTENSIONS},
    "predictive": {MAIN_OUTPUT: DATASET_EXTENSIONS},
}


@dataclass(frozen=True)
class Submission:
    """A valid submit body: the input blob or data URL, and the output blobs by port."""

    inputs: dict[str, BlobRef]
    outputs: dict[str, BlobRef]
    data_url: str | None


def parse_ref(raw: Any, blobs: BlobStore, role: str) -> BlobRef:
    """Validate one blob reference of a submission."""
    if not isinstance(raw, dict) or not raw.keys() <= REF_FIELDS:
        raise request_body_invalid(
            f"{role}: a blob reference has only the fields {sorted(REF_FIELDS)}."
        )
    if any(v is not None and not isinstance(v, str) for v in raw.values()):
        raise request_body_invalid(f"{role}: blob reference fields are strings.")
    relative = (raw.get("RelativeLocation") or "").lstrip("/")
    container, _, blob = relative.partition("/")
    if not container or not blob:
        code = "InputBlobRelativeLocationInvalid" if role.startswith("input") else "BadArgument"
        raise bad_argument(code, f"{role}: RelativeLocation must be 'container/path/blob'.")
    ref = BlobRef(
        relative_location=relative,
        connection_string=raw.get("ConnectionString") or None,
        base_location=raw.get("BaseLocation") or None,
        sas_blob_token=raw.get("SasBlobToken") or None,
    )
    if ref.connection_string is not None:
        try:
            blobs.service(ref.connection_string)
        except BlobError as exc:
            raise bad_argument(exc.code, f"{role}: {exc.args[0]}") from exc
    elif ref.base_location is None or ref.sas_blob_token is None:
        raise bad_argument(
            "MissingInputBlobInformation",
            f"{role}: give ConnectionString, or BaseLocation and SasBlobToken.",
        )
    return ref


def _check_extension(name: str, ref: BlobRef, allowed: tuple[str, ...]) -> None:
    suffix = PurePosixPath(ref.blob).suffix.lower()
    if suffix not in allowed:
        raise bad_argument(
            "InvalidBlobExtension",
            f"The blob reference for {name} has an invalid extension '{suffix}'; "
            f"supported: {', '.join(allowed)}.",
        )


def _members(body: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(inputs, outputs, global parameters) of a body, each a JSON object or None."""
    if body.get("Input") is not None and body.get("Inputs") is not None:
        raise bad_argument(
            "DuplicateInputInBatchCall", "The input is given twice: give Input or Inputs."
        )
    raw_inputs = (
        {INPUT_NAME: body["Input"]} if body.get("Input") is not None else body.get("Inputs")
    )
    members = (raw_inputs, body.get("Outputs"), body.get("GlobalParameters"))
    for label, value in zip(("Inputs", "Outputs", "GlobalParameters"), members, strict=True):
        if value is not None and not isinstance(value, dict):
            raise request_body_invalid(f"{label} must be a JSON object.")
    return members


def parse_submission(body: dict[str, Any], runtime: Runtime, blobs: BlobStore) -> Submission:
    """Validate a submit body against what ``runtime`` (training or predictive) takes."""
    raw_inputs, raw_outputs, params = _members(body)
    inputs: dict[str, BlobRef] = {}
    for name, raw in (raw_inputs or {}).items():
        if name != INPUT_NAME:
            raise bad_argument(
                "InvalidInputNames", f"Unknown input '{name}'; this service has {INPUT_NAME}."
            )
        inputs[name] = parse_ref(raw, blobs, name)
    ports = OUTPUTS[runtime.kind]
    outputs: dict[str, BlobRef] = {}
    for name, raw in (raw_outputs or {}).items():
        if name not in ports:
            raise bad_argument(
                "InvalidOutputOverrideName",
                f"Unknown output '{name}'; the outputs are {', '.join(ports)}.",
            )
        outputs[name] = parse_ref(raw, blobs, name)
        _check_extension(name, outputs[name], ports[name])
    data_url = None
    for name, value in (params or {}).items():
        if name not in runtime.data_uri_parameters:
            raise bad_argument("UnexpectedParameter", f"Unexpected global parameter '{name}'.")
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise bad_argument(
                "BadParameterValue", f"Global parameter '{name}' must be an http(s) URL."
            )
        data_url = value
    if inputs and data_url:
        raise bad_argument(
            "DuplicateInputInBatchCall", "Give the data either as input1 or as a URI parameter."
        )
    if not inputs and data_url is None:
        raise bad_argument(
            "BatchJobInputsNotSpecified",
            f"This service needs {INPUT_NAME} or one of the global parameters "
            f"{runtime.data_uri_parameters}.",
        )
    if MAIN_OUTPUT not in outputs:
        raise bad_argument("BatchJobOutputsNotSpecified", f"Outputs must name {MAIN_OUTPUT}.")
    return Submission(inputs=inputs, outputs=outputs, data_url=data_url)
