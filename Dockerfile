# One image for both roles: the command picks web (default) or worker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The user comes before the code, so this layer is built once, not again on every change.
# No home directory: nothing is written there (the image runs on a read-only root).
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin bff

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY bff ./bff
COPY workers ./workers
COPY sandbox ./sandbox
COPY wsgi.py Procfile ./

# Named by uid, so a platform can check that it is not root (Kubernetes runAsNonRoot).
USER 10001

EXPOSE 8000
# The web role's liveness. The worker serves no HTTP: run it with --no-healthcheck
# (README, Deployment, says why it has none).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=3)"
# docker run IMAGE                          -> web on $PORT (default 8000)
# docker run IMAGE python -m bff.launcher worker
CMD ["python", "-m", "bff.launcher", "web"]
