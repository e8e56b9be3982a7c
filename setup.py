from setuptools import find_packages, setup

setup(
    name="nnunetv2-dualunc",
    version="0.1.0",
    description="Semi-supervised self-training with dual uncertainty as an nnU-Net v2 plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # every subpackage of the library (a hand-kept list once missed nnunetv2_dualunc.inference in non-editable
    # installs) + the folder nnU-Net scans through nnUNet_extTrainer: thin re-export modules only
    packages=find_packages(include=["nnunetv2_dualunc", "nnunetv2_dualunc.*"]) + ["nnunetv2_dualunc_trainers"],
    package_dir={"nnunetv2_dualunc_trainers": "trainers"},
    install_requires=[
        "nnunetv2>=2.6,<2.9",
        "torch",
        "batchgenerators>=0.25",
        "batchgeneratorsv2",
        "SimpleITK",
        "numpy",
        "acvl-utils",
        "dynamic-network-architectures",
        "blosc2",
        # surface distances (HD95, ASD, ASSD) of `nnunetv2_dualunc evaluate`: the implementation the literature cites
        "medpy>=0.5",
    ],
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": ["nnunetv2_dualunc=nnunetv2_dualunc.cli:main"]},
)
