"""Semi-supervised benchmark runner shared by benchmarks/acdc.py and benchmarks/hippocampus.py.

For one labelled subset it does what a user would do, through the plugin's and nnU-Net's commands:
build the semi-supervised raw dataset -> plan (unlabelled cases counted) and preprocess -> [add the CPU
configuration] -> write the fold-0 split (labelled -> validation) -> per method: nnUNetv2_train (resumed with --c
when a checkpoint exists), whose final validation predicts the validation cases' full volumes in their original
geometry -> nnunetv2_dualunc evaluate against the references -> results table.

Re-running the same command resumes: finished steps are skipped, an interrupted training continues from its
latest checkpoint and its wall-clock is added up over the attempts (state/<method>.json). Work folders live
outside the repository; the source dataset is only read.
"""
import argparse
import json
import os
import platform
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARK_TRAINERS = os.path.join(REPO, "benchmarks", "ext_trainers")
sys.path.insert(0, BENCHMARK_TRAINERS)

from benchmark_trainers import (METHODS, ORACLE_LABELS_VARIABLE, PAPER_METHODS, PROFILES,  # noqa: E402
                                RECIPE_TWINS, SEED_VARIABLE, TEACHER_PROFILES, WARM_START_METHODS,
                                trainer_name)

from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier  # noqa: E402
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager  # noqa: E402

from nnunetv2_dualunc.atomic_files import atomic_write_json  # noqa: E402
from nnunetv2_dualunc.nnunet_commands import (CommandFailed, nnunet_environment, run_logged,  # noqa: E402
                                             train_command)
from nnunetv2_dualunc.evaluation.evaluate_folders import evaluate_folders, markdown_table  # noqa: E402
from compare_runs import METRICS_FILE  # noqa: E402
from training_log import phase_timings  # noqa: E402

TABLE_METRICS = ("dice", "jaccard", "hd95_vox", "asd_vox", "hd95_mm", "asd_mm")


@dataclass
class BenchmarkSetup:
    """What one benchmark run trains and evaluates."""
    source: str                  # nnU-Net raw dataset (read only)
    lists_file: str              # JSON with the train/val/labelled lists
    labelled_key: str            # key of the labelled list in lists_file
    dataset_id: int
    dataset_name: str
    configuration: str           # nnU-Net configuration the methods train
    profile: str                 # budget profile of benchmark_trainers.PROFILES
    group_by: Optional[str] = None  # regex grouping case ids (ACDC: patients)
    # (BASE, OPTIONS): `configuration` is added to nnU-Net's plans of BASE by `nnunetv2_dualunc add-cpu-configuration
    # -c BASE -n <configuration> OPTIONS`; None: nnU-Net plans `configuration` itself
    derived_from: Optional[Tuple[str, Tuple[str, ...]]] = None
    device: str = "cpu"
    label_names: Dict[int, str] = field(default_factory=dict)


def fold_folder(work: str, dataset_id: int, dataset_name: str, configuration: str, trainer: str) -> str:
    """Where a benchmark run's `trainer` trains fold 0 inside its work folder (nnU-Net's results layout)."""
    return os.path.join(work, "nnUNet_results", f"Dataset{dataset_id:03d}_{dataset_name}",
                        convert_trainer_plans_config_to_identifier(trainer, "nnUNetPlans", configuration), "fold_0")


