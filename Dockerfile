# longdoc: the service and the Ray nodes run this one image.
#   docker build -t longdoc .                                  (CPU: faiss-cpu; torch as pip resolves it)
#   docker build -t longdoc:gpu --build-arg FAISS=gpu .        (faiss-gpu-cu12, for the gpu profile)
FROM python:3.11-slim

ARG FAISS=cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    LONGDOC_CACHE=/var/cache/longdoc HF_HUB_OFFLINE=0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY longdoc ./longdoc
RUN pip install --no-cache-dir ".[${FAISS},serve,distributed]" \
    && useradd --create-home --uid 1000 longdoc \
    && mkdir -p /data/indexes /var/cache/longdoc \
    && chown -R longdoc /data /var/cache/longdoc

USER longdoc
EXPOSE 8000
ENTRYPOINT ["longdoc"]
CMD ["serve", "--index", "/data/indexes/main", "--host", "0.0.0.0", "--port", "8000"]
