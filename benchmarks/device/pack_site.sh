#!/usr/bin/env bash
# Pack nnU-Net and the dependencies the GPU machine's image lacks (it has torch, numpy, scipy, scikit-image, pandas,
# matplotlib, ...) into .gpu/site.tar.xz for the device tool's 64 MiB carry limit (38 MB; SimpleITK alone is a
# 53 MB wheel, xz gets the unpacked folder smaller than the wheels). Python 3.12 wheels, as on that machine.
# Run from the repository root with the project's venv; then on the device:
#   mkdir -p /tmp/site && tar -xJf .gpu/site.tar.xz -C /tmp/site && python3 benchmarks/device/make_console_scripts.py /tmp/site
#   export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH
set -euo pipefail
wheels=$(mktemp -d); site=$(mktemp -d)
platforms="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
for p in blosc2==4.14.1 connected-components-3d==4.1.1 ndindex==1.10.1 numexpr==2.14.2 simpleitk==2.5.7 \
         nibabel==5.4.2 graphviz==0.21 yacs==0.1.8; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $platforms -d "$wheels" "$p"
done
# pure-Python packages published as source distributions only
.venv/bin/pip wheel -q --no-deps -w "$wheels" nnunetv2==2.8.1 acvl_utils==0.2.6 dynamic_network_architectures==0.4.4 \
  batchgenerators==0.25.5 batchgeneratorsv2==0.3.6 medpy==0.5.2
for w in "$wheels"/*.whl; do unzip -q -o "$w" -d "$site"; done
mkdir -p .gpu && grep -qx '/.gpu/' .git/info/exclude || echo '/.gpu/' >> .git/info/exclude
tar -C "$site" -cf - . | xz -9 -T2 > .gpu/site.tar.xz
ls -la .gpu/site.tar.xz
