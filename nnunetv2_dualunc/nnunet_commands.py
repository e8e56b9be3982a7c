"""Running nnU-Net's own console scripts from Python: where they are, which environment they get, a logged run, and
train-or-resume. The demo and the benchmarks drive nnU-Net through these, the way a user types the commands."""
import os
import shutil
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

# the folder holding the nnunetv2_dualunc package (a source checkout or site-packages)
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: lines of a failed command's output that its error message repeats
_FAILURE_TAIL_LINES = 40


class CommandFailed(RuntimeError):
    """An nnU-Net command exited with an error; the message names its log file and repeats the log's last lines."""


def console_script(name: str) -> str:
    """An nnU-Net console script of the running interpreter's environment, else the first one on PATH."""
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"Cannot find the nnU-Net command '{name}' next to {sys.executable} or on PATH; "
                                f"install nnunetv2 into this environment (pip install nnunetv2).")
    return found


def trainer_folder() -> str:
    """The folder of thin trainer modules that nnU-Net must scan (nnUNet_extTrainer): the installed package
    ``nnunetv2_dualunc_trainers`` (editable or regular install), else the source checkout's trainers/."""
    try:
        import nnunetv2_dualunc_trainers
        return os.path.dirname(os.path.abspath(nnunetv2_dualunc_trainers.__file__))
    except ImportError:
        checkout = os.path.join(_PACKAGE_PARENT, "trainers")
        if os.path.isfile(os.path.join(checkout, "dualunc_trainers.py")):
            return checkout
    raise RuntimeError("Cannot locate the trainer folder for nnUNet_extTrainer: install this plugin with "
                       "'pip install -e .' (it provides the package nnunetv2_dualunc_trainers).")


def nnunet_environment(output_dir: str, num_processes: int = 2, extra_trainer_folders: Sequence[str] = (),
                       base_env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for nnU-Net subprocesses: data folders under output_dir, this plugin's trainers (plus
    extra_trainer_folders and any already configured), CPU-friendly settings; on top of base_env (os.environ)."""
    env = dict(os.environ if base_env is None else base_env)
    env.update({
        "nnUNet_raw": os.path.join(output_dir, "nnUNet_raw"),
        "nnUNet_preprocessed": os.path.join(output_dir, "nnUNet_preprocessed"),
        "nnUNet_results": os.path.join(output_dir, "nnUNet_results"),
        "nnUNet_compile": "false",
        # default pool size of nnU-Net's helpers (validation export etc.); its default of 8 thrashes 2 cores
        "nnUNet_def_n_proc": str(num_processes),
        "PYTHONUNBUFFERED": "1",
        # torch's spinning OpenMP threads slow every step several-fold when another process needs a core
        "OMP_WAIT_POLICY": env.get("OMP_WAIT_POLICY", "PASSIVE"),
    })
    folders = [trainer_folder(), *extra_trainer_folders] + \
        [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    env["nnUNet_extTrainer"] = os.pathsep.join(dict.fromkeys(folders))
    # subprocesses must import this package even when it runs from a source checkout without installation
    python_path = [_PACKAGE_PARENT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(python_path))
    return env


def run_logged(command: Sequence[str], env: Dict[str, str], log_file: str,
               on_line: Optional[Callable[[str], None]] = None) -> float:
    """Run a command (its first element a console-script name or path), append all its output to log_file and hand
    each line to on_line; return its wall-clock seconds. A failure raises CommandFailed with the log's last lines."""
    command = [console_script(command[0]) if os.sep not in command[0] else command[0], *command[1:]]
    recent: List[str] = []
    start = time.time()
    with open(log_file, "a") as log, subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                                      stderr=subprocess.STDOUT, text=True, bufsize=1) as process:
        for line in process.stdout:
            log.write(line)
            line = line.rstrip().split("\r")[-1]
            recent = (recent + [line])[-_FAILURE_TAIL_LINES:]
            if on_line is not None:
                on_line(line)
    if process.returncode != 0:
        raise CommandFailed("\n".join(recent) + f"\nCommand failed with exit code {process.returncode}: "
                            f"{' '.join(command)}\nFull output: {log_file}")
    return time.time() - start


def train_command(dataset_id: int, configuration: str, fold: str, trainer: str, device: str,
                  fold_folder: str) -> List[str]:
    """nnUNetv2_train for one fold, with --c when the fold folder holds a checkpoint of an interrupted run (nnU-Net
    then continues from checkpoint_final, else _latest, else _best)."""
    command = ["nnUNetv2_train", str(dataset_id), configuration, str(fold), "-tr", trainer, "-device", device]
    if has_checkpoint(fold_folder):
        command.append("--c")
    return command


def has_checkpoint(fold_folder: str) -> bool:
    return any(os.path.isfile(os.path.join(fold_folder, f"checkpoint_{kind}.pth"))
               for kind in ("final", "latest", "best"))
