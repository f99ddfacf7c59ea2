"""The ``retrainq`` command line: the local stack (``dev``) and the API's client commands."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from producer.cli import commands
from producer.cli.client import ApiError
from producer.devtools.devstack import DEFAULT_STATE_DIR, DevStack, StackPorts
from producer.devtools.processes import ServiceError


def _dev_up(args: argparse.Namespace) -> int:
    if args.emulator_config is not None and not args.emulator_config.is_file():
        raise commands.CommandError(f"--emulator-config: no such file: {args.emulator_config}")
    stack = DevStack()
    ports = StackPorts(
        redis=args.redis_port, azurite=args.azurite_port, emulator=args.emulator_port, api=args.port
    )
    env = stack.up(workers=args.workers, ports=ports, emulator_config=args.emulator_config)
    if stack.started:
        kept = f"; already running: {', '.join(stack.kept)}" if stack.kept else ""
        print(f"stack is up (started: {', '.join(stack.started)}{kept})")
    else:
        print("stack is already up; every service is running")
    api = env["RETRAINQ_API_URL"]
    print(f"  dashboard      {api}/ui")
    print(f"  API reference  {api}/docs")
    print(f"  admin key      RETRAINQ_API_KEY in {stack.env_file} (the CLI reads it from there)")
    for key in ("RETRAINQ_API_URL", "RETRAINQ_EMULATOR_URL", "RETRAINQ_REDIS__URL"):
        print(f"  {key}={env[key]}")
    print(f"  ports and key are kept in {stack.config_file}; data in {stack.state_dir}")
    if args.wait:
        print("press Ctrl-C to stop")
        stack.wait_forever()
    return 0


def _dev_down(_args: argparse.Namespace) -> int:
    stopped = DevStack().down()
    if not stopped:
        print("nothing recorded as running")
    for service in stopped:
        print(f"stopped {service.name} (pid {service.pid})")
    if stopped:
        print(
            "data, ports and admin key stay in .stack/ for the next 'up' (delete it to start anew)"
        )
    return 0


def _dev_status(_args: argparse.Namespace) -> int:
    rows = DevStack().status()
    if not rows:
        print("the stack is down")
        return 3
    healthy = True
    for service, alive, listening in rows:
        state = "up" if alive and listening else ("starting" if alive else "dead")
        healthy = healthy and state == "up"
        print(f"{service.name:<10} pid {service.pid:<8} port {service.port:<6} {state}")
    return 0 if healthy else 1


def _demo(args: argparse.Namespace) -> int:
    from producer.devtools.demo import DemoOptions, run_demo  # the demo pulls in the data generator

    if args.tenants < 2 or not 0 <= args.new_services < args.tenants:
        raise commands.CommandError("need --tenants >= 2 and 0 <= --new-services < --tenants")
    options = DemoOptions(
        tenants=args.tenants, new_services=args.new_services, report=Path(args.report)
    )
    # The demo runs on a stack of its own, started fresh, so it never meets earlier data.
    stack = DevStack(Path(args.state_dir))
    stack.down()
    shutil.rmtree(stack.state_dir, ignore_errors=True)
    print("starting a fresh local stack for the demo ...")
    stack.up(workers=args.workers)
    try:
        return asyncio.run(run_demo(options, stack.state_dir))
    finally:
        stack.down()
        print("stopped the demo's stack")


EXIT_CODES = """exit codes:
  0    done (watch: every run ended and none failed)
  1    the API refused (4xx/5xx), a watched batch has failed or cancelled runs,
       an import had failed rows, or a bulk retrain started nothing
  2    bad arguments or settings, or the API could not be reached or timed out
  3    dev status: the local stack is down
  130  interrupted (Ctrl-C)

Data goes to stdout (-o table|json|jsonl); progress, notes and errors go to stderr."""


def package_version() -> str:
    """The installed version of retrainq."""
    try:
        return version("retrainq")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _doctor(args: argparse.Namespace) -> int:
    from producer.cli.doctor import doctor  # the Azure clients load only for this command

    return doctor(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``retrainq``."""
    parser = argparse.ArgumentParser(
        prog="retrainq",
        description="Retrain one model per customer, at fleet scale.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"retrainq {package_version()}")
    commands.add_output_flags(parser, default="table")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = subcommands.add_parser("dev", help="run the local stack (Redis, Azurite, emulator, API)")
    dev_commands = dev.add_subparsers(dest="dev_command", required=True, metavar="ACTION")
    up = dev_commands.add_parser(
        "up", help="start what of the stack is not running (the same ports and key each time)"
    )
    up.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    up.add_argument("--wait", action="store_true", help="stay in the foreground; Ctrl-C stops")
    up.add_argument(
        "--port", type=int, default=0, help="API port (default: the last one, else a free one)"
    )
    up.add_argument("--redis-port", type=int, default=0)
    up.add_argument("--azurite-port", type=int, default=0)
    up.add_argument("--emulator-port", type=int, default=0)
    up.add_argument(
        "--emulator-config",
        type=Path,
        help="the emulator's JSON config file (kept for later 'up' calls; default: built in)",
    )
    up.set_defaults(handler=_dev_up)
    down = dev_commands.add_parser("down", help="stop exactly what 'up' started")
    down.set_defaults(handler=_dev_down)
    status = dev_commands.add_parser("status", help="show the stack's processes")
    status.set_defaults(handler=_dev_status)
    demo = subcommands.add_parser(
        "demo", help="the main job end to end on a fresh local stack (started and stopped)"
    )
    demo.add_argument("--tenants", type=int, default=40, help="locations to onboard (40)")
    demo.add_argument("--new-services", type=int, default=10, help="of them on new services")
    demo.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    demo.add_argument("--report", default="artifacts/demo-report.html", help="report file")
    demo.add_argument(
        "--state-dir", default=str(DEFAULT_STATE_DIR / "demo"), help="where the demo stack lives"
    )
    demo.set_defaults(handler=_demo)
    check = subcommands.add_parser(
        "doctor",
        help="check Redis, blob storage, each BES endpoint and the Azure tokens; print fixes",
        description="Check every dependency the worker is configured for (one harmless read "
        "each) and print a table with fixes; exit 1 if any check failed.",
    )
    commands.add_output_flags(check, default=argparse.SUPPRESS)
    check.set_defaults(handler=_doctor)
    commands.add_api_commands(subcommands)
    completion = subcommands.add_parser(
        "completion", help='print a shell completion script: eval "$(retrainq completion bash)"'
    )
    completion.add_argument("shell", choices=["bash"])
    completion.set_defaults(handler=_completion)
    return parser


def _completion(_args: argparse.Namespace) -> int:
    from producer.cli.completion import bash_script

    print(bash_script(build_parser()), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``retrainq``."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (ServiceError, commands.CommandError) as exc:
        print(f"retrainq: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"retrainq: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
