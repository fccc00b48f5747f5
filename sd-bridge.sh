#!/usr/bin/env bash
# sd-bridge in one command, on Linux and macOS.
#   ./sd-bridge.sh run [options of `sd-bridge run`]   install into ./.venv, then run the daemon
#   ./sd-bridge.sh test [pytest options]              install with the test tools, then lint and test
#   ./sd-bridge.sh <any sd-bridge command> ...        install, then run that command (doctor, bench, send...)
# The first call creates ./.venv and installs; later calls reinstall only when pyproject.toml changed.
#
# The torch build is chosen for this machine, and said why:
#   nvidia-smi and driver >= 580 -> CUDA 13.0 build (cu130); driver >= 525 -> CUDA 12.8 build (cu128);
#   no NVIDIA driver (or an older one), or macOS -> the CPU build (about 190 MB instead of several GB).
# Override: SD_BRIDGE_TORCH=cpu|cu128|cu130. SD_BRIDGE_TORCH_VERSION (default below) pins the version.
# SD_BRIDGE_DRY_RUN=1 prints the choice and what would be installed and run, and changes nothing.
set -euo pipefail
cd "$(dirname "$0")"

cmd="${1:-run}"
[ $# -gt 0 ] && shift

dry_run="${SD_BRIDGE_DRY_RUN:-}"
torch_version="${SD_BRIDGE_TORCH_VERSION:-2.13.0}"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "sd-bridge needs Python 3.10 or newer; set PYTHON=/path/to/python3.x" >&2
    exit 1
fi

# -- which torch build ------------------------------------------------------------------------------
torch_build="" torch_why=""
choose_torch() {
    if [ -n "${SD_BRIDGE_TORCH:-}" ]; then
        case "$SD_BRIDGE_TORCH" in
            cpu | cu128 | cu130) torch_build="$SD_BRIDGE_TORCH" torch_why="SD_BRIDGE_TORCH=$SD_BRIDGE_TORCH" ;;
            *)
                echo "error: SD_BRIDGE_TORCH must be cpu, cu128 or cu130, got '$SD_BRIDGE_TORCH'" >&2
                exit 1
                ;;
        esac
        return
    fi
    if [ "$(uname -s)" = "Darwin" ]; then
        torch_build="cpu" torch_why="macOS has no CUDA (PyPI's build runs on the CPU and Apple's MPS)"
        return
    fi
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        torch_build="cpu" torch_why="no NVIDIA driver found: no nvidia-smi on PATH"
        return
    fi
    local driver
    driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ')" || true
    local major="${driver%%.*}"
    if ! [[ "$major" =~ ^[0-9]+$ ]]; then
        torch_build="cpu" torch_why="nvidia-smi found no GPU or driver version ('${driver:-no output}')"
    elif [ "$major" -ge 580 ]; then
        torch_build="cu130" torch_why="NVIDIA driver $driver (CUDA 13 needs 580 or newer)"
    elif [ "$major" -ge 525 ]; then
        torch_build="cu128" torch_why="NVIDIA driver $driver is older than 580 (CUDA 13), new enough for CUDA 12.8"
    else
        torch_build="cpu" torch_why="NVIDIA driver $driver is older than 525, too old for CUDA 12 (update it for GPU speed)"
    fi
}
choose_torch

# The build is pinned with its local label (2.13.0+cpu) so pip cannot fall back on PyPI's plain
# `torch`, which on Linux is the CUDA build with its nvidia-* wheels (gigabytes). A wheel already at
# hand (pip's configured indexes, a local mirror) is tried first, then the PyTorch index of that build.
torch_index="https://download.pytorch.org/whl/$torch_build"
torch_spec="torch==$torch_version+$torch_build"
if [ "$(uname -s)" = "Darwin" ]; then
    torch_spec="torch==$torch_version" torch_index=""  # PyPI's macOS wheels have no label
fi

extras="ndi,vcam"
[ "$cmd" = "test" ] && extras="dev,ndi,vcam"
stamp=".venv/.sd-bridge-installed-$extras-$torch_build"

# Whether .venv already holds this build of torch (so nothing is downloaded again).
torch_matches() {
    [ -x .venv/bin/python ] || return 1
    .venv/bin/python - "$torch_build" <<'EOF' 2>/dev/null
import sys
import torch

want = sys.argv[1]
cuda = torch.version.cuda
have = "cpu" if cuda is None else "cu" + cuda.replace(".", "")
print(f"torch {torch.__version__} is installed ({'CPU' if cuda is None else 'CUDA ' + cuda} build)")
sys.exit(0 if have == want else 1)
EOF
}

echo "==> torch: the $torch_build build ($torch_why)"
if [ -n "$dry_run" ]; then
    echo "dry run: would install $torch_spec${torch_index:+ (extra index $torch_index)}, then sd-bridge[$extras] into .venv"
    case "$cmd" in
        test) echo "dry run: would run .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/python -m pytest $*" ;;
        *) echo "dry run: would run .venv/bin/sd-bridge $cmd $*" ;;
    esac
    exit 0
fi

if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$python" -m venv .venv
fi

if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    if torch_matches; then
        echo "    keeping it"
    else
        echo "==> installing $torch_spec into .venv"
        # A wheel at hand (pip's configured indexes, a local mirror) first; else the PyTorch index.
        if ! .venv/bin/python -m pip install "$torch_spec" 2>/dev/null; then
            [ -n "$torch_index" ] && echo "    not on the configured indexes: from $torch_index"
            .venv/bin/python -m pip install "$torch_spec" ${torch_index:+--extra-index-url "$torch_index"}
        fi
    fi
    echo "==> installing sd-bridge[$extras] into .venv (first time: a few minutes)"
    .venv/bin/python -m pip install -e ".[$extras]"
    touch "$stamp"
    echo "==> installed. To type \`sd-bridge ...\` directly: source .venv/bin/activate"
fi

case "$cmd" in
    test)
        .venv/bin/ruff check .
        .venv/bin/ruff format --check .
        exec .venv/bin/python -m pytest "$@"
        ;;
    *)
        exec .venv/bin/sd-bridge "$cmd" "$@"
        ;;
esac
