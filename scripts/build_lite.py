"""Build the zero-install JupyterLite site of the examples into ``build/lite/`` (``make lite``).

    python3 scripts/build_lite.py [--out build/lite]

Rules it keeps:

* Only PyPI and npm, never a CDN: the build tools are pinned PyPI packages in their own venv
  (``build/lite-env-pyX.Y``); Pyodide's runtime is the npm package ``pyodide`` at the version the
  kernel was built for; the kernel's packages are this checkout's wheel and its pure-Python
  dependencies, solved for Pyodide by the kernel's lock addon (uv) from PyPI within the
  pins of ``scripts/lite-constraints.txt``.
* The kernel preloads ``deepinfra-magic``, so no notebook needs an install cell, and
  ``%pip install`` in the page never falls back to pypi.org.
* Everything generated goes under ``build/``; the build is always clean (an incremental
  ``jupyter lite build`` can lose the local ``pyodideUrl``), and the result is checked:
  ``pyodideUrl`` and the lock file must be local.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
SOURCE_DIR = BUILD / "lite-src"
CACHE_DIR = BUILD / "lite-cache"
PINS = ROOT / "scripts" / "lite-constraints.txt"  # the kernel's packages, for repeatable builds

# The build tools, pinned together: jupyterlite-pyodide-kernel 0.8.7 needs a
# jupyterlite-core 0.8.7 that PyPI does not have.
BUILD_REQUIREMENTS = (
    "jupyterlite-core==0.8.6",
    "jupyterlite-pyodide-kernel[lock]==0.8.6",
    "pyodide-lock==0.2.1",
    "jupyter-server==2.21.1",
    "jupyterlab-server==2.28.1",
    "jupyterlab-widgets==3.0.17",  # the build copies its labextension: widgets render
    "libarchive-c==5.3",
)
# pyodide-lock declares Python >= 3.12; a 3.10/3.11 interpreter gets these by hand instead.
PYODIDE_LOCK_NO_DEPS = ("pyodide-lock==0.2.1",)
PYODIDE_LOCK_DEPS = ("uv", "pkginfo", "wheel", "packaging", "attrs", "cattrs", "pydantic")

# The runtime files the kernel loads from static/pyodide/ (the npm package ships no wheels).
PYODIDE_FILES = (
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide.js",
    "package.json",
)
NOTEBOOKS = ("quickstart", "workshop")
KERNEL_PLUGIN = "@jupyterlite/pyodide-kernel-extension:kernel"
LOCAL_PYODIDE_URL = "./static/pyodide/pyodide.mjs"
LOCAL_LOCK_URL = "./static/pyodide-lock/pyodide-lock.json"


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Run a command, echoing it; stop the build if it fails."""
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=cwd, env=env, check=True)


