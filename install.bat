@echo off
rem sd-bridge installer for Windows with an NVIDIA RTX card.
rem   install.bat            CUDA 13 build of torch + TensorRT for CUDA 13 (recent drivers)
rem   install.bat cu128      CUDA 12.8 build of torch + TensorRT for CUDA 12 (older drivers)
rem   install.bat cpu        CPU build of torch, no TensorRT (no NVIDIA GPU; slow, for checking a setup)
setlocal EnableExtensions
cd /d "%~dp0"

set "CUDA_TAG=%~1"
if "%CUDA_TAG%"=="" set "CUDA_TAG=cu130"
set "TRT_EXTRA=tensorrt"
if /i "%CUDA_TAG:~0,4%"=="cu12" set "TRT_EXTRA=tensorrt-cu12"
set "EXTRAS=%TRT_EXTRA%,spout,ndi,vcam"
if /i "%CUDA_TAG%"=="cpu" set "EXTRAS=spout,ndi,vcam"

echo [1/5] Looking for Python 3.10, 3.11 or 3.12 ...
set "PY="
for %%V in (3.12 3.11 3.10) do (
    if not defined PY (
        py -%%V -c "import sys" >nul 2>&1 && set "PY=py -%%V"
    )
)
if not defined PY (
    python -c "import sys; sys.exit(not ((3,10) <= sys.version_info[:2] <= (3,12)))" >nul 2>&1 && set "PY=python"
)
if not defined PY (
    echo ERROR: no Python 3.10-3.12 found. Install Python 3.12 from python.org ^(tick "Add to PATH"^) and run install.bat again.
    exit /b 1
)
echo       using %PY%

echo [2/5] Creating .venv ...
if not exist .venv\Scripts\python.exe (
    %PY% -m venv .venv || (echo ERROR: could not create .venv & exit /b 1)
)
.venv\Scripts\python -m pip install -q --upgrade pip || (echo ERROR: could not upgrade pip & exit /b 1)

echo [3/5] Installing the %CUDA_TAG% build of torch from the PyTorch index (CUDA: about 3 GB) ...
.venv\Scripts\python -m pip install torch --index-url https://download.pytorch.org/whl/%CUDA_TAG% || (
    echo ERROR: torch for %CUDA_TAG% failed to install. Try "install.bat cu128" for older NVIDIA drivers.
    exit /b 1
)

echo [4/5] Installing sd-bridge with TensorRT, Spout, NDI and virtual camera ...
.venv\Scripts\python -m pip install -e ".[%EXTRAS%]" || (
    echo ERROR: sd-bridge failed to install; see the pip messages above.
    exit /b 1
)

echo [5/5] Checking the setup ...
.venv\Scripts\sd-bridge doctor
echo.
echo Done. Start it with:  .venv\Scripts\sd-bridge run --preset sd-turbo-1step
echo Build TensorRT engines ahead of a show with:  .venv\Scripts\sd-bridge build-engines --preset sd-turbo-1step
endlocal
