"""Uncertainty maps at inference: Eq. 2 on probabilities, the per-case summary and ranking, the map's geometry.
The whole command (preprocess -> both decoders -> original geometry) runs in test_integration.py."""
import math
import os

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from nnunetv2_dualunc.inference.export import export_plain_model
from nnunetv2_dualunc.inference.uncertainty_maps import (CaseUncertainty, UncertaintyPredictor,
                                                         kl_between_probabilities, rank_by_uncertainty, summarise_case,
                                                         write_float_map, write_uncertainty_ranking)
from nnunetv2_dualunc.method.losses import kl_divergence_map
from test_export import write_fake_results_folder
from test_network import build_dual, random_input


def test_kl_of_probabilities_is_hand_computed_eq_2():
    p_main = np.array([[[0.5, 1.0]], [[0.5, 0.0]]])  # 2 classes, 1 x 2 voxels
    p_aux = np.array([[[0.25, 1.0]], [[0.75, 0.0]]])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # first voxel; the second agrees: 0
    kl = kl_between_probabilities(p_main, p_aux)
    assert kl.shape == (1, 2) and kl.dtype == np.float32
    assert kl[0, 0] == pytest.approx(expected, rel=1e-5) and kl[0, 1] == pytest.approx(0.0, abs=1e-6)


def test_kl_of_probabilities_matches_the_training_loss_kl():
    torch.manual_seed(0)
    main, aux = torch.randn(1, 4, 5, 6), torch.randn(1, 4, 5, 6)
    from_probabilities = kl_between_probabilities(main.softmax(1)[0].numpy(), aux.softmax(1)[0].numpy())
    np.testing.assert_allclose(from_probabilities, kl_divergence_map(main, aux)[0, 0].numpy(), rtol=1e-4, atol=1e-6)


def test_case_summary_averages_over_either_decoders_foreground():
    kl = np.array([[0.0, 1.0, 2.0, 3.0]], dtype=np.float32)
    main = np.array([[0, 1, 0, 0]])
    aux = np.array([[0, 0, 2, 0]])
    summary = summarise_case("c", kl, main, aux)
    assert summary == CaseUncertainty("c", 1.5, 1.5, 2)
    empty = summarise_case("e", kl, np.zeros_like(main), np.zeros_like(aux))
    assert math.isnan(empty.mean_kl_foreground) and empty.foreground_voxels == 0


def test_ranking_puts_the_most_uncertain_first_and_cases_without_foreground_last(tmp_path):
    cases = [CaseUncertainty("low", 0.1, 0.01, 5), CaseUncertainty("none", math.nan, 0.0, 0),
             CaseUncertainty("high", 0.9, 0.02, 5)]
    assert [c.case for c in rank_by_uncertainty(cases)] == ["high", "low", "none"]
    path = tmp_path / "uncertainty_ranking.tsv"
    write_uncertainty_ranking(str(path), cases)
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["rank", "case", "mean_kl_foreground", "mean_kl_image", "foreground_voxels"]
    assert [line.split("\t")[:2] for line in lines[1:]] == [["1", "high"], ["2", "low"], ["3", "none"]]
    assert lines[3].split("\t")[2] == "nan"


@pytest.mark.parametrize("shape", [(1, 6, 5), (3, 6, 5)])
def test_float_map_keeps_the_geometry_of_the_image_it_was_read_with(tmp_path, shape):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    dim = 2 if shape[0] == 1 else 3
    image = sitk.GetImageFromArray(np.zeros(shape[1:] if dim == 2 else shape, dtype=np.float32))
    image.SetSpacing((0.7, 1.3) if dim == 2 else (0.7, 1.3, 2.5))
    image.SetOrigin((4.0, -2.0) if dim == 2 else (4.0, -2.0, 9.0))
    sitk.WriteImage(image, str(tmp_path / "img_0000.nii.gz"))
    _, properties = SimpleITKIO().read_images([str(tmp_path / "img_0000.nii.gz")])
    values = np.random.default_rng(0).random(shape).astype(np.float32)

    write_float_map(values, str(tmp_path / "map.nii.gz"), properties)

    written = sitk.ReadImage(str(tmp_path / "map.nii.gz"))
    assert written.GetSpacing() == pytest.approx(image.GetSpacing()) and written.GetOrigin() == image.GetOrigin()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), values[0] if dim == 2 else values)


def test_auxiliary_inference_output_is_the_second_decoders_output():
    dual = build_dual("PlainConvUNet", 2, deep_supervision=False).eval()
    x = random_input(2)
    with torch.no_grad():
        main, aux = dual(x, return_auxiliary=True)
        dual.inference_output = "auxiliary"
        torch.testing.assert_close(dual(x), aux)
        dual.inference_output = "main"
        torch.testing.assert_close(dual(x), main)


