"""Failure groups of runs (``producer/api/failures.py``): class and message shape."""

from __future__ import annotations

from producer.api.failures import SHAPE_WIDTH, failure_class, message_shape, remote_code

MISSING = "BES job Failed: BlobNotFound: The blob 'data/t1/a.csv' was not found."
MODULE = "BES job Failed: ModuleExecutionError: the job failed (injected fault)."


def test_a_missing_blob_and_a_module_error_are_different_classes_of_one_code() -> None:
    """Both are ``bes_Failed``; the remote code each message names keeps them apart."""
    assert failure_class("bes_Failed", MISSING) == "bes_Failed/BlobNotFound"
    assert failure_class("bes_Failed", MODULE) == "bes_Failed/ModuleExecutionError"


def test_the_class_is_the_code_alone_when_the_message_names_no_remote_code() -> None:
    """A one-hump word before a colon ("Failed:") is not a remote code; no code reads unknown."""
    assert remote_code("BES job Failed: no details given") is None
    assert failure_class("slot_lost", "the slot went to another run") == "slot_lost"
    assert failure_class(None, None) == "unknown"


def test_messages_of_different_runs_share_a_shape() -> None:
    """Quoted names, paths, URLs, hex ids, UUIDs and numbers become placeholders."""
    other = "BES job Failed: BlobNotFound: The blob 'data/t2/b.csv' was not found."
    assert message_shape(MISSING) == message_shape(other)
    assert message_shape(MISSING) == "BES job Failed: BlobNotFound: The blob <name> was not found."
    url = "BlobNotFound: https://acct.blob.core.windows.net/c/t1.csv was not found (404)."
    assert message_shape(url) == "BlobNotFound: <url> was not found (<n>)."
    run = "submit failed 5 times for run 0f3a9b2c4d5e6f708192a3b4c5d6e7f8 of data/t9/x.csv"
    assert message_shape(run) == "submit failed <n> times for run <id> of <path>"
    uuid = "job 123e4567-e89b-12d3-a456-426614174000 took 3.5 s"
    assert message_shape(uuid) == "job <id> took <n> s"


def test_words_that_merely_contain_digits_are_kept() -> None:
    """A code such as ``bes_Failed`` or ``R2`` stays; the message's own words stay."""
    assert message_shape("R2 output2 missing") == "R2 output2 missing"


def test_a_shape_is_one_line_and_bounded() -> None:
    """Whitespace collapses to single spaces; a long message is cut with an ellipsis."""
    assert message_shape("a\n  b\tc") == "a b c"
    long = message_shape("word " * 100)
    assert len(long) == SHAPE_WIDTH
    assert long.endswith("…")
    assert message_shape(None) == "no reason recorded"
