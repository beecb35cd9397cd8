# One image for both roles: the command picks web (default) or worker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY bff ./bff
COPY workers ./workers
COPY sandbox ./sandbox
COPY wsgi.py Procfile ./

RUN useradd --create-home --uid 10001 bff
USER bff

EXPOSE 8000
# docker run IMAGE                          -> web on $PORT (default 8000)
# docker run IMAGE python -m bff.launcher worker
CMD ["python", "-m", "bff.launcher", "web"]