def _hardware() -> Dict[str, str]:
    import torch

    cpu = platform.processor()
    if os.path.isfile("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    info = {"cpu": cpu, "cpu_cores": str(os.cpu_count()), "torch": torch.__version__,
            "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    from importlib.metadata import version

    info["nnunetv2"] = version("nnunetv2")
    return info


class LoadSampler:
    """Samples the 1-minute load average every 30 s while a step runs: timings on a shared machine need it."""

    def __init__(self):
        self.samples: List[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(30):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    @property
    def mean(self) -> Optional[float]:
        return round(sum(self.samples) / len(self.samples), 2) if self.samples else None


def _newer_than_every_file(path: str, folder: str) -> bool:
    """path exists and was written after every file of folder (which must exist and hold files)."""
    if not (os.path.isfile(path) and os.path.isdir(folder)):
        return False
    times = [os.path.getmtime(os.path.join(folder, name)) for name in os.listdir(folder)]
    return bool(times) and os.path.getmtime(path) > max(times)


def _total_seconds(attempts: List[dict]) -> float:
    return round(sum(a["seconds"] for a in attempts), 1)


def _close_interrupted_attempt(state: dict, fold: str) -> dict:
    """An attempt killed mid-run (a session's end, a crash) left only its start time in the state file; it ended
    with the last write into its fold folder (a log line, a checkpoint), so the wall-clock a resumed run reports
    still counts the interrupted part (load unknown: not sampled to the end)."""
    running = state.get("running")
    if running is None:
        return state
    writes = [os.path.getmtime(os.path.join(folder, name)) for folder, _, names in os.walk(fold) for name in names]
    seconds = max(writes + [running["start"]]) - running["start"]
    attempts = state.get("attempts", []) + [{"seconds": round(seconds, 1), "resumed": running["resumed"],
                                             "mean_load": None, "interrupted": True}]
    return dict({k: v for k, v in state.items() if k != "running"}, attempts=attempts,
                train_seconds=_total_seconds(attempts))


class BenchmarkRun:
    def __init__(self, setup: BenchmarkSetup, work: str, seed: int, num_processes: int, da_processes: int,
                 keep: Optional[str] = None):
        self.setup, self.seed, self.np, self.da = setup, seed, num_processes, da_processes
        self.keep = keep
        self.work = os.path.abspath(work)
        if os.path.commonpath([self.work, REPO]) == REPO:
            raise SystemExit(f"--work {self.work} is inside the repository; use a folder outside it, e.g. under /tmp")
        os.makedirs(os.path.join(self.work, "state"), exist_ok=True)
        os.makedirs(os.path.join(self.work, "logs"), exist_ok=True)
        self.env = nnunet_environment(self.work, num_processes, extra_trainer_folders=[BENCHMARK_TRAINERS])
        self.env.update({SEED_VARIABLE: str(seed), "nnUNet_n_proc_DA": str(da_processes),
                         # read only by the benchmark's oracle trainers (hidden labels of the unlabelled cases)
                         ORACLE_LABELS_VARIABLE: os.path.join(setup.source, "labelsTr"),
                         "PYTHONPATH": os.pathsep.join(filter(None, [BENCHMARK_TRAINERS,
                                                                     os.environ.get("PYTHONPATH")]))})
        self.dataset_folder = f"Dataset{setup.dataset_id:03d}_{setup.dataset_name}"

    # ----------------------------------------------------------------------------------------------- helpers
    def _state_file(self, name: str) -> str:
        return os.path.join(self.work, "state", f"{name}.json")

    def _state(self, name: str) -> dict:
        path = self._state_file(name)
        return json.load(open(path)) if os.path.isfile(path) else {}

    def _save_state(self, name: str, state: dict) -> None:
        atomic_write_json(state, self._state_file(name), indent=1)

    def _run(self, args: Sequence[str], log_name: str, env: Optional[Dict[str, str]] = None) -> float:
        """Run a console script (log in logs/), return its wall-clock seconds; stop with the log's tail on failure."""
        log_path = os.path.join(self.work, "logs", log_name)
        print(f"[{time.strftime('%H:%M:%S')}] {' '.join(args)}  (log: {log_path})", flush=True)
        try:
            return run_logged(args, env or self.env, log_path)
        except CommandFailed as failure:
            raise SystemExit(f"FAILED: {failure}")

    # ----------------------------------------------------------------------------------------------- steps
    def prepare(self) -> None:
        """Dataset, plans, preprocessing, split: once (state/prepare.json records that it finished)."""
        s = self.setup
        wanted = {"source": s.source, "labelled_key": s.labelled_key, "configuration": s.configuration,
                  "derived_from": s.derived_from}
        if self._state("prepare").get("settings") == json.loads(json.dumps(wanted)):  # as stored: tuples -> lists
            return
        timings = {}
        d = str(s.dataset_id)
        build = ["nnunetv2_dualunc", "build-ssl-dataset", "-i", s.source, "-d", d, "-n", s.dataset_name,
                 "--overwrite", "--labelled-from", s.lists_file, s.labelled_key, "--validation-from", s.lists_file,
                 "val", "--unlabelled-rest-of", s.lists_file, "train"]
        if s.group_by:
            build += ["--group-regex", s.group_by]
        shutil.rmtree(os.path.join(self.env["nnUNet_preprocessed"], self.dataset_folder), ignore_errors=True)
        timings["build_dataset"] = self._run(build, "prepare.log")
        base, options = s.derived_from or (s.configuration, ())
        # a batch-size-only variant shares its base's preprocessed data; a CPU configuration needs its own
        own_data = s.derived_from is not None and "--batch-size-only" not in options
        plan_env = dict(self.env, nnUNet_n_proc_DA=str(max(1, self.da)))
        timings["plan_and_preprocess"] = self._run(
            ["nnunetv2_dualunc", "plan-and-preprocess", "-d", d, "-c", base, "-np", str(self.np),
             "--verify_dataset_integrity"] + (["--no_pp"] if own_data else []), "prepare.log", plan_env)
        if s.derived_from:
            timings["add_cpu_configuration"] = self._run(
                ["nnunetv2_dualunc", "add-cpu-configuration", "-d", d, "-c", base, "-n", s.configuration] +
                list(options), "prepare.log")
        if own_data:
            timings["preprocess_cpu"] = self._run(
                ["nnUNetv2_preprocess", "-d", d, "-c", s.configuration, "-np", str(self.np)], "prepare.log")
            timings["preprocess_unlabelled"] = self._run(
                ["nnunetv2_dualunc", "preprocess-unlabelled", "-d", d, "-c", s.configuration, "-np", str(self.np)],
                "prepare.log")
        timings["write_splits"] = self._run(["nnunetv2_dualunc", "write-ssl-splits", "-d", d], "prepare.log")
        self._save_state("prepare", {"settings": wanted, "timings_s": {k: round(v, 1) for k, v in timings.items()}})

    def adopt_teacher(self, source_work: str) -> None:
        """Start this work folder from another one's dataset, plans and warm-start teacher (one teacher, several
        seeds of the continuation: each seed then pairs its methods on the very same checkpoint). Copies nnU-Net's
        raw and preprocessed dataset, the teacher's model folder and their state files; a folder that already
        has its teacher is left alone, so a resumed command does nothing here."""
        teacher_profile = TEACHER_PROFILES.get(self.setup.profile)
        if teacher_profile is None:
            raise SystemExit(f"--teacher-from needs a warm-start profile ({', '.join(TEACHER_PROFILES)}); "
                             f"{self.setup.profile} trains its methods from scratch")
        source = os.path.abspath(source_work)
        teacher_model = os.path.dirname(self._fold_folder("supervised", teacher_profile))
        source_model = os.path.join(source, os.path.relpath(teacher_model, self.work))
        final_checkpoint = os.path.join("fold_0", "checkpoint_final.pth")
        prepared = bool(self._state("prepare"))
        if prepared and os.path.isfile(os.path.join(teacher_model, final_checkpoint)):
            return
        source_state = os.path.join(source, "state", "supervised.json")
        finished = os.path.isfile(source_state) and json.load(open(source_state)).get("trained", False)
        if not (finished and os.path.isfile(os.path.join(source_model, final_checkpoint))):
            # checkpoint_final.pth appears before nnU-Net's final validation: copying then would take a teacher
            # whose run the source folder still reports as running
            raise SystemExit(f"--teacher-from {source}: no finished teacher in {source_model}; train it first with "
                             f"the same command, --profile of {teacher_profile} and --methods supervised, and "
                             f"--work at that folder's parent")
        if prepared:
            raise SystemExit(f"--teacher-from: {self.work} already holds a prepared dataset; give --work a new folder")
        # an interrupted copy is completed by the next command (dirs_exist_ok)
        for data in ("nnUNet_raw", "nnUNet_preprocessed"):
            shutil.copytree(os.path.join(source, data, self.dataset_folder),
                            os.path.join(self.env[data], self.dataset_folder), dirs_exist_ok=True)
        shutil.copytree(source_model, teacher_model, dirs_exist_ok=True)
        for name in ("supervised", "prepare"):  # prepare last: with the teacher's weights it marks a finished copy
            shutil.copy2(os.path.join(source, "state", f"{name}.json"), self._state_file(name))

    def _fold_folder(self, method: str, profile: Optional[str] = None) -> str:
        return fold_folder(self.work, self.setup.dataset_id, self.setup.dataset_name, self.setup.configuration,
                           trainer_name(method, profile or self.setup.profile))

    def train(self, method: str, profile: Optional[str] = None) -> None:
        """Train (or resume) one method; nnU-Net's final validation writes fold_0/validation/*. profile: another
        budget profile than the setup's (the teacher of a warm-start profile; its state file is the method's)."""
        profile = profile or self.setup.profile
        fold = self._fold_folder(method, profile)
        state = self._state(method)
        if os.path.isfile(os.path.join(fold, "checkpoint_final.pth")) and state.get("trained"):
            return
        args = train_command(self.setup.dataset_id, self.setup.configuration, "0", trainer_name(method, profile),
                             self.setup.device, fold)
        resume = "--c" in args
        state = _close_interrupted_attempt(state, fold)
        self._save_state(method, dict(state, running={"start": time.time(), "resumed": resume}))
        with LoadSampler() as load:
            seconds = self._run(args, f"train_{method}.log")
        attempts = state.get("attempts", []) + [{"seconds": round(seconds, 1), "resumed": resume,
                                                 "mean_load": load.mean}]
        self._save_state(method, dict(state, trained=True, attempts=attempts, train_seconds=_total_seconds(attempts)))

    @property
    def _raw_folder(self) -> str:
        return os.path.join(self.env["nnUNet_raw"], self.dataset_folder)

    @property
    def _file_ending(self) -> str:
        return json.load(open(os.path.join(self._raw_folder, "dataset.json")))["file_ending"]

    def references(self, ending: str) -> str:
        """A folder with the validation cases' reference labels (links into the built raw dataset)."""
        split = json.load(open(os.path.join(self._raw_folder, "ssl_split.json")))
        folder = os.path.join(self.work, "references")
        os.makedirs(folder, exist_ok=True)
        for case in split["validation"]:
            link = os.path.join(folder, case + ending)
            if not os.path.lexists(link):
                os.symlink(os.path.join(self._raw_folder, "labelsTr", case + ending), link)
        return folder

    def evaluate(self, method: str, profile: Optional[str] = None) -> dict:
        """Score the method's validation predictions into metrics_<method>.json; a file newer than every prediction
        is read instead (a resumed queue re-enters every finished method, and scoring 20 volumes takes a minute)."""
        ending = self._file_ending
        predictions = os.path.join(self._fold_folder(method, profile), "validation")
        metrics_file = os.path.join(self.work, f"metrics_{method}.json")
        if _newer_than_every_file(metrics_file, predictions):
            with open(metrics_file) as f:
                return json.load(f)
        result = evaluate_folders(predictions, self.references(ending), sorted(self.setup.label_names), ending,
                                  num_processes=self.np)
        atomic_write_json(result, metrics_file, indent=1)
        return result

    def with_controls(self, methods: Sequence[str]) -> List[str]:
        """The methods in the order they train, each semi-supervised one followed by its recipe-without-unlabelled
        twin, and in a warm-start profile supervised_continued first: every gain is then reported against both."""
        def chain(method: str) -> List[str]:  # the models it continues (and their twins) first
            start = chain(WARM_START_METHODS[method]) if method in WARM_START_METHODS else []
            return start + [method] + ([RECIPE_TWINS[method]] if method in RECIPE_TWINS else [])

        ordered = ["supervised_continued"] if self.setup.profile in TEACHER_PROFILES else []
        for method in methods:
            ordered += chain(method)
        return list(dict.fromkeys(ordered))

    def run(self, methods: Sequence[str]) -> str:
        self.prepare()
        results, rows = {}, []
        teacher_profile = TEACHER_PROFILES.get(self.setup.profile)
        if teacher_profile:  # warm-start profile: every method starts from this supervised model
            self.train("supervised", teacher_profile)
            results["teacher"] = self.evaluate("supervised", teacher_profile)
            rows.append(self._report_row("teacher", "supervised", teacher_profile))
        for method in self.methods_evaluated_earlier(methods):
            with open(os.path.join(self.work, f"metrics_{method}.json")) as f:
                results[method] = json.load(f)
            rows.append(self._report_row(method))
        for method in methods:
            self.train(method)
            results[method] = self.evaluate(method)
            rows.append(self._report_row(method))
            report = self.write_report(results, rows)  # after each method: a partial table is already useful
            self.keep_results()
        return report

    def methods_evaluated_earlier(self, methods: Sequence[str]) -> List[str]:
        """The methods an earlier invocation on this folder evaluated (their metrics_<method>.json is here) that this
        one does not train: the report keeps their rows and recipe twins, so that adding a method to a finished folder
        does not drop the others from results.json."""
        teacher = "supervised" if self.setup.profile in TEACHER_PROFILES else None
        names = sorted(os.listdir(self.work)) if os.path.isdir(self.work) else []
        found = [match.group("method") for match in map(METRICS_FILE.match, names) if match]
        return [m for m in found if m not in methods and m != teacher and m in METHODS]

    def _report_row(self, row_name: str, method: Optional[str] = None, profile: Optional[str] = None) -> tuple:
        """(row name, trainer, training state, phase timings) of one method's row in the report's timing table."""
        method = method or row_name
        return (row_name, trainer_name(method, profile or self.setup.profile), self._state(method),
                phase_timings(self._fold_folder(method, profile)))

    def keep_results(self) -> None:
        """Copy the report and the metrics files into --keep (e.g. the checkout's docs/results/<experiment>/...):
        a work folder lives on one machine and dies with it, a finished method's numbers should not."""
        if not self.keep:
            return
        os.makedirs(self.keep, exist_ok=True)
        for name in sorted(os.listdir(self.work)):
            if name in ("results.json", "results.md") or (name.startswith("metrics_") and name.endswith(".json")):
                shutil.copy2(os.path.join(self.work, name), os.path.join(self.keep, name))

    def write_report(self, results: Dict[str, dict], rows) -> str:
        s = self.setup
        epochs, split, iterations, _ = PROFILES[s.profile]
        plans = json.load(open(os.path.join(self.env["nnUNet_preprocessed"], self.dataset_folder, "nnUNetPlans.json")))
        configuration = PlansManager(plans).get_configuration(s.configuration).configuration
        lines = [f"# {s.dataset_name}: {s.labelled_key}, configuration {s.configuration}, profile {s.profile}, "
                 f"seed {self.seed}", "",
                 f"- hardware: {json.dumps(_hardware())}",
                 f"- budget: {epochs} epochs x {iterations} iterations = {epochs * iterations} gradient steps per "
                 f"method (semi-supervised: pre-train/stage 1/stage 2 = {split} epochs); batch "
                 f"{configuration.get('batch_size')} labelled (+ as many pseudo-labelled in stages), patch "
                 f"{configuration.get('patch_size')}, spacing {configuration.get('spacing')}",
                 f"- plans: {json.dumps(plans.get('dualunc_planning'))}",
                 *self._warm_start_lines(),
                 "- evaluated: nnU-Net's final validation predictions of fold 0 (the validation cases' full volumes "
                 "in their original geometry) against their references", "",
                 markdown_table(results, s.label_names, TABLE_METRICS), "",
                 "| method | trainer | training wall-clock (s) | attempts | mean load | ranking (s) | "
                 "pseudo-labelling (s) |", "|---|---|---|---|---|---|---|"]
        for method, trainer, state, phases in rows:
            lines.append(f"| {method} | {trainer} | {state.get('train_seconds')} | {len(state.get('attempts', []))} | "
                         f"{', '.join('?' if a['mean_load'] is None else str(a['mean_load']) for a in state.get('attempts', []))} | "
                         f"{phases.get('ranking_s') or '-'} | {phases.get('pseudo_labelling_s') or '-'} |")
        report = "\n".join(lines) + "\n"
        with open(os.path.join(self.work, "results.md"), "w") as f:
            f.write(report)
        with open(os.path.join(self.work, "results.json"), "w") as f:
            json.dump({"setup": s.__dict__, "seed": self.seed, "hardware": _hardware(),
                       "recipe_twins": {m: RECIPE_TWINS[m] for m in results if m in RECIPE_TWINS},
                       "mean": {m: r["mean"] for m, r in results.items()},
                       "mean_per_class": {m: r["mean_per_class"] for m, r in results.items()},
                       "timings": {m: {"train_seconds": st.get("train_seconds"), **ph} for m, _, st, ph in rows}},
                      f, indent=1, default=str)
        print(report, flush=True)
        return report

    def _warm_start_lines(self) -> List[str]:
        teacher = TEACHER_PROFILES.get(self.setup.profile)
        if not teacher:
            return []
        epochs, _, iterations, _ = PROFILES[teacher]
        return [f"- warm start: every method starts from the checkpoint_final.pth of the row 'teacher' "
                f"({trainer_name('supervised', teacher)}, {epochs * iterations} supervised steps, trained in this "
                f"folder or copied from another seed's with --teacher-from); the steps above come on top of it"]


def main(make_setup: Callable[[str, str], BenchmarkSetup], labelled_keys: Sequence[str], profiles: Sequence[str],
         description: str, argv: Optional[List[str]] = None) -> None:
    """Command line shared by the dataset scripts: labelled subsets, profile, methods, seed, work folder."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--labelled", nargs="+", default=list(labelled_keys), choices=list(labelled_keys))
    parser.add_argument("--profile", default=profiles[0], choices=list(profiles),
                        help=f"budget and configuration (default {profiles[0]})")
    parser.add_argument("--methods", nargs="+", default=list(PAPER_METHODS), choices=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None,
                        help="work folder (default /tmp/dualunc_bench/<dataset>_<profile>_seed<seed>/<subset>)")
    parser.add_argument("--teacher-from", default=None, metavar="WORK",
                        help="warm-start profiles: copy the dataset, plans and teacher of another run's work folder "
                             "(its --work) into a new one, so that another seed continues the same teacher")
    parser.add_argument("--no-controls", action="store_true",
                        help="train only the methods named: no supervised_continued (warm-start profiles) and no "
                             "<method>_recipe_only twin after each semi-supervised method")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="after each method, copy results.json, results.md and metrics_*.json into DIR "
                             "(DIR/<subset> with several subsets): what finished survives the loss of the work folder")
    parser.add_argument("--np", type=int, default=2, help="processes for preprocessing and evaluation")
    parser.add_argument("--da", type=int, default=2, help="nnUNet_n_proc_DA while training")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for key in args.labelled:
        setup = make_setup(key, args.profile)
        root = args.work or os.path.join("/tmp/dualunc_bench", f"{setup.dataset_name}_{args.profile}_seed{args.seed}")
        keep = args.keep and (os.path.join(args.keep, key) if len(args.labelled) > 1 else args.keep)
        run = BenchmarkRun(setup, os.path.join(root, key), args.seed, args.np, args.da, keep)
        if args.teacher_from:
            run.adopt_teacher(os.path.join(args.teacher_from, key))
        run.run(args.methods if args.no_controls else run.with_controls(args.methods))
