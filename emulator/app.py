"""The ``retrainq-emulator`` process: app factory, logging and the command line.

``retrainq-emulator [--host H] [--port P] [--config FILE] [--print-config] [--seed N]
[--public-url URL] [--log-format auto|json|console] [--log-level LEVEL]`` serves every surface
on one address. ``retrainq-emulator gen-data --tenant ID --rows N [--seed N] [--drift]
[--kind bike_rental|churn] [--out FILE]`` writes a tenant's dataset as CSV.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from pydantic import ValidationError

from emulator import admin, arm, bes, management, rrs, v2
from emulator.blobio import BlobStore
from emulator.config import EmulatorConfig, EmulatorSettings, default_config, load_config
from emulator.datagen import dataset_csv
from emulator.errors import ConnectionDropped, error_middleware
from emulator.state import BLOBS, STATE, EmulatorState
from emulator.training import Model, ModelSpec, TrainingError, parse_csv, train

log = structlog.get_logger("emulator")
MAX_BODY_BYTES = 64 * 1024 * 1024


class InitialDataError(ValueError):
    """A model spec's initial data cannot be read or trained on."""


@functools.lru_cache(maxsize=16)
def _trained(spec_json: str, data: str | bytes) -> Model:
    return train(parse_csv(data), ModelSpec.model_validate_json(spec_json))


@functools.lru_cache(maxsize=16)
def _generated(kind: str, rows: int, seed: int) -> str:
    return dataset_csv(kind, "initial", rows, seed)


def initial_model(spec: ModelSpec, rows: int, seed: int) -> Model | None:
    """The model ``spec``'s endpoints start with: trained on its ``initial_data`` file, or on
    ``rows`` generated rows (deterministic in ``seed``); None when it names neither."""
    if spec.initial_data is not None:
        try:
            data: str | bytes = spec.initial_data.read_bytes()
        except OSError as exc:
            raise InitialDataError(
                f"model spec {spec.name!r}: cannot read initial_data {str(spec.initial_data)!r}: "
                f"{exc.strerror or exc}"
            ) from exc
    elif spec.datagen is not None:
        data = _generated(spec.datagen, rows, seed)
    else:
        return None
    try:
        return _trained(spec.model_dump_json(), data)
    except TrainingError as exc:
        raise InitialDataError(f"model spec {spec.name!r}: initial data: {exc}") from exc


def initial_models(config: EmulatorConfig, seed: int) -> dict[str, Model]:
    """The initial model of every spec that names initial data."""
    models = {}
    for spec in config.models:
        model = initial_model(spec, config.initial_model_rows, seed)
        if model is not None:
            models[spec.name] = model
    return models


@web.middleware
async def _drop_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    # Outermost: a dropped connection has no reply at all (the transport is already closed).
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ConnectionDropped:
        return web.Response(status=499)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=60, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        blobs = BlobStore(session)
        app[BLOBS] = blobs
        state = app[STATE]
        log.info("emulator.started", public_url=state.base_url, seed=state.seed)
        try:
            yield
        finally:
            await state.cancel_tasks()
            await blobs.close()


def create_app(
    config: EmulatorConfig | None = None, settings: EmulatorSettings | None = None
) -> web.Application:
    """The emulator's aiohttp application (all surfaces on one router)."""
    settings = settings or EmulatorSettings(_env_file=None)
    config = config or default_config()
    app = web.Application(
        middlewares=[_drop_middleware, error_middleware], client_max_size=MAX_BODY_BYTES
    )
    state = EmulatorState(
        config, settings.base_url(), settings.seed, initial_models(config, settings.seed)
    )
    arm.install_configured_services(state)
    app[STATE] = state
    for module in (bes, rrs, management, arm, admin):
        module.add_routes(app)
    v2.install(app)
    app.cleanup_ctx.append(_resources)
    return app


def configure_logging(settings: EmulatorSettings) -> None:
    """structlog to stderr: JSON when asked or when stderr is not a terminal."""
    as_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    level = logging.getLevelName(settings.log_level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse turns the error into usage)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line (flags override ``RETRAINQ_EMULATOR_*`` settings)."""
    parser = argparse.ArgumentParser(
        prog="retrainq-emulator",
        description="Local Azure ML Studio (classic) retraining surfaces: BES, RRS, "
        "classic endpoint management and ARM web services.",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default 8090)")
    parser.add_argument("--config", type=Path, help="JSON config file (default: built in)")
    parser.add_argument("--print-config", action="store_true", help="print config and exit")
    parser.add_argument("--seed", type=int, help="seed of faults and initial models (default 7)")
    parser.add_argument("--public-url", help="URL clients reach this process at")
    parser.add_argument("--log-format", choices=["auto", "json", "console"])
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command")
    gen = commands.add_parser("gen-data", help="write one tenant's dataset as CSV")
    gen.add_argument("--tenant", required=True, help="tenant id (the pattern depends on it)")
    gen.add_argument("--rows", type=positive_int, default=2000, help="data rows (default 2000)")
    gen.add_argument("--seed", type=int, default=0, dest="data_seed")
    gen.add_argument("--drift", action="store_true", help="the drifted version of the data")
    gen.add_argument("--kind", choices=["bike_rental", "churn"], default="bike_rental")
    gen.add_argument("--out", type=Path, help="file to write (default: stdout)")
    return parser


def _settings(args: argparse.Namespace) -> EmulatorSettings:
    given = {
        "host": args.host,
        "port": args.port,
        "config": args.config,
        "seed": args.seed,
        "public_url": args.public_url,
        "log_format": args.log_format,
        "log_level": args.log_level,
    }
    return EmulatorSettings(**{k: v for k, v in given.items() if v is not None})


def _gen_data(args: argparse.Namespace) -> int:
    text = dataset_csv(args.kind, args.tenant, args.rows, args.data_seed, args.drift)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text)
    except OSError as exc:  # exit 2 like an unreadable --config: a path the user gave is unusable
        print(f"retrainq-emulator: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def _one_line(exc: Exception) -> str:
    """An error on one line; a validation error names each field: ``port: Input should ...``."""
    if not isinstance(exc, ValidationError):
        return " ".join(str(exc).split())
    problems = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        problems.append(f"{path}: {error['msg']}" if path else error["msg"])
    return "; ".join(problems)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``retrainq-emulator``."""
    args = build_parser().parse_args(argv)
    if args.command == "gen-data":
        return _gen_data(args)
    try:
        settings = _settings(args)
        config = load_config(settings.config) if settings.config else default_config()
    except (ValidationError, OSError, ValueError) as exc:
        print(f"retrainq-emulator: invalid configuration: {_one_line(exc)}", file=sys.stderr)
        return 2
    if args.print_config:
        doc = config.model_dump(mode="json")
        doc["public_url"] = settings.base_url()
        doc["seed"] = settings.seed
        print(json.dumps(doc, indent=2))
        return 0
    try:
        app = create_app(config, settings)
    except InitialDataError as exc:
        print(f"retrainq-emulator: invalid configuration: {_one_line(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings)
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None)
    return 0
