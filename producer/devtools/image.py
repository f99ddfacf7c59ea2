"""Building the container images without a Docker engine (``make image``).

buildah builds ``deploy/docker/Dockerfile`` with chroot isolation and the vfs storage driver,
which need no daemon, no overlay filesystem and no user namespaces. No container registry is
needed either: the ``PYTHON_IMAGE`` the Dockerfile builds on is made here with debootstrap
(Debian bookworm, whose Python is 3.11) and kept in buildah's storage under a name that
changes with its recipe, so it is made once per machine. pip inside the build uses the
host's package index settings and CA bundle (see ``pip_build_settings``). Only the standard
library is imported: this runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = PROJECT_ROOT / "deploy" / "docker" / "Dockerfile"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3")
# Dropped from the base after debootstrap: apt's downloads and lists (apt-get update brings
# the lists back), documentation, man pages and translations.
BASE_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man")
BASE_TRIM_LOCALES = "usr/share/locale"
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# pip settings of the host passed into the build, by their pip names (config key == env name
# without PIP_). Others (a host-wide constraint file, for one) do not concern the image.
PIP_KEYS = ("index-url", "extra-index-url", "find-links", "trusted-host", "cert", "default-timeout")
# Config sections pip reads for `pip wheel`, later ones overriding earlier ones.
PIP_SECTIONS = ("global", "wheel", ":env:")

TARGETS = {"production": "retrainq", "emulator": "retrainq-emulator"}


class ImageError(RuntimeError):
    """A tool is missing, or buildah, debootstrap or apt-get failed."""


def project_version() -> str:
    """The project's version from pyproject.toml (the images' tag)."""
    for line in (PROJECT_ROOT / "pyproject.toml").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "version":
            return value.strip().strip('"')
    raise ImageError("pyproject.toml has no version")


def image_name(target: str) -> str:
    """Local name of the image a Dockerfile target builds (``localhost/retrainq:0.1.0``)."""
    return f"localhost/{TARGETS[target]}:{project_version()}"


def base_name(packages: Sequence[str] = BASE_PACKAGES) -> str:
    """Name of the debootstrap base: a new recipe (suite, packages, trim) is a new name."""
    recipe = json.dumps([BASE_SUITE, sorted(packages), BASE_TRIM, BASE_TRIM_LOCALES, BASE_ENV])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"localhost/retrainq-base:{BASE_SUITE}-{digest}"


def ensure_tools(tools: Sequence[str] = ("buildah", "debootstrap")) -> None:
    """Install the missing ones of ``tools`` with apt-get when root on Debian, else say how."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    debian = Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None
    if not (debian and os.geteuid() == 0):
        raise ImageError(
            f"{' and '.join(missing)} missing: install with "
            f"'sudo apt-get install -y {' '.join(missing)}' (Debian/Ubuntu), then run again"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"image: installing {' '.join(missing)} (apt-get)", file=sys.stderr)
    _run(["apt-get", "update", "-qq"], env=env)
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)
    still = [tool for tool in missing if shutil.which(tool) is None]
    if still:
        raise ImageError(f"apt-get finished but {' '.join(still)} is still missing")


def _run(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, capture: bool = False
) -> str:
    """Run a command; its output goes to our stderr unless captured. Raises ImageError with
    the command and the tail of what it printed when it fails."""
    result = subprocess.run(
        list(argv),
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else sys.stderr,
        stderr=subprocess.PIPE if capture else sys.stderr,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or "").splitlines()[-15:]) if capture else ""
        raise ImageError(f"{' '.join(argv[:4])} ... failed with exit {result.returncode}\n{tail}")
    return result.stdout or ""


@dataclass(frozen=True)
class Buildah:
    """buildah with the options this machine needs (vfs storage, chroot isolation), nice'd:
    builds share the machine's cores with everything else."""

    root: Path | None = None  # storage root; None: buildah's default (/var/lib/containers)
    storage_driver: str = "vfs"

    def argv(self, *args: str) -> list[str]:
        """Command line of ``buildah args...`` with the global storage options."""
        argv = ["buildah", "--storage-driver", self.storage_driver]
        if self.root is not None:
            argv += ["--root", str(self.root), "--runroot", str(self.root / "run")]
        return [*argv, *args]

    def __call__(self, *args: str, capture: bool = True) -> str:
        """Run ``buildah args...``; its stdout when captured."""
        return _run(["nice", "-n", "10", *self.argv(*args)], capture=capture)

    def image(self, name: str) -> dict[str, str] | None:
        """``buildah images`` entry of ``name`` (its id, size), or None when absent."""
        if not self.exists(name):
            return None
        listed = json.loads(self("images", "--json", name) or "null") or []
        return {"id": str(listed[0]["id"]), "size": str(listed[0]["size"])} if listed else None

    def exists(self, name: str) -> bool:
        """Whether an image named ``name`` is in the storage."""
        probe = subprocess.run(
            self.argv("inspect", "--type", "image", name),
            capture_output=True,
            check=False,
        )
        return probe.returncode == 0