def _python_version(python: str) -> tuple[int, int] | None:
    """(major, minor) of an interpreter, or None if it does not run."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return int(out[0]), int(out[1])


def _build_python() -> tuple[str, tuple[int, int]]:
    """The Python of the build venv and its version: ``$LITE_PYTHON`` if set, else a
    Python >= 3.12 if one is found (pyodide-lock declares it), else this one."""
    if os.environ.get("LITE_PYTHON"):
        chosen = os.environ["LITE_PYTHON"]
        version = _python_version(chosen)
        if version is None:
            raise SystemExit(f"LITE_PYTHON={chosen} does not run")
        return chosen, version
    candidates = ["python3.13", "python3.12"]
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        candidates += [str(p / "bin" / "python") for p in sorted(pyenv.glob("3.1[2-9]*"))]
    for candidate in candidates:
        found = shutil.which(candidate) or candidate
        version = _python_version(found)
        if version is not None and version >= (3, 12):
            return found, version
    return sys.executable, sys.version_info[:2]


def ensure_build_env() -> Path:
    """The build venv (one per Python version) with the pinned tools, installed once."""
    python, version = _build_python()
    env_dir = BUILD / f"lite-env-py{version[0]}.{version[1]}"
    stamp = env_dir / "installed.txt"
    wanted = "\n".join(BUILD_REQUIREMENTS)
    bin_dir = env_dir / "bin"
    if stamp.is_file() and stamp.read_text() == wanted:
        return bin_dir
    shutil.rmtree(env_dir, ignore_errors=True)
    _run(python, "-m", "venv", env_dir)
    pip = (bin_dir / "python", "-m", "pip", "install", "--quiet")
    if version >= (3, 12):
        _run(*pip, *BUILD_REQUIREMENTS)
    else:
        # Unsupported upstream but verified to give the identical lock on 3.11.
        others = [r for r in BUILD_REQUIREMENTS if not r.startswith("pyodide-lock")]
        others = [r.replace("[lock]", "") for r in others]
        _run(*pip, *others, *PYODIDE_LOCK_DEPS)
        _run(*pip, "--no-deps", "--ignore-requires-python", *PYODIDE_LOCK_NO_DEPS)
    stamp.write_text(wanted)
    return bin_dir


def pyodide_version(bin_dir: Path) -> str:
    """The Pyodide version the pinned kernel was built for."""
    return subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "from jupyterlite_pyodide_kernel.constants import PYODIDE_VERSION as v; print(v)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def fetch_pyodide(version: str, target: Path) -> None:
    """Unpack npm's ``pyodide@version`` into ``target`` with an emptied package list.

    The npm lock names 356 packages that live only on the CDN; emptied, the lock addon fills
    it with PyPI wheels alone and never points the kernel at the CDN.
    """
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tarball = CACHE_DIR / f"pyodide-{version}.tgz"
    if not tarball.is_file() and shutil.which("npm") is None:
        raise SystemExit("make lite needs npm for Pyodide's runtime: apt-get install npm")
    if not tarball.is_file():
        _run("npm", "pack", "--silent", f"pyodide@{version}", cwd=CACHE_DIR)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as archive:
        for name in (*PYODIDE_FILES, "pyodide-lock.json"):
            member = archive.extractfile(f"package/{name}")
            if member is None:
                raise SystemExit(f"npm pyodide@{version} has no {name}")
            (target / name).write_bytes(member.read())
    lock_path = target / "pyodide-lock.json"
    lock = json.loads(lock_path.read_text())
    lock["packages"] = {}
    lock_path.write_text(json.dumps(lock, indent=1))


def write_sources(bin_dir: Path, version: str) -> None:
    """The lite dir: config, contents, this checkout's wheel and the Pyodide runtime."""
    shutil.rmtree(SOURCE_DIR, ignore_errors=True)
    (SOURCE_DIR / "files").mkdir(parents=True)
    for name in NOTEBOOKS:
        for suffix in (".ipynb", ".recording.json"):
            shutil.copy2(ROOT / "examples" / f"{name}{suffix}", SOURCE_DIR / "files")
    _run(bin_dir / "python", "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
         SOURCE_DIR / "wheels", ROOT)  # fmt: skip
    fetch_pyodide(version, SOURCE_DIR / "static" / "pyodide")
    if PINS.is_file():  # else the lock addon writes its fresh solve there
        shutil.copy2(PINS, SOURCE_DIR / "lite-constraints.txt")
    config = {
        "LiteBuildConfig": {"contents": ["files"], "no_sourcemaps": True},
        "PyodideLockAddon": {
            "enabled": True,
            "wheels": ["wheels"],
            "specs": ["micropip", "packaging", "ipython", "jedi", "comm"],
            # The kernel extension ships stubs for these; the real wheels add 2.2 MB unused.
            "excludes_extra": ["widgetsnbextension", "jupyterlab-widgets"],
            "prefetch_extra": ["deepinfra-magic"],
            "lite_constraints_file": "lite-constraints.txt",
        },
    }
    (SOURCE_DIR / "jupyter_lite_config.json").write_text(json.dumps(config, indent=2))
    lite: dict[str, object] = {
        "jupyter-lite-schema-version": 0,
        "jupyter-config-data": {
            "appName": "deepinfra-magic",
            "litePluginSettings": {KERNEL_PLUGIN: {"disablePyPIFallback": True}},
        },
    }
    (SOURCE_DIR / "jupyter-lite.json").write_text(json.dumps(lite, indent=2))
    overrides = {
        "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension:notification": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    (SOURCE_DIR / "overrides.json").write_text(json.dumps(overrides, indent=2))


def lite_build(bin_dir: Path, out: Path) -> None:
    """``jupyter lite build``, always from scratch, with no download of a Python by uv."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    _run(bin_dir / "jupyter", "lite", "build", "--output-dir", out, cwd=SOURCE_DIR, env=env)


def open_on_quickstart(out: Path) -> None:
    """The site's front page opens the quickstart notebook.

    The page keeps its config script (the app reads it from there), and redirects first.
    """
    page = out / "index.html"
    redirect = '<script>window.location.replace("lab/index.html?path=quickstart.ipynb")</script>'
    html = page.read_text(encoding="utf-8")
    if "<head>" not in html:
        raise SystemExit(f"{page} has no <head> to add the redirect to")
    page.write_text(html.replace("<head>", "<head>" + redirect, 1), encoding="utf-8")


def check_site(out: Path) -> dict[str, object]:
    """Fail unless the site loads Pyodide and its packages from itself; return its summary."""
    config = json.loads((out / "jupyter-lite.json").read_text())["jupyter-config-data"]
    kernel = config["litePluginSettings"][KERNEL_PLUGIN]
    if kernel.get("pyodideUrl") != LOCAL_PYODIDE_URL:
        raise SystemExit(f"pyodideUrl is {kernel.get('pyodideUrl')!r}, not {LOCAL_PYODIDE_URL}")
    options = kernel.get("loadPyodideOptions", {})
    if options.get("lockFileURL") != LOCAL_LOCK_URL:
        raise SystemExit(f"lockFileURL is {options.get('lockFileURL')!r}, not {LOCAL_LOCK_URL}")
    lock = json.loads((out / "static" / "pyodide-lock" / "pyodide-lock.json").read_text())
    if "deepinfra-magic" not in lock["packages"]:
        raise SystemExit("the kernel's lock has no deepinfra-magic")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"packages": len(lock["packages"]), "size_mb": round(size / 1e6, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUILD / "lite", help="site folder")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    bin_dir = ensure_build_env()
    version = pyodide_version(bin_dir)
    write_sources(bin_dir, version)
    out = args.out.resolve()
    lite_build(bin_dir, out)
    open_on_quickstart(out)
    summary = check_site(out)
    print(
        f"lite: {out} ({summary['size_mb']} MB, Pyodide {version}, "
        f"{summary['packages']} lock packages) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
