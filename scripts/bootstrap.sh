#!/usr/bin/env bash
# Installs the Debian packages pth2swt needs. Idempotent; runs apt-get update first.
#   bash scripts/bootstrap.sh              build and test needs: libzip-dev, zlib1g-dev,
#                                          libopenblas-dev, libjpeg62-turbo-dev, libpng-dev, pkg-config,
#                                          dataset-fashion-mnist (the IDX files the fine-tuning demo and a
#                                          data test read; 30 MB), libopenmpi-dev and openmpi-bin
#                                          (Open MPI 4.1, for the tool's multi-rank runs and their tests)
#   bash scripts/bootstrap.sh --reference  also the oracle for Tests/Reference/*.py: python3-torch 1.13,
#                                          Pillow 9.4, numpy,
#                                          python3-torchvision 0.14 (never needed by CI)
set -euo pipefail
packages=(libzip-dev zlib1g-dev libopenblas-dev libjpeg62-turbo-dev libpng-dev pkg-config dataset-fashion-mnist
  libopenmpi-dev openmpi-bin)
if [[ "${1:-}" == "--reference" ]]; then
  packages+=(python3-torch python3-torchvision python3-pil python3-numpy python3-venv)
fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "bootstrap: installed ${packages[*]}"
