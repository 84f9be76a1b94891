# Stand-in for python:3.11-slim-bookworm where no registry answers: Debian's python3 on a minbase rootfs.
# Built by .ci/base-images.sh; the context holds the host's proxy CA certificates (certs/*.crt).
ARG ROOTFS_IMAGE
FROM ${ROOTFS_IMAGE}
ARG CA_SHA256=none
LABEL org.dagops.local-base="python" org.dagops.ca-sha256="${CA_SHA256}"
COPY certs/ /usr/local/share/ca-certificates/
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 ca-certificates tzdata netbase \
    && update-ca-certificates \
    && ln -sf /usr/bin/python3 /usr/local/bin/python \
    && rm -rf /var/lib/apt/lists/*
# uv, pip and requests read this bundle, which now trusts the proxy too.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
CMD ["python3"]
