# asif serve: the HTTP JSON API, talking to a Qdrant server (ASIF_URL) or to an embedded store in /data.
#   docker build -t asif-qdrant .
#   docker run -p 8000:8000 -e ASIF_URL=http://qdrant:6333 -e ASIF_API_KEYS="k-admin-123456=@admin" asif-qdrant
# The package is installed as its wheel installs (not editable: setup.py lists the packages and ships migrations/
# inside the wheel), with the encoders and serve extras; torch and torchvision come from PyTorch's CPU index
# first (the versions pinned in pyproject.toml's encoders extra), so the image holds no CUDA libraries.
# tests/unit/test_packaging.py builds what the COPY lines below copy into a wheel and checks the pins.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 ASIF_PATH=/data ASIF_CACHE_DIR=/data/cache
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY asif_qdrant ./asif_qdrant
COPY migrations ./migrations
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1 \
    && pip install '.[encoders,serve]' \
    && rm -rf /app/build /app/*.egg-info \
    && useradd --create-home asif && mkdir -p /data && chown asif /data
USER asif
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["asif", "serve", "--host", "0.0.0.0", "--port", "8000"]
