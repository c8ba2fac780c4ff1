"""The layers of docs/architecture.md, checked by parsing every import (not by convention).

Every ``import``/``from … import`` anywhere in a module counts (also those inside functions), and so do the
``"fakewatch.x.y[:Name]"`` strings of lazy tables (backends, CLI subcommands) that ``importlib`` resolves later.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]

# A part may import the parts listed here (and itself); nothing else of the project. Read top to bottom.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "streams": frozenset({"core"}),
    "runtime": frozenset({"core", "streams"}),
    "export": frozenset({"core", "streams", "runtime"}),
    "training": frozenset({"core", "streams", "runtime", "export"}),
    "benchmarks": frozenset({"core", "streams", "runtime", "export"}),
    "cli": frozenset({"core", "streams", "runtime", "export", "training", "benchmarks"}),
    "root": frozenset(),  # fakewatch/__init__.py imports nothing: `import fakewatch` is free
}
# Narrower than the table: export verifies artifacts on the runtime's runners, never on the pipeline.
ONLY_THROUGH = {("export", "runtime"): "fakewatch.runtime.backends"}


def part_of(module: str) -> str | None:
    """``fakewatch.runtime.backends.base`` -> ``runtime``; None for modules outside the project."""
    parts = module.split(".")
    if parts[0] != "fakewatch":
        return None
    if len(parts) == 1:
        return "root"
    if parts[1] in ("cli", "__main__"):
        return "cli"
    return parts[1]


def package_dirs() -> dict[str, Path]:
    """Import package -> folder, from pyproject's mapping (the same table the installers use)."""
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {pkg: REPO / d for pkg, d in conf["package-dir"].items()}


def project_modules(dirs: dict[str, Path]) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (sub-folders of a mapped folder come with it)."""
    mods: dict[str, Path] = {}
    for pkg, root in dirs.items():
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("").parts
            if pkg == "fakewatch" and rel and rel[0] in {p.split(".")[1] for p in dirs if p != "fakewatch"}:
                continue  # (never the case today: parts are not nested inside fakewatch/)
            name = ".".join((pkg, *rel)).removesuffix(".__init__")
            mods[name] = path
    return mods


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative ones resolved, plus lazy-table strings."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from fakewatch import streams` imports the sub-package itself
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names if target == "fakewatch"]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.split(":")[0]
            # only names of parts count ("fakewatch.spec", the ONNX metadata key, is not a module)
            if "." in text and text.replace(".", "").replace("_", "").isalnum() and part_of(text) in ALLOWED:
                found.append((node.lineno, text))
    return found


def layer_violations(modules: dict[str, Path]) -> list[str]:
    problems = []
    for module, path in sorted(modules.items()):
        src = part_of(module)
        for line, target in imports_of(module, path):
            dst = part_of(target)
            if dst in (None, src, "root"):  # every import passes through the (empty) root package
                continue
            where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{line}"
            if dst not in ALLOWED[src]:
                problems.append(f"{where}: {src} must not import {dst} ({target})")
            elif (src, dst) in ONLY_THROUGH and not target.startswith(ONLY_THROUGH[src, dst]):
                problems.append(f"{where}: {src} may use {dst} only through {ONLY_THROUGH[src, dst]} ({target})")
    return problems


def part_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        src = part_of(module)
        for _line, target in imports_of(module, path):
            dst = part_of(target)
            if dst not in (None, src, "root"):
                graph.setdefault(src, set()).add(dst)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


# ----------------------------------------------------------------------------- the real tree
def test_every_part_is_mapped_and_listed():
    dirs = package_dirs()
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = set()
    for pkg, root in dirs.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root).parts
            on_disk.add(".".join((pkg, *rel)))
    assert set(conf["packages"]) == on_disk, "pyproject's [tool.setuptools] packages must list every package folder"
    assert set(ALLOWED) - {"root", "cli"} == {p.split(".")[1] for p in dirs if p != "fakewatch"} | {"core"}


def test_no_forbidden_imports():
    problems = layer_violations(project_modules(package_dirs()))
    assert not problems, "imports that break docs/architecture.md's layers:\n" + "\n".join(problems)


def test_no_cycles_between_parts():
    graph = part_graph(project_modules(package_dirs()))
    assert find_cycle(graph) is None, f"import cycle between parts: {' -> '.join(find_cycle(graph))}"
    # the checker really sees the edges it polices
    assert {"core", "streams"} <= graph["runtime"] and "runtime" in graph["export"] and graph["streams"] == {"core"}


def test_importing_the_package_or_a_part_stays_light():
    code = ("import sys, fakewatch, fakewatch.core, fakewatch.streams, fakewatch.runtime, fakewatch.export; "
            "heavy = sorted({'torch', 'timm', 'tensorrt', 'openvino', 'onnxruntime'} & set(sys.modules)); "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == ""


# ----------------------------------------------------------------------------- the checker catches breakage
def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    mods = {}
    for name, text in files.items():
        path = tmp_path / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        mods[name] = path
    return mods


def test_checker_flags_a_forbidden_import(tmp_path):
    mods = _tree(tmp_path, {
        "fakewatch.streams.bad": "def f():\n    from fakewatch.training.trainer import train\n",
        "fakewatch.runtime.bad": "from ..export import quantize\n",       # relative, resolved
        "fakewatch.export.bad": "import fakewatch.runtime.pipeline\n",     # runtime, but not its backends
        "fakewatch.core.bad": "TABLE = {'x': 'fakewatch.runtime.backends.torch_runner:TorchRunner'}\n",
        "fakewatch.export.good": "from fakewatch.runtime.backends import load_runner\n",
    })
    problems = layer_violations(mods)
    assert len(problems) == 4, problems
    assert any("streams must not import training" in p for p in problems)
    assert any("runtime must not import export (fakewatch.export)" in p for p in problems)
    assert any("only through fakewatch.runtime.backends (fakewatch.runtime.pipeline)" in p for p in problems)
    assert any("core must not import runtime" in p for p in problems)


def test_cycle_finder():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


# ----------------------------------------------------------------------------- what pip installs
def test_wheel_holds_one_top_level_package(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True)
    if proc.returncode and "No module named" in proc.stderr and "setuptools" in proc.stderr:
        pytest.skip("setuptools is not installed in this environment")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("fakewatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"fakewatch"}
    for expected in ("fakewatch/__main__.py", "fakewatch/cli.py", "fakewatch/core/contract.py",
                     "fakewatch/export/engine.py", "fakewatch/runtime/backends/base.py",
                     "fakewatch/runtime/cuda/preprocess.cu", "fakewatch/runtime/assets/demo/demo_model.onnx",
                     "fakewatch/streams/demo.py", "fakewatch/training/trainer.py", "fakewatch/benchmarks/cli.py"):
        assert expected in names
    assert not any(n.startswith("fakewatch/tests/") for n in names)
