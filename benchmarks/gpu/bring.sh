#!/usr/bin/env bash
# Gathers, on a machine with network access, what an offline GPU machine lacks for gpu_check.sh:
# wheels of medmnist (to read the data), tqdm (imported by survey_lib), tabulate (Markdown tables)
# and IPython (the notebooks' imports) for Python $PYVER, and a copy of the data files (MedMNIST
# .npz and PH2, about 25 MB), under offline/ at the repository root (git-ignored).
#   SURVEY_DATA_DIR=<data dir> bash benchmarks/gpu/bring.sh [folder]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dest="${1:-$root/offline}"
PY=${PY:-python3}
PYVER=${PYVER:-3.12}
: "${SURVEY_DATA_DIR:?set SURVEY_DATA_DIR to the folder whose medmnist/ holds the .npz files}"
mkdir -p "$dest/wheels" "$dest/data"
# pure-Python wheels, pinned to the versions the project is tested with
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" -d "$dest/wheels" \
  medmnist==3.0.2 tqdm==4.70.1 tabulate==0.10.0 ipython==9.18.1 pygments==2.21.0 ipython-pygments-lexers==1.1.1 jedi==0.20.1 parso==0.8.7 \
  matplotlib-inline==0.2.2 pexpect==4.9.0 ptyprocess==0.7.0 prompt_toolkit==3.0.53 wcwidth==0.9.4 \
  stack_data==0.6.3 asttokens==3.0.2 executing==2.3.0 pure_eval==0.2.4 traitlets==5.16.1
cp -r "$SURVEY_DATA_DIR/medmnist" "$dest/data/"
[ -d "$SURVEY_DATA_DIR/seg" ] && cp -r "$SURVEY_DATA_DIR/seg" "$dest/data/"
chmod -R u+w "$dest"
du -sh "$dest/wheels" "$dest/data"