def build_base(buildah: Buildah, mirror: str = DEFAULT_MIRROR) -> str:
    """The debootstrap base image's name; made (about a minute) unless already stored."""
    name = base_name()
    if buildah.exists(name):
        print(f"image: base {name} already built", file=sys.stderr)
        return name
    print(f"image: building the base {name} with debootstrap from {mirror}", file=sys.stderr)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="retrainq-base-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            [
                "nice",
                "-n",
                "10",
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                BASE_SUITE,
                str(rootfs),
                mirror,
            ],
            capture=True,
        )
        for path in (*BASE_TRIM, BASE_TRIM_LOCALES):
            shutil.rmtree(rootfs / path, ignore_errors=True)
        container = buildah("from", "scratch").strip()
        try:
            mount = Path(buildah("mount", container).strip())
            # cp -a keeps owners, modes, links and device nodes as debootstrap made them.
            _run(["cp", "-a", f"{rootfs}/.", f"{mount}/"])
            buildah("umount", container)
            config = [arg for key, value in BASE_ENV.items() for arg in ("--env", f"{key}={value}")]
            buildah("config", *config, "--cmd", '["python3"]', container)
            buildah("commit", "--quiet", "--rm", container, name)
        except BaseException:
            subprocess.run(buildah.argv("rm", container), capture_output=True, check=False)
            raise
    print(f"image: base built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return name


@dataclass(frozen=True)
class PipSettings:
    """pip settings for the build: build args (``PIP_*``) and read-only bind mounts of the
    host paths they name (local indexes, wheel folders, the CA bundle)."""

    build_args: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Path, ...] = ()


def pip_build_settings(config_lines: Sequence[str], *, ca_bundle: Path = CA_BUNDLE) -> PipSettings:
    """The host's pip settings (``pip config list`` lines, which include the ``PIP_*``
    environment as ``:env:.key``) as build args and the local paths to mount. The host's CA
    bundle is mounted at its own path whether or not pip names it: the package index may be
    reached only through a TLS proxy that bundle trusts."""
    values: dict[str, str] = {}
    for section in PIP_SECTIONS:
        for line in config_lines:
            key, sep, raw = line.partition("=")
            prefix, dot, name = key.rpartition(".")
            if sep and dot and prefix == section and name in PIP_KEYS:
                values[name] = raw.strip().strip("'\"")
    mounts: list[Path] = [ca_bundle] if ca_bundle.exists() else []
    for name in ("index-url", "extra-index-url", "find-links", "cert"):
        for item in values.get(name, "").split():
            path = _local_path(item)
            if path is not None and name.endswith("index-url"):
                # A local index's pages link to files beside it (../../files/x.whl).
                path = path.parent
            if path is not None and path.exists() and path not in mounts:
                mounts.append(path)
    build_args = {f"PIP_{name.upper().replace('-', '_')}": value for name, value in values.items()}
    return PipSettings(build_args, tuple(mounts))


def _local_path(location: str) -> Path | None:
    """The host path a pip location names (``file://`` URL or absolute path), else None."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if not parsed.scheme and location.startswith("/"):
        return Path(location)
    return None


def host_pip_config() -> list[str]:
    """``pip config list`` of the interpreter running this (files and PIP_* environment)."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.splitlines() if result.returncode == 0 else []


def build_image(buildah: Buildah, target: str, base: str, pip: PipSettings) -> str:
    """Build one Dockerfile target from the repository root; the image's name."""
    name = image_name(target)
    argv = ["bud", "--isolation", "chroot", "--pull=never", "--file", str(DOCKERFILE)]
    argv += ["--target", target, "--tag", name, "--build-arg", f"PYTHON_IMAGE={base}"]
    for key, value in sorted(pip.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    for path in pip.mounts:
        argv += ["--volume", f"{path}:{path}:ro"]
    print(f"image: building {name} ({target})", file=sys.stderr)
    previous = buildah.image(name)
    started = time.monotonic()
    buildah(*argv, str(PROJECT_ROOT), capture=False)
    print(f"image: {name} built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    built = buildah.image(name)
    if previous is not None and built is not None and previous["id"] != built["id"]:
        # The image this one replaced lost its name; each rebuild would keep a copy (vfs
        # stores every layer in full). Still used by a working container: it stays.
        subprocess.run(buildah.argv("rmi", previous["id"]), capture_output=True, check=False)
    return name


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m producer.devtools.image [--target production|emulator] [--root DIR]``."""
    parser = argparse.ArgumentParser(prog="image", description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=sorted(TARGETS), action="append")
    parser.add_argument("--root", type=Path, help="buildah storage root (default: buildah's)")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="Debian mirror of the base")
    args = parser.parse_args(argv)
    buildah = Buildah(root=args.root)
    try:
        ensure_tools()
        base = build_base(buildah, args.mirror)
        pip = pip_build_settings(host_pip_config())
        for target in args.target or ["production"]:
            name = build_image(buildah, target, base, pip)
            built = buildah.image(name)
            print(f"{name} {built['size'] if built else '?'}")
    except ImageError as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
