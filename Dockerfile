# GPU node image for curate: CUDA 12 runtime, PyTorch with CUDA, faiss-gpu, curate.
#   docker build -t curate:gpu .
#   docker run --rm --gpus all -v /data:/data curate:gpu ingest /data/images -w /data/ws
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /opt/curate
# PyPI's Linux torch wheels are CUDA builds that carry their CUDA libraries; the gpu
# extra adds faiss-gpu (never install the cpu extra beside it).
COPY pyproject.toml README.md ./
COPY curate ./curate
COPY kernels ./kernels
RUN pip install ".[gpu]" \
    && python -c "import curate, faiss, torch; print(curate.__version__, torch.__version__)"

RUN useradd --create-home curate
USER curate
WORKDIR /home/curate
ENTRYPOINT ["curate"]
CMD ["--help"]
