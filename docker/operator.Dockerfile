# restate-operator:dev — the Kubernetes operator. Built by scripts/images/build.sh only when
# the release binary `restate-operator` exists.
FROM debian:bookworm-slim

# The same user layer as docker/Dockerfile (built once, shared).
RUN groupadd --gid 1000 restate \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/restate --shell /usr/sbin/nologin restate

COPY restate-operator /usr/local/bin/

USER restate
WORKDIR /home/restate

STOPSIGNAL SIGTERM
ENTRYPOINT ["restate-operator"]
