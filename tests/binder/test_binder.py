"""The Binder environment runs every example, and binder/ stays in step with them.

`binder_python` builds the environment as repo2docker's Python buildpack does: a venv from
runtime.txt's Python (the machine's ``python3`` where that version is not installed: the
test says so), ``pip install -r binder/requirements.txt``, then ``binder/postBuild`` in the
repository. The venv is kept in ``build/binder-venv-<hash of binder/>`` so a re-run only
repeats postBuild. Each example then runs there with no key, through ``binder/start``, in a
temporary home, as on mybinder.org.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
# Import names whose distribution is named otherwise.
DISTRIBUTION_OF = {"PIL": "pillow", "IPython": "ipython", "sklearn": "scikit-learn"}
# A Python other than runtime.txt's is said in the warnings summary, not an error.
pytestmark = pytest.mark.filterwarnings("default:binder/runtime.txt asks:UserWarning")
_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.MULTILINE)

_RUN_NOTEBOOK = """
import sys, nbformat
from nbclient import NotebookClient
path = sys.argv[1]
notebook = nbformat.read(path, as_version=4)
NotebookClient(notebook, timeout=300, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
          if o.output_type == "error" and "python-error" not in c.metadata.get("tags", [])]
for error in errors:
    print(f"{error.ename}: {error.evalue}")
sys.exit(1 if errors else 0)
"""


def _requirements() -> dict[str, str]:
    """binder/requirements.txt as {normalized name: line}."""
    lines = (BINDER / "requirements.txt").read_text(encoding="utf-8").splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return {_normalized(re.split(r"[=<>!~\[ ;]", pin, maxsplit=1)[0]): pin for pin in pins}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_modules(notebook: Path) -> set[str]:
    """Top-level modules the notebook's code cells import."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    modules: set[str] = set()
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        for match in _IMPORT.finditer(source):
            modules.add((match.group(1) or match.group(2)).split(".")[0])
    return modules


def test_every_module_an_example_imports_is_pinned_for_binder() -> None:
    pinned = _requirements()
    for notebook in NOTEBOOKS:
        for module in _imported_modules(notebook) - set(sys.stdlib_module_names):
            if module == "deepinfra_magic":
                continue  # installed by postBuild
            name = _normalized(DISTRIBUTION_OF.get(module, module))
            assert name in pinned, f"{notebook.name} imports {module}: add it to binder/"


def test_binder_pins_every_dependency_of_the_package_and_of_its_examples() -> None:
    # postBuild installs the package with --no-deps, so its requirements are binder's job;
    # the examples extra names what the examples use (matplotlib, Pillow, numpy, pandas).
    declared = importlib.metadata.requires("deepinfra-magic") or []
    wanted = [
        requirement
        for requirement in declared
        if ";" not in requirement or re.search(r"extra == ['\"]examples['\"]", requirement)
    ]
    wanted = [r for r in wanted if not r.startswith(("nbclient", "nbformat", "nbconvert"))]
    pinned = _requirements()
    for requirement in wanted:
        name = _normalized(re.split(r"[=<>!~\[ ;(]", requirement, maxsplit=1)[0])
        assert name in pinned, f"binder/requirements.txt lacks {requirement.split(';')[0]}"


def _binder_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(BINDER.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _runtime_python() -> str:
    """runtime.txt's Python if installed here, else this machine's python3 (with a warning)."""
    runtime = (BINDER / "runtime.txt").read_text(encoding="utf-8").strip()
    version = runtime.removeprefix("python-")
    found = shutil.which(f"python{version}")
    if found:
        return found
    warnings.warn(
        f"binder/runtime.txt asks for {runtime}, not installed here: using python3 instead",
        stacklevel=2,
    )
    fallback = shutil.which("python3")
    assert fallback, "no python3 to build the Binder venv with"
    return fallback


@pytest.fixture(scope="module")
def binder_python() -> Path:
    """The Binder environment's python, built (or reused) as repo2docker builds it."""
    venv = ROOT / "build" / f"binder-venv-{_binder_hash()}"
    python = venv / "bin" / "python"
    if not (venv / "requirements-installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([_runtime_python(), "-m", "venv", str(venv)], check=True, timeout=300)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(BINDER / "requirements.txt")], check=True, timeout=1200)
        (venv / "requirements-installed").touch()
    env = {**_clean_env(venv), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_QUIET": "1"}
    subprocess.run(["bash", str(BINDER / "postBuild")], cwd=ROOT, env=env, check=True, timeout=600)
    return python


def _clean_env(venv: Path) -> dict[str, str]:
    """The environment of a Binder session: the venv first on PATH, no key, no PYTHONPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEEPINFRA", "JUPYTER", "IPYTHON", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.mark.kernel
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_example_runs_in_the_binder_environment_with_no_key(
    binder_python: Path, notebook: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(EXAMPLES, home / "examples")
    env = {**_clean_env(binder_python.parent.parent), "HOME": str(home)}
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    folder = home / "examples"
    result = subprocess.run(
        [
            "bash", str(BINDER / "start"), str(binder_python), "-c", _RUN_NOTEBOOK,
            str(folder / notebook.name), str(folder),
        ],
        cwd=home, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
