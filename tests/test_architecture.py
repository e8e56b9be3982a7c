"""The package's layering, from its import statements (docs/ARCHITECTURE.md): no cycle, no arrow upward.

    cli, demo                      commands
    training, inference            trainers (Algorithm 1) and prediction; training may use inference's predictors
    method, network, data,         the paper's equations, the network, data handling, metrics: independent of
    evaluation                     each other and of everything above
    atomic_files, run_layout,      leaves: import nothing of the package (tables: atomic_files only)
    tables, nnunet_commands, nnunet_folders, cpu_configuration, plots
"""
import ast
import os
from typing import Dict, Set

import nnunetv2_dualunc

PACKAGE = "nnunetv2_dualunc"
ROOT = os.path.dirname(nnunetv2_dualunc.__file__)
#: unit (subpackage or top-level module) -> the units it may import
ALLOWED = {
    "cli": {"*"},
    "demo": {"data", "evaluation", "inference", "training", "run_layout", "nnunet_commands", "nnunet_folders",
             "plots"},
    "training": {"inference", "method", "network", "data", "evaluation", "atomic_files", "run_layout",
                 "nnunet_folders", "plots"},
    "inference": {"method", "network", "data", "evaluation", "atomic_files", "run_layout", "tables", "plots"},
    "method": {"atomic_files", "run_layout", "tables"},
    "network": set(),
    "data": {"atomic_files", "run_layout", "nnunet_folders"},
    "evaluation": {"atomic_files"},
    "atomic_files": set(), "run_layout": set(), "plots": set(), "tables": {"atomic_files"}, "nnunet_commands": set(), "nnunet_folders": set(),
    "cpu_configuration": {"atomic_files"},
}


def _module_imports() -> Dict[str, Set[str]]:
    """module name -> the package's modules it imports (at any depth of the file, lazy imports included)."""
    graph = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            module = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".").removesuffix(".__init__")
            imported = set()
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
                    imported.add(node.module)
                elif isinstance(node, ast.Import):
                    imported.update(a.name for a in node.names if a.name.startswith(PACKAGE + "."))
            graph[module] = imported
    return graph


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_import_follows_the_layers():
    graph = _module_imports()
    assert {_unit(m) for m in graph if m != PACKAGE} <= set(ALLOWED), "a new unit: give it a layer in ALLOWED"
    upward = [f"{m} -> {i}" for m, imports in graph.items() for i in imports
              if _unit(i) != _unit(m) and "*" not in ALLOWED.get(_unit(m), set()) and _unit(i) not in ALLOWED[_unit(m)]]
    assert upward == []


def test_no_import_cycle_between_modules():
    graph = _module_imports()
    state: Dict[str, int] = {}

    def visit(module: str, path: list) -> None:
        state[module] = 1
        for imported in graph.get(module, ()):
            assert state.get(imported) != 1, "import cycle: " + " -> ".join(path + [module, imported])
            if imported not in state:
                visit(imported, path + [module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
