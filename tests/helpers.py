"""Small helpers shared by several test modules."""
import hashlib
import os


def folder_checksums(folder: str) -> dict:
    """relative path -> sha256 of every file below folder: proves a folder was left untouched."""
    result = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                result[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return result


def add_ignore_label(raw_folder: str, ignore: int, band_width: int = 10) -> None:
    """Give an nnU-Net raw dataset the ignore label: dataset.json declares it, and a band of every labelled case's
    last axis becomes unannotated."""
    import SimpleITK as sitk
    from batchgenerators.utilities.file_and_folder_operations import load_json, save_json

    dataset_json = load_json(os.path.join(raw_folder, "dataset.json"))
    dataset_json["labels"] = dict(dataset_json["labels"], ignore=ignore)
    save_json(dataset_json, os.path.join(raw_folder, "dataset.json"))
    labels = os.path.join(raw_folder, "labelsTr")
    for name in os.listdir(labels):
        image = sitk.ReadImage(os.path.join(labels, name))
        label = sitk.GetArrayFromImage(image)
        label[..., :band_width] = ignore
        annotated = sitk.GetImageFromArray(label)
        annotated.CopyInformation(image)
        sitk.WriteImage(annotated, os.path.join(labels, name))


def trainer_factory(workspace, monkeypatch, fold=0, configuration: str = "2d"):
    """trainer_class -> a trainer of a planned workspace's configuration on the CPU, built in this process (fold
    "all" where the trainer splits its cases: four labelled cases are too few for nnU-Net's five folds)."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json

    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, workspace.env[name])
    folder = os.path.join(workspace.env["nnUNet_preprocessed"], workspace.dataset)
    plans = dict(load_json(os.path.join(folder, "nnUNetPlans.json")), continue_training=False)
    dataset_json = load_json(os.path.join(folder, "dataset.json"))

    return lambda trainer_class: trainer_class(dict(plans), configuration, fold, dataset_json, torch.device("cpu"))
