# An S3 (and AWS) endpoint for compose and the cloud-shape tests: moto's server, from PyPI.
ARG PYTHON_IMAGE
ARG UV_IMAGE
FROM ${UV_IMAGE} AS uv
FROM ${PYTHON_IMAGE}
ARG MOTO_VERSION
LABEL org.dagops.local-base="moto"
COPY --from=uv /uv /usr/local/bin/uv
RUN uv venv --python /usr/bin/python3 /opt/moto \
    && uv pip install --python /opt/moto/bin/python --no-cache "moto[server]==${MOTO_VERSION}" \
    && useradd --system --uid 10002 --home-dir /nonexistent --shell /usr/sbin/nologin moto
ENV PATH=/opt/moto/bin:$PATH
USER 10002
EXPOSE 5000
# Healthcheck-friendly: GET /moto-api/ answers 200 once the server is up.
ENTRYPOINT ["moto_server", "--host", "0.0.0.0"]
CMD ["--port", "5000"]
