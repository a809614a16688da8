# restate-example-services:dev — the Restate SDK services of examples/services (Greeter,
# Counter, Ticket) on port 9080 (HTTP/2 prior knowledge). Built by scripts/images/build.sh
# from the host-built release binary.
#
#   docker run -d --name services --network NET restate-example-services:dev
#   restate dp register http://services:9080 --yes
FROM debian:bookworm-slim

# The same user layer as docker/Dockerfile (built once, shared).
RUN groupadd --gid 1000 restate \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/restate --shell /usr/sbin/nologin restate

COPY example-services /usr/local/bin/

USER restate
WORKDIR /home/restate
ENV PORT=9080
EXPOSE 9080

STOPSIGNAL SIGTERM
ENTRYPOINT ["example-services"]
