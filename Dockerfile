# GPU node image for curate: CUDA 12 runtime, PyTorch with CUDA, faiss-gpu, Triton, curate.
#   docker build -t curate:gpu .
#   docker run --rm --gpus all -v /data:/data curate:gpu doctor
#   docker run --rm --gpus all -v /data:/data curate:gpu ingest /data/images -w /data/ws
# See docs/docker.md (build, run, workspaces on object storage, lint).
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

LABEL org.opencontainers.image.title="curate" \
      org.opencontainers.image.description="GPU-accelerated dataset curation" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# The pinned base image tag fixes the Ubuntu release, hence these packages' versions.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /opt/curate
# PyPI's Linux torch wheels are CUDA builds that carry their CUDA libraries; constraints/cpu.txt
# pins the torch/torchvision pair CI tests. The gpu extra adds faiss-gpu (never the cpu extra too).
COPY pyproject.toml README.md ./
COPY constraints ./constraints
COPY curate ./curate

# curate itself is the local source tree; its dependencies are pinned by the constraints file.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir -c constraints/cpu.txt ".[gpu]" \
    && python -c "import curate, faiss, torch; print(curate.__version__, torch.__version__, faiss.__version__)" \
    && curate --version

# An unprivileged user with a fixed numeric id (mounted data keeps a predictable owner).
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin curate
USER 10001
WORKDIR /home/curate

# A batch command-line tool, not a service: nothing to probe while it runs. `curate doctor`
# is the readiness check to run once on a new node (see docs/docker.md).
HEALTHCHECK NONE
ENTRYPOINT ["curate"]
CMD ["--help"]
