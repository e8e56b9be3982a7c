"""A full tiny training run writes only into its dataset's nnUNet_results and nnUNet_preprocessed folders, leaves
the raw data untouched and never opens a network connection (sockets are refused in every training process)."""
import os
import subprocess
import sys
from typing import Dict, Tuple

import pytest

from helpers import folder_checksums
from nnunetv2_dualunc.nnunet_commands import console_script

TRAINER = "nnUNetTrainerDualUnc_test"

# Loaded by every Python process started with this folder first on PYTHONPATH (the training process and the workers
# it spawns): logs the interpreter, then refuses and logs every attempt to reach another machine.
_NETWORK_GUARD = '''
import os, socket

_LOG = os.environ["DUALUNC_TEST_NETWORK_LOG"]
_REMOTE = (socket.AF_INET, socket.AF_INET6)


def _record(line):
    with open(_LOG, "a") as f:
        f.write(f"{os.getpid()} {line}\\n")


def _refuse(what, target):
    _record(f"BLOCKED {what} {target!r}")
    raise OSError(f"network access is blocked in this test: {what} {target!r}")


def _guard(name):
    original = getattr(socket.socket, name)

    def guarded(self, *args):
        if self.family in _REMOTE:
            _refuse(name, args[-1] if args else None)
        return original(self, *args)
    setattr(socket.socket, name, guarded)


for _name in ("connect", "connect_ex", "sendto", "sendmsg"):
    _guard(_name)
socket.getaddrinfo = lambda host, *args, **kwargs: _refuse("getaddrinfo", host)
_record("guard loaded: " + " ".join(__import__("sys").argv[:1]))
'''

Snapshot = Dict[str, Tuple[int, int]]


def _tree(folder: str) -> Snapshot:
    """relative path -> (mtime_ns, size) of every file and link below folder."""
    tree = {}
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            info = os.lstat(path)
            tree[os.path.relpath(path, folder)] = (info.st_mtime_ns, info.st_size)
    return tree


@pytest.fixture(scope="module")
def guarded_run(planned_workspace, tmp_path_factory):
    """One nnUNetv2_train run of the tiny DualUnc trainer with the network guard, its working directory inside the
    workspace (so stray relative writes are seen), and the workspace tree recorded before and after."""
    ws = planned_workspace
    outside = tmp_path_factory.mktemp("network_guard")  # guard, its log and the run's console log: not in ws
    (outside / "sitecustomize.py").write_text(_NETWORK_GUARD)
    env = dict(ws.env, PYTHONPATH=os.pathsep.join([str(outside), ws.env["PYTHONPATH"]]),
               DUALUNC_TEST_NETWORK_LOG=str(outside / "network.log"))
    working_directory = os.path.join(ws.root, "security_cwd")
    os.makedirs(working_directory, exist_ok=True)
    raw_checksums, before = folder_checksums(ws.raw_dataset), _tree(ws.root)
    with open(outside / "train.log", "w") as log:
        proc = subprocess.run([console_script("nnUNetv2_train"), "991", "2d", "all", "-tr", TRAINER, "-device", "cpu"],
                              env=env, cwd=working_directory, stdout=log, stderr=subprocess.STDOUT, timeout=900)
    assert proc.returncode == 0, (outside / "train.log").read_text()[-6000:]
    return dict(workspace=ws, env=env, before=before, after=_tree(ws.root), raw_checksums=raw_checksums,
                network_log=outside / "network.log")


def test_training_writes_only_its_dataset_folders(guarded_run):
    ws = guarded_run["workspace"]
    before, after = guarded_run["before"], guarded_run["after"]
    changed = {path for path in after if before.get(path) != after[path]} | (before.keys() - after.keys())
    allowed = tuple(os.path.relpath(os.path.join(ws.env[variable], ws.dataset), ws.root) + os.sep
                    for variable in ("nnUNet_results", "nnUNet_preprocessed"))
    assert any(path.startswith(allowed[0]) for path in changed)  # the run's own files are seen
    assert sorted(path for path in changed if not path.startswith(allowed)) == []
    assert folder_checksums(ws.raw_dataset) == guarded_run["raw_checksums"]


def test_training_makes_no_network_access(guarded_run):
    lines = guarded_run["network_log"].read_text().splitlines()
    assert any("guard loaded" in line and line.endswith("nnUNetv2_train") for line in lines)  # guard was active
    assert [line for line in lines if "BLOCKED" in line] == []
    # the guard really blocks: connection attempts under the same environment are refused and logged
    probe = ("import socket\n"
             "for attempt in (lambda: socket.socket().connect(('192.0.2.1', 80)),\n"
             "                lambda: socket.create_connection(('example.org', 80), timeout=1)):\n"
             "    try:\n"
             "        attempt()\n"
             "    except OSError as e:\n"
             "        print(e)\n")
    proc = subprocess.run([sys.executable, "-c", probe], env=guarded_run["env"], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.count("network access is blocked in this test") == 2, proc.stdout + proc.stderr
    log = guarded_run["network_log"].read_text()
    assert "BLOCKED connect ('192.0.2.1', 80)" in log and "BLOCKED getaddrinfo 'example.org'" in log