def test_a_model_without_auxiliary_decoder_is_refused_with_the_fix(tmp_path):
    source, _ = write_fake_results_folder(str(tmp_path / "results"))
    exported = export_plain_model(source, str(tmp_path / "export"))  # nnUNetTrainer, main decoder only
    with pytest.raises(ValueError, match="no auxiliary decoder.*-tr nnUNetTrainerDualUnc"):
        UncertaintyPredictor(exported, device=torch.device("cpu"))


# ------------------------------------------------------------------------------------------------ bad input
@pytest.fixture
def dual_model_folder(tmp_path, monkeypatch):
    from nnunetv2_dualunc.nnunet_commands import trainer_folder

    monkeypatch.setenv("nnUNet_extTrainer", trainer_folder())  # the checkpoint names nnUNetTrainerDualUnc
    source, _ = write_fake_results_folder(str(tmp_path / "results"))
    return source


def _cpu_call(model_folder, input_folder, output_folder):
    from nnunetv2_dualunc.inference.uncertainty_maps import predict_uncertainty_folder

    return predict_uncertainty_folder(model_folder, str(input_folder), str(output_folder), device=torch.device("cpu"))


def test_missing_input_folder_and_output_into_input_are_refused_before_loading(tmp_path):
    with pytest.raises(FileNotFoundError, match="input folder .*missing.* does not exist"):
        _cpu_call(str(tmp_path / "no_model"), tmp_path / "missing", tmp_path / "out")
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="is the input folder"):
        _cpu_call(str(tmp_path / "no_model"), tmp_path / "images", tmp_path / "images")


def test_folder_without_images_names_the_expected_file_name(dual_model_folder, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "case.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"holds no image named CASE_0000\.nii\.gz"):
        _cpu_call(dual_model_folder, tmp_path / "images", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wrong_number_of_channels_names_the_case(dual_model_folder, tmp_path):
    (tmp_path / "images").mkdir()
    for channel in ("0000", "0001"):  # the model was trained on one channel
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4), np.float32)),
                        str(tmp_path / "images" / f"pat7_{channel}.nii.gz"))
    with pytest.raises(ValueError, match=r"pat7_0000\.nii\.gz: found 2 channel file\(s\).*expects 1"):
        _cpu_call(dual_model_folder, tmp_path / "images", tmp_path / "out")


def test_cli_names_the_missing_model_folder_and_how_to_train_it(tmp_path, monkeypatch):
    from nnunetv2_dualunc import cli

    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    (tmp_path / "Dataset977_X").mkdir()
    with pytest.raises(SystemExit) as e:
        cli.main(["predict-uncertainty", "-i", str(tmp_path), "-o", str(tmp_path / "o"), "-d", "977", "-c", "2d",
                  "-device", "cpu"])
    assert "no trained model in" in str(e.value.code)
    assert "nnUNetv2_train 977 2d FOLD -tr nnUNetTrainerDualUnc" in str(e.value.code)


# ------------------------------------------------------------------------------------------------ overview picture
def test_the_overview_shows_the_slice_with_most_uncertainty_over_the_foreground(tmp_path):
    from nnunetv2_dualunc.inference.uncertainty_maps import most_uncertain_section
    from nnunetv2_dualunc.plots import plot_uncertainty_overview, plot_uncertainty_vs_dice

    image = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # two channels, three slices
    segmentation = np.zeros((3, 4, 5), np.uint8)
    segmentation[2, 1:3, 1:3] = 1
    kl = np.zeros((3, 4, 5), np.float32)
    kl[0] = 5.0                # slice 0: the most KL overall, but no foreground
    kl[2, 1, 1] = 1.0          # slice 2: some KL inside the foreground
    reference = segmentation.copy()
    section = most_uncertain_section("c", image, segmentation, kl, reference)
    np.testing.assert_array_equal(section.image, image[0, 2])  # first channel, slice 2
    np.testing.assert_array_equal(section.uncertainty, kl[2])
    np.testing.assert_array_equal(section.reference, reference[2])
    nothing_segmented = most_uncertain_section("c", image, np.zeros_like(segmentation), kl)
    np.testing.assert_array_equal(nothing_segmented.uncertainty, kl[0])  # then the slice with most KL
    assert nothing_segmented.reference is None

    plot_uncertainty_overview([section, nothing_segmented], str(tmp_path / "overview.png"))
    plot_uncertainty_vs_dice([0.1, 0.3, 0.2], [0.9, 0.5, 0.7], -1.0, str(tmp_path / "scatter.png"))
    for picture in ("overview.png", "scatter.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["overview.png", "scatter.png"]
