# Stand-in for ghcr.io/astral-sh/uv:<version>: the uv and uvx binaries from the uv wheel on PyPI, at /.
FROM scratch
LABEL org.dagops.local-base="uv"
COPY uv uvx /
